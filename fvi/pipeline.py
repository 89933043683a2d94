"""The pipeline as stages, and the in-process reference that runs them with onnxruntime.

Each `stage_*` function is exactly what one Triton Python-backend step executes, so the served
ensemble and `ReferencePipeline` compute the same thing by construction:

    decode ─► detector ─► line_crops ─► reader ─► cropper ─► assemble
    bytes     DB net      every line    CTC net   labels →   labels →
    → pixels  (text map)  cut upright             corners    fields
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fvi import MODELS_DIR, charset, linker, quality, reader, text_detector
from fvi.assemble import assemble
from fvi.image_io import Photo, decode_photo
from fvi.schema import LINE_META_COLUMNS, OcrResult

# Lines are cut from the photo decoded at most this large: a 12 MP phone photo decodes at 1/2 scale for a
# quarter of the cost, and a card filling it still has 40-pixel print. Corners are reported in the photo's pixels.
WORK_MAX_SIDE = 1600


@dataclass(frozen=True)
class OrientParams:
    """When the lines are read the other way up as well: a page whose first reading shows fewer labels than this
    may be upside down (text direction tells the axis, not which end is the start)."""

    labels_upright: int = 3


ORIENT = OrientParams()


@dataclass
class Decoded:
    detector_input: np.ndarray  # 1 x 3 x H x W uint8, the whole photo at DetectorParams.first_side
    to_photo: np.ndarray  # (2,) float32: detector-input pixels → the photo's own pixels


@dataclass
class Lines:
    crops: np.ndarray  # N x 1 x 32 x W float32, the reader's batch (always ≥ 1)
    meta: np.ndarray  # N x LINE_META_COLUMNS


@dataclass
class Card:
    """What the cropper step decided: the reading (maybe of the lines turned over), the card's corners, quality."""

    ctc_best: np.ndarray
    meta: np.ndarray
    corners: np.ndarray  # 4 x 2 photo pixels (zeros when no card)
    confidence: np.ndarray  # (1,) float32
    found: np.ndarray  # (1,) bool
    quality: np.ndarray  # (len(quality.MEASURES),) float32


def work_photo(data: bytes) -> Photo:
    """The photo as the line and cropper steps decode it: at most WORK_MAX_SIDE, a reduced JPEG decode where that
    suffices."""
    return decode_photo(data, at_least=WORK_MAX_SIDE, at_most=WORK_MAX_SIDE)


def stage_decode(data: bytes) -> Decoded:
    """Validates the photo and makes the detector's whole-photo input from a cheap reduced decode. Only these
    pixels travel on: line_crops decodes the photo again at working size from the request's own bytes."""
    side = text_detector.PARAMS.first_side
    photo = decode_photo(data, at_least=side)
    x, to_image = text_detector.preprocess(photo.image, side)
    return Decoded(x[None], (to_image / photo.scale).astype(np.float32))


def stage_line_crops(data: bytes, prob: np.ndarray, to_photo: np.ndarray,
                     run_detector: Callable[[np.ndarray], np.ndarray] | None = None) -> Lines:
    """Every line the detector found, oriented along the page's text direction and cut for the reader.
    run_detector: (1, 3, H, W) uint8 → (1, 1, H, W), for the second look (text_detector.second_view); None: one."""
    photo = work_photo(data)
    size = (photo.image.shape[1], photo.image.shape[0])
    lines = text_detector.decode(prob, np.asarray(to_photo, np.float32) * photo.scale)
    view = text_detector.second_view(lines, size) if run_detector is not None else None
    if view is not None:
        seen = run_detector(text_detector.view_input(photo.image, view)[None])
        lines = text_detector.from_view(text_detector.decode(seen, np.ones(2, np.float32)), view)
    if not lines:
        return Lines(np.zeros((1, 1, reader.INPUT_H, reader.WIDTH_BUCKET), np.float32), padding_meta())
    angle = text_detector.page_angle(lines)
    quads = [text_detector.orient(l.quad, angle) for l in lines]
    gray = cv2.cvtColor(photo.image, cv2.COLOR_RGB2GRAY)
    meta = np.array([[*(q / photo.scale).reshape(-1), l.score] for q, l in zip(quads, lines)], np.float32)
    return Lines(reader.crop_quads(gray, quads), meta)


def padding_meta() -> np.ndarray:
    row = np.zeros((1, LINE_META_COLUMNS), np.float32)
    row[0, -1] = -1
    return row


def quads_of(meta: np.ndarray) -> list[np.ndarray]:
    """The lines' quads (photo pixels) of LINE_META rows that are lines."""
    return [row[:8].reshape(4, 2) for row in np.asarray(meta, np.float32).reshape(-1, LINE_META_COLUMNS) if row[-1] >= 0]


