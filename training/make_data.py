"""Build the cached training/validation arrays for the reader from synthetic cards.

Rendering is the slow part on a 2-core machine, so it is done once, in parallel, into .npz files
that training then reads for many epochs.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fvi import MODELS_DIR, reader, text_detector
from fvi.charset import CHARS, normalize
from fvi.schema import CARD_TYPES
from fvi.synth.card import render_text_line
from fvi.synth.dataset import TypedRenderers, resolve_card_types
from fvi.synth.identity import IdentityFactory
from fvi.synth.photo import CAPTURE_STYLES, MILD, CaptureStyle, photograph

# One type unless --card-types widens the data (a type drawn per card); the Makefile's train-data asks for all.
DEFAULT_CARD_TYPES: tuple[str, ...] = (CARD_TYPES[0],)


# A line under this many pixels tall in the photo has lost its diacritics to the sensor: no reader can
# know its text, so training on it teaches guessing. Such crops are left out of the reader's data.
MIN_SOURCE_LINE_PX = 8.0


@dataclass(frozen=True)
class Share:
    """One worker's share of a batch: its own seed and count, and what every share of the batch draws from."""

    seed: int
    count: int
    card_types: tuple[str, ...] = DEFAULT_CARD_TYPES
    capture: str = MILD.name
    invented_words: bool = False

    @cached_property
    def style(self) -> CaptureStyle:
        """Training photos lie on the training part of the wallpapers; evaluation keeps the rest (bench.evaluate)."""
        style = CAPTURE_STYLES[self.capture]
        return replace(style, wallpaper_set="train") if style.wallpaper else style

    def generators(self) -> tuple[np.random.Generator, IdentityFactory, TypedRenderers]:
        """Its own random draws, identities and card renderers, all from its seed."""
        return (np.random.default_rng(self.seed), IdentityFactory(self.seed, invented_words=self.invented_words),
                TypedRenderers(self.card_types))


def source_line_height(polygon: np.ndarray) -> float:
    """A line's height in the photo (TL, TR, BR, BL polygon): how many pixels its letters had."""
    return float(np.linalg.norm(polygon[3] - polygon[0]) + np.linalg.norm(polygon[2] - polygon[1])) / 2


_DETECTOR = None


def _run_detector(x: np.ndarray) -> np.ndarray:
    """The served text detector (models/detector.onnx), one session per worker process."""
    global _DETECTOR
    if _DETECTOR is None:
        from fvi.pipeline import onnx_session

        _DETECTOR = onnx_session(MODELS_DIR / "detector.onnx")
    return _DETECTOR.run(None, {"image": x})[0]


def detected_line_texts(lines: list[text_detector.Line], printed: list, reading_angle: float
                        ) -> list[tuple[np.ndarray, str]]:
    """Each detected line (oriented along the card's reading direction) with the text the card printed inside it:
    every printed piece (value or label) whose box it holds, left to right. A line that holds part of a piece (the
    detector cut a word) or pieces of two rows has no sure text and is left out, as is one that holds nothing."""
    c, s = np.cos(-reading_angle), np.sin(-reading_angle)
    rot = np.array([[c, -s], [s, c]])
    boxes = [(np.r_[(p.polygon @ rot.T).min(0), (p.polygon @ rot.T).max(0)], p) for p in printed]
    out = []
    for line in lines:
        quad = text_detector.orient(line.quad, reading_angle)
        q = quad @ rot.T
        x0, y0, x1, y1 = *q.min(0), *q.max(0)
        inside, unsure = [], False
        for b, p in boxes:
            cy = (b[1] + b[3]) / 2
            if not (y0 < cy < y1) or b[2] <= x0 or b[0] >= x1:
                continue
            cover = (min(x1, b[2]) - max(x0, b[0])) / max(1e-3, b[2] - b[0])
            if cover > 0.9:
                inside.append((b, p))
            elif cover > 0.1:
                unsure = True
        if unsure or not inside:
            continue
        hs = [b[3] - b[1] for b, _ in inside]
        cys = [(b[1] + b[3]) / 2 for b, _ in inside]
        if max(cys) - min(cys) > 0.5 * min(hs) or min(source_line_height(p.polygon) for _, p in inside) < MIN_SOURCE_LINE_PX:
            continue
        out.append((quad, " ".join(p.text for _, p in sorted(inside, key=lambda t: t[0][0]))))
    return out


def _reader_det_chunk(share: Share) -> list[tuple[np.ndarray, str]]:
    """Reader crops cut as the service cuts them: the text detector's lines on the whole photo, labels included."""
    rng, ids, renderers = share.generators()
    crops: list[tuple[np.ndarray, str]] = []
    for _ in range(share.count):
        cap = photograph(renderers.pick(rng).render(ids.make(), rng), rng, style=share.style)
        gray = cv2.cvtColor(cap.image, cv2.COLOR_RGB2GRAY)
        tl, tr = cap.corners[0], cap.corners[1]
        angle = float(np.arctan2(tr[1] - tl[1], tr[0] - tl[0]))
        lines = text_detector.find_lines(cap.image, _run_detector)
        crops += [(reader.cut_quad(gray, q), t) for q, t in detected_line_texts(lines, cap.lines + cap.labels, angle)]
    return crops


_SYLLABLE_CHARS = [c for c in CHARS if c.isalpha()]


