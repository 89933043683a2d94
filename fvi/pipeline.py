"""The pipeline as stages, and the in-process reference that runs them with onnxruntime.

Each `stage_*` function is exactly what one Triton Python-backend step executes, so the served
ensemble and `ReferencePipeline` compute the same thing by construction.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fvi import MODELS_DIR, charset, cropper, detector, quality, reader
from fvi.assemble import assemble, digit_count
from fvi.geometry import CARD_H, CARD_W, Letterbox, warp_card
from fvi.image_io import Photo, decode_photo
from fvi.schema import FIELDS, OcrResult

DETECTOR_OUTPUTS = ["line_maps", "card_type"]
LINE_META_COLUMNS = 6  # field index, x0, y0, x1, y1, detector score
# a card has 9-10 lines; more than this is noise and would only slow the reader
MAX_LINES = 24
# The card is warped from the photo decoded at most this large: the flat card is 800 x 504 anyway, and a
# 12 MP phone photo decodes at 1/2 scale for a quarter of the cost. Corners are reported in the photo's pixels.
WORK_MAX_SIDE = 1600
# The cropper's 256 x 256 input is made from a reduced decode at least this large (JPEG: 1/2-1/8 scale).
CROPPER_DECODE_SIDE = 2 * cropper.INPUT_SIZE


@dataclass
class Decoded:
    cropper_input: np.ndarray  # 1 x 3 x 256 x 256
    letterbox: np.ndarray  # Letterbox.as_array(): cropper input <-> the photo's own pixels


@dataclass
class Warped:
    card: np.ndarray  # CARD_H x CARD_W grey: the reader reads grey, and a third of the bytes cross to line_crops
    detector_input: np.ndarray  # 1 x 3 x 320 x 512
    corners: np.ndarray  # 4 x 2 in the photo's own pixels
    confidence: np.ndarray  # (1,) float32
    found: np.ndarray  # (1,) bool
    quality: np.ndarray  # (len(quality.MEASURES),) float32, zeros when no card


def stage_decode(data: bytes) -> Decoded:
    """Validates the photo and makes the cropper's input from a cheap reduced decode.

    Only these 200 kB travel on: card_warp decodes the photo again at working size from the request's
    own bytes, which costs less than moving megabytes of pixels between two Triton steps.
    """
    return first_look_input(first_look_photo(data))


def first_look_photo(data: bytes) -> Photo:
    """The reduced decode the cropper's first look is made from (JPEG: DCT scaling, the cheap part)."""
    return decode_photo(data, at_least=CROPPER_DECODE_SIDE)


def first_look_input(photo: Photo) -> Decoded:
    """The cropper's first-look input from a (reduced) decode, and the letterbox back to the photo's pixels."""
    x, lb = cropper.preprocess(photo.image)
    return Decoded(x[None], lb.of_reduced(photo.scale).as_array())


def work_photo(data: bytes) -> Photo:
    """The photo as card_warp decodes it: at most WORK_MAX_SIDE, a reduced JPEG decode where that suffices."""
    return decode_photo(data, at_least=WORK_MAX_SIDE, at_most=WORK_MAX_SIDE)


def flat_card(photo: Photo, photo_corners: np.ndarray) -> np.ndarray:
    """The card (corners in the photo's own pixels) warped flat: CARD_H x CARD_W RGB."""
    return warp_card(photo.image, np.asarray(photo_corners, np.float32).reshape(4, 2) * photo.scale)


def second_look(photo: Photo, first: cropper.CornerResult, run_cropper: Callable[[np.ndarray], np.ndarray]
                ) -> cropper.CornerResult:
    """The cropper's second look, zoomed on the first look's corners (fvi.cropper.refine_view); when a corner is
    unsure (fvi.cropper.TURN_BELOW) the turned views place the corners, the unturned view's peaks still decide."""
    view, lb = cropper.refine_view(photo.image, first.corners * photo.scale)
    lb, shape = lb.of_reduced(photo.scale), (photo.size[1], photo.size[0])
    heatmaps = run_cropper(view[None]).reshape(4, cropper.HEATMAP_SIZE, cropper.HEATMAP_SIZE)
    seen = cropper.decode(heatmaps, lb, shape)
    if seen.confidence >= cropper.TURN_BELOW:
        return seen
    turned = run_cropper(cropper.quarter_turns(view)).reshape(-1, 4, cropper.HEATMAP_SIZE, cropper.HEATMAP_SIZE)
    placed, _ = cropper.peaks(cropper.mean_over_turns(heatmaps, turned), lb)
    return cropper.corner_result(placed, seen.scores, shape)


def refined_corners(photo: Photo, first: cropper.CornerResult, run_cropper: Callable[[np.ndarray], np.ndarray]
                    ) -> cropper.CornerResult:
    """Both looks decide (fvi.cropper.pick_look)."""
    return cropper.pick_look(first, second_look(photo, first, run_cropper))