def read_lines(ctc_best: np.ndarray, meta: np.ndarray) -> list[linker.ReadLine]:
    quads = quads_of(meta)
    return [linker.ReadLine(q, t, c) for q, (t, c) in zip(quads, reader.decode(ctc_best[: len(quads)]))]


def stage_cropper(data: bytes, ctc_best: np.ndarray, meta: np.ndarray,
                  read: Callable[[np.ndarray], np.ndarray] | None = None) -> Card:
    """The card from its printed words: which way up it is (a reading with too few labels is read again turned
    over, one reader call, and the reading with more labels kept), where its corners are (fvi.linker.card_corners;
    a card too few of whose labels were read is placed by its text, fvi.linker.text_extent_corners, when an ID
    number and a date of birth were read) and how well it was captured (fvi.quality). read: crops → the reader's
    output; None: never turned."""
    lines = read_lines(ctc_best, meta)
    linked = linker.link(lines)
    photo = None
    if read is not None and lines and linked.label_count < ORIENT.labels_upright:
        photo = work_photo(data)
        gray = cv2.cvtColor(photo.image, cv2.COLOR_RGB2GRAY)
        over = np.array([[*text_detector.turned(q).reshape(-1), row[-1]] for q, row in zip(quads_of(meta), meta)],
                        np.float32)
        again = read(reader.crop_quads(gray, [q * photo.scale for q in quads_of(over)]))
        over_lines = read_lines(again, over)
        turned = linker.link(over_lines)
        if turned.label_count > linked.label_count:
            ctc_best, meta, lines, linked = again, over, over_lines, turned
    corners = linker.card_corners(linked.anchors, linked.card_type)
    if corners is None:  # too few labels read to place it: a card still, if its values say so
        corners = linker.text_extent_corners(lines, linked)
    if corners is None:
        return Card(ctc_best, meta, np.zeros((4, 2), np.float32), np.zeros(1, np.float32), np.zeros(1, bool),
                    np.zeros(len(quality.MEASURES), np.float32))
    photo = photo or work_photo(data)
    q = quality.measure((photo.size[1], photo.size[0]), corners, quality.card_view(photo.image, corners * photo.scale))
    confidence = min(1.0, len(linked.anchors) / linker.LINK.sure_anchors)
    return Card(ctc_best, meta, corners.astype(np.float32), np.array([confidence], np.float32), np.ones(1, bool), q)


def stage_assemble(ctc_best: np.ndarray, meta: np.ndarray, corners: np.ndarray, confidence: float, found: bool,
                   quality_measures: np.ndarray) -> OcrResult:
    lines = read_lines(ctc_best, meta)
    linked = linker.link(lines) if found else None
    return assemble(lines, linked, corners, confidence, quality_measures,
                    lambda i: reader.readings(ctc_best[i]), lambda i, text: charset.ctc_log_prob(ctc_best[i], text))


def single_threaded_opencv() -> None:
    """Each step runs on one thread; parallelism comes from concurrent requests (Triton instances or the
    reference's threads). OpenCV's own thread pool would only add synchronisation on a busy CPU
    (measured: the warp step costs 7.5 ms of CPU with 2 OpenCV threads, 6.6 ms with 1)."""
    cv2.setNumThreads(1)


def onnx_session(path: Path, intra_threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class ReferencePipeline:
    """Everything in one process: the baseline the ensemble is checked and benchmarked against."""

    def __init__(self, models_dir: Path = MODELS_DIR, intra_threads: int = 1) -> None:
        single_threaded_opencv()
        self.detector = onnx_session(models_dir / "detector.onnx", intra_threads)
        self.reader = onnx_session(models_dir / "reader.onnx", intra_threads)

    def run_detector(self, image: np.ndarray) -> np.ndarray:
        return self.detector.run(None, {"image": image})[0]

    def run_reader(self, crops: np.ndarray) -> np.ndarray:
        return self.reader.run(None, {"line": crops})[0]

    def __call__(self, data: bytes, timings: dict[str, float] | None = None) -> OcrResult:
        """timings, if given, accumulates seconds per step under the ensemble's model names."""
        clock = _StepClock(timings)
        d = clock("decode", stage_decode, data)
        prob = clock("detector", self.run_detector, d.detector_input)
        lines = clock("line_crops", stage_line_crops, data, prob[0], d.to_photo, self.run_detector)
        best = clock("reader", self.run_reader, lines.crops)
        card = clock("cropper", stage_cropper, data, best, lines.meta, self.run_reader)
        return clock("assemble", stage_assemble, card.ctc_best, card.meta, card.corners, float(card.confidence[0]),
                     bool(card.found[0]), card.quality)


class _StepClock:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    def __call__(self, step: str, fn, *args):
        if self.timings is None:
            return fn(*args)
        t = time.perf_counter()
        out = fn(*args)
        self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - t
        return out