def _random_text(rng: np.random.Generator) -> str:
    """Strings that cover the whole charset, including letters real names rarely use."""
    kind = rng.random()
    if kind < 0.5:
        words = ["".join(rng.choice(_SYLLABLE_CHARS, int(rng.integers(1, 7)))) for _ in range(int(rng.integers(1, 7)))]
        text = " ".join(words)
    elif kind < 0.75:
        text = "".join(rng.choice(list("0123456789"), int(rng.integers(2, 13))))
        if rng.random() < 0.5:
            text = f"{rng.integers(1, 32):02d}/{rng.integers(1, 13):02d}/{rng.integers(1930, 2100)}"
    else:
        text = "".join(rng.choice(CHARS, int(rng.integers(3, 30))))
    text = normalize(text)
    return text.upper() if rng.random() < 0.3 else text or "0"


def _line_chunk(share: Share) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(share.seed)
    out = []
    for _ in range(share.count):
        text = _random_text(rng)
        img = render_text_line(text, rng)
        w = int(np.clip(round(img.shape[1] * reader.INPUT_H / img.shape[0]), 8, reader.INPUT_W))
        img = cv2.resize(img, (w, reader.INPUT_H), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
        img = np.clip(img + rng.normal(0, rng.uniform(0, 8), img.shape), 0, 255).astype(np.uint8)
        out.append((img, text))
    return out


def _run(fn, total: int, seed: int, workers: int, chunk: int = 50, **batch):
    """fn over the batch's shares (`batch`: Share's other fields), in order."""
    jobs = [Share(seed * 1_000_003 + k, min(chunk, total - k * chunk), **batch) for k in range((total + chunk - 1) // chunk)]
    with mp.Pool(workers) as pool:
        return list(tqdm(pool.imap(fn, jobs), total=len(jobs), desc=fn.__name__.strip("_"), unit="chunk"))


def record_run(out: Path, split: str, run: dict, files: list[str]) -> None:
    """<split>.make_data.json: for each cache file, the command that made it (the model cards quote them)."""
    path = out / f"{split}.make_data.json"
    made = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(made | {f: run for f in files}, indent=1))


def further(kind: str, tag: str) -> str:
    """A further batch of a kind, made with its own --seed beside the first: `kind-tag` (the --*tag options)."""
    return f"{kind}-{tag}" if tag else kind


def _pack_crops(crops: list[tuple[np.ndarray, str]]) -> dict:
    images = np.zeros((len(crops), reader.INPUT_H, reader.INPUT_W), np.uint8)
    widths = np.zeros(len(crops), np.int32)
    for i, (img, _) in enumerate(crops):
        widths[i] = img.shape[1]
        images[i, :, : img.shape[1]] = img
    return {"images": images, "widths": widths, "texts": np.array([t for _, t in crops], dtype=str)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("data/cache"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lines", type=int, default=15000, help="rendered text lines: reader_lines[-<lines-tag>]_<split>.npz")
    ap.add_argument("--lines-tag", default="",
                    help="names a further batch of --lines, with its own --seed: reader_lines-<tag>_<split>.npz, "
                         "trained on as --data lines-<tag>")
    ap.add_argument("--reader-det", type=int, default=0,
                    help="photographed cards whose lines the served text detector finds, labels included, cut as the "
                         "service cuts them: reader_det-<capture>[-invented][-<tag>]_<split>.npz")
    ap.add_argument("--tag", default="",
                    help="names a further batch of --reader-det, with its own --seed, next to those already made: "
                         "reader_det-<capture>[-invented]-<tag>_<split>.npz, trained on as --data det-<capture>[-invented]-<tag>")
    ap.add_argument("--invented-words", action="store_true",
                    help="--reader-det with names, streets, communes and districts of random syllables "
                         "(fvi.synth.identity.invent_words), into reader_det-<capture>-invented[-<tag>]_<split>.npz: "
                         "card crops with no word the name lists hold")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--card-types", default=",".join(DEFAULT_CARD_TYPES),
                    help=f"comma-separated card types for --reader-det, one drawn per card, "
                         f"or 'mixed' for all of {', '.join(CARD_TYPES)} (default %(default)s)")
    ap.add_argument("--capture", default=MILD.name, choices=sorted(CAPTURE_STYLES),
                    help="capture style (fvi.synth.photo): mild (default) or wild (issue 3's range; its photographic "
                         "backgrounds come from the training part of the wallpapers)")
    a = ap.parse_args()
    invented = "-invented" if a.invented_words else ""
    # each file's name, once: the record below and the writes after it must agree
    lines_file = f"reader_{further('lines', a.lines_tag)}_{a.split}.npz"
    det_file = f"reader_{further(f'det-{a.capture}{invented}', a.tag)}_{a.split}.npz"
    try:
        types = resolve_card_types("mixed") if a.card_types == "mixed" else resolve_card_types(card_types=a.card_types.split(","))
    except ValueError as e:
        ap.error(str(e))
    a.out.mkdir(parents=True, exist_ok=True)
    record_run(a.out, a.split, {"command": "python -m training.make_data " + " ".join(sys.argv[1:]), "seed": a.seed,
                                "card_types": list(types), "capture": a.capture},
               [f for f, n in ((lines_file, a.lines), (det_file, a.reader_det)) if n])
    if a.reader_det:
        crops = [c for part in _run(_reader_det_chunk, a.reader_det, a.seed + 23, a.workers, chunk=20,
                                    card_types=types, capture=a.capture, invented_words=a.invented_words)
                 for c in part]
        np.savez(a.out / det_file, **_pack_crops(crops))
    if a.lines:
        crops = [c for part in _run(_line_chunk, a.lines, a.seed + 7, a.workers, chunk=500) for c in part]
        np.savez(a.out / lines_file, **_pack_crops(crops))


if __name__ == "__main__":
    main()