def stage_warp(data: bytes, letterbox: np.ndarray, heatmaps: np.ndarray,
               run_cropper: Callable[[np.ndarray], np.ndarray] | None = None) -> Warped:
    """run_cropper: (1, 3, 256, 256) uint8 → (1, 4, 64, 64) heatmaps, for the second look; None: one look."""
    photo = work_photo(data)
    photo_shape = (photo.size[1], photo.size[0])
    res = cropper.decode(heatmaps.reshape(4, cropper.HEATMAP_SIZE, cropper.HEATMAP_SIZE), Letterbox.from_array(letterbox), photo_shape)
    if run_cropper is not None:
        res = refined_corners(photo, res, run_cropper)
    if res.found:
        card_rgb = flat_card(photo, res.corners)
        small = detector.resize(card_rgb)
        card = cv2.cvtColor(card_rgb, cv2.COLOR_RGB2GRAY)
        det = detector.preprocess(small)[None]
        q = quality.measure(photo_shape, res.corners, small)
    else:  # keep shapes fixed so the graph runs on; downstream steps see found=False
        card = np.zeros((CARD_H, CARD_W), np.uint8)
        det = np.zeros((1, 3, detector.INPUT_H, detector.INPUT_W), np.uint8)
        q = np.zeros(len(quality.MEASURES), np.float32)
    return Warped(card, det, res.corners.astype(np.float32), np.array([res.confidence], np.float32),
                  np.array([res.found]), q)


def stage_line_crops(card_gray: np.ndarray, line_maps: np.ndarray, found: bool) -> tuple[np.ndarray, np.ndarray]:
    """Always at least one crop (a blank one, field −1, when there is no card or no line)."""
    lines = detector.decode(line_maps.reshape(-1, detector.MAP_H, detector.MAP_W)) if found else []
    lines = sorted(lines, key=lambda l: -l.score)[:MAX_LINES]
    lines.sort(key=lambda l: (l.field_index, l.box[1], l.box[0]))
    if not lines:
        return np.zeros((1, 1, reader.INPUT_H, reader.WIDTH_BUCKET), np.float32), np.array([[-1, 0, 0, 0, 0, 0]], np.float32)
    crops = reader.crop_lines(card_gray, [l.box for l in lines])
    meta = np.array([[l.field_index, *l.box, l.score] for l in lines], np.float32)
    return crops, meta


def stage_assemble(ctc_best: np.ndarray, line_meta: np.ndarray, card_gray: np.ndarray, read: Callable[[np.ndarray], np.ndarray],
                   corners: np.ndarray, confidence: float, found: bool, quality_measures: np.ndarray,
                   card_type: np.ndarray) -> OcrResult:
    """read: crops → the reader's output, for the unsure lines' second reading (fvi.reader.reread_unsure) and the
    short numbers' wider one (read_short_numbers_wider)."""
    boxes = [row[1:5] if row[0] >= 0 else None for row in line_meta]  # field −1: padding (no card, no line)
    texts = reader.reread_unsure(reader.decode(ctc_best), card_gray, boxes, read)
    texts = read_short_numbers_wider(texts, line_meta, card_gray, read)
    return assemble(texts, line_meta, corners, confidence, found, quality_measures, card_type,
                    lambda i: reader.readings(ctc_best[i]), lambda i, text: charset.ctc_log_prob(ctc_best[i], text))


def read_short_numbers_wider(texts: list[tuple[str, float]], line_meta: np.ndarray, card_gray: np.ndarray,
                             read: Callable[[np.ndarray], np.ndarray]) -> list[tuple[str, float]]:
    """An ID number or a date read with too few digits had its box cut short: read it again from a wider box
    (fvi.reader.wider; one reader call for the card) and take that reading when it has all the digits, at no
    more than the first reading's confidence. More digits than the field has are for the card rules to choose
    from (fvi.assemble.candidate_values)."""
    def missing(i: int, text: str) -> bool:
        got, want = digit_count(FIELDS[int(line_meta[i][0])], text)
        return 0 < got < want

    short = [i for i, (text, _) in enumerate(texts) if line_meta[i][0] >= 0 and missing(i, text)]
    if not short:
        return texts
    again = reader.decode(read(reader.crop_lines(card_gray, [reader.wider(line_meta[i][1:5], card_gray.shape[1])
                                                              for i in short])))
    out = list(texts)
    for i, (text, conf) in zip(short, again):
        got, want = digit_count(FIELDS[int(line_meta[i][0])], text)
        if got >= want:
            out[i] = (text, min(conf, texts[i][1]))
    return out


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
        self.cropper = onnx_session(models_dir / "cropper.onnx", intra_threads)
        self.detector = onnx_session(models_dir / "detector.onnx", intra_threads)
        self.reader = onnx_session(models_dir / "reader.onnx", intra_threads)

    def run_cropper(self, image: np.ndarray) -> np.ndarray:
        return self.cropper.run(None, {"image": image})[0]

    def run_reader(self, crops: np.ndarray) -> np.ndarray:
        return self.reader.run(None, {"line": crops})[0]

    def __call__(self, data: bytes, timings: dict[str, float] | None = None) -> OcrResult:
        """timings, if given, accumulates seconds per step under the ensemble's model names."""
        clock = _StepClock(timings)
        d = clock("decode", stage_decode, data)
        heatmaps = clock("cropper", self.run_cropper, d.cropper_input)
        w = clock("card_warp", stage_warp, data, d.letterbox, heatmaps[0], self.run_cropper)
        maps, card_type = clock("detector", self.detector.run, DETECTOR_OUTPUTS, {"card": w.detector_input})
        crops, meta = clock("line_crops", stage_line_crops, w.card, maps[0], bool(w.found[0]))
        best = clock("reader", self.run_reader, crops)
        return clock("assemble", stage_assemble, best, meta, w.card, self.run_reader, w.corners, float(w.confidence[0]),
                     bool(w.found[0]), w.quality, card_type[0])


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
