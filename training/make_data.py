"""Build the cached training/validation arrays for the three models from synthetic cards.

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

from fvi import cropper, detector, reader
from fvi.charset import CHARS, normalize
from fvi.geometry import letterbox
from fvi.schema import CARD_TYPES, FIELD_INDEX
from fvi.synth.card import render_text_line
from fvi.synth.dataset import TypedRenderers, resolve_card_types
from fvi.synth.identity import IdentityFactory
from fvi.synth.photo import (CAPTURE_STYLES, MILD, OUTPUT_SIZES, CaptureStyle, flatten_like_cropper, photograph,
                             scene_background)

NO_CARD_RATE = 0.06
# One type unless --card-types widens the data (a type drawn per card); the Makefile's train-data asks for all.
DEFAULT_CARD_TYPES: tuple[str, ...] = (CARD_TYPES[0],)


# The second look's input is cut around the first look's corners, which are off by about 1-3% of the
# diagonal on a hard photo: the training views are cut around true corners moved that much (per corner).
REFINE_CORNER_NOISE = 0.025
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


def _cropper_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, cropper.INPUT_SIZE, cropper.INPUT_SIZE, 3), np.uint8), np.zeros((n, 4, 2), np.float32)


def _refine_chunk(share: Share) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second-look views (fvi.cropper.refine_view) of full-size photos: the card zoomed to fill the input."""
    rng, ids, renderers = share.generators()
    images, corners = _cropper_arrays(share.count)
    for i in range(share.count):
        cap = photograph(renderers.pick(rng).render(ids.make(), rng), rng, style=share.style)
        diag = float(np.linalg.norm(cap.corners[0] - cap.corners[2]))
        noise = rng.normal(0, REFINE_CORNER_NOISE * rng.uniform(0.3, 1.5), (4, 2)) * diag
        view, lb = cropper.refine_view(cap.image, cap.corners + noise.astype(np.float32))
        images[i] = view.transpose(1, 2, 0)
        corners[i] = lb.to_input(cap.corners)
    return images, corners, np.ones(share.count, bool)


def _cropper_chunk(share: Share) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng, ids, renderers = share.generators()
    images, corners = _cropper_arrays(share.count)
    has_card = np.zeros(share.count, bool)
    for i in range(share.count):
        w, h = OUTPUT_SIZES[int(rng.integers(len(OUTPUT_SIZES)))]
        size = (int(w * 0.6), int(h * 0.6))
        if rng.random() < NO_CARD_RATE:
            img = np.clip(scene_background(*size, rng, share.style)[0], 0, 255).astype(np.uint8)
            images[i] = letterbox(img, cropper.INPUT_SIZE)[0]
            continue
        identity = ids.make()
        cap = photograph(renderers.pick(rng).render(identity, rng), rng, size=size, style=share.style)
        boxed, lb = letterbox(cap.image, cropper.INPUT_SIZE)
        images[i] = boxed
        corners[i] = lb.to_input(cap.corners)
        has_card[i] = True
    return images, corners, has_card


def source_line_height(polygon: np.ndarray) -> float:
    """A line's height in the photo (TL, TR, BR, BL polygon): how many pixels its letters had."""
    return float(np.linalg.norm(polygon[3] - polygon[0]) + np.linalg.norm(polygon[2] - polygon[1])) / 2


def _line_crops(flat: np.ndarray, flat_lines: list, photo_lines: list, rng: np.random.Generator) -> list[tuple[np.ndarray, str]]:
    """What the detector will hand the reader: each readable line cut with its box off by a few percent."""
    crops = []
    for line, seen in zip(flat_lines, photo_lines):
        if source_line_height(seen.polygon) < MIN_SOURCE_LINE_PX:
            continue
        x0, y0 = line.polygon.min(0)
        x1, y1 = line.polygon.max(0)
        h = y1 - y0
        jitter = rng.normal(0, [0.15 * h, 0.06 * h, 0.15 * h, 0.06 * h]).astype(np.float32)
        crops.append((reader.cut_line(flat, np.array([x0, y0, x1, y1], np.float32) + jitter), line.text))
    return crops


def _flat_chunk(share: Share) -> tuple[np.ndarray, np.ndarray, list, list]:
    rng, ids, renderers = share.generators()
    det_images = np.zeros((share.count, detector.INPUT_H, detector.INPUT_W, 3), np.uint8)
    det_types = np.zeros(share.count, np.int32)
    det_lines: list[tuple[int, int, np.ndarray]] = []
    crops: list[tuple[np.ndarray, str]] = []
    for i in range(share.count):
        renderer = renderers.pick(rng)
        det_types[i] = CARD_TYPES.index(renderer.card_type)
        cap = photograph(renderer.render(ids.make(), rng), rng, style=share.style)
        flat, lines = flatten_like_cropper(cap, rng)
        det_images[i] = cv2.resize(flat, (detector.INPUT_W, detector.INPUT_H), interpolation=cv2.INTER_AREA)
        for line in lines:
            det_lines.append((i, FIELD_INDEX[line.field], np.array([*line.polygon.min(0), *line.polygon.max(0)], np.float32)))
        crops += _line_crops(flat, lines, cap.lines, rng)
    return det_images, det_types, det_lines, crops


def _reader_cards_chunk(share: Share) -> list[tuple[np.ndarray, str]]:
    """Line crops of photographed cards for the reader alone (no detector arrays)."""
    rng, ids, renderers = share.generators()
    crops: list[tuple[np.ndarray, str]] = []
    for _ in range(share.count):
        cap = photograph(renderers.pick(rng).render(ids.make(), rng), rng, style=share.style)
        flat, lines = flatten_like_cropper(cap, rng)
        crops += _line_crops(flat, lines, cap.lines, rng)
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
    """A further batch of a kind, made with its own --seed beside the first: `kind-tag` (the --*-tag options)."""
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
    ap.add_argument("--cropper", type=int, default=6000)
    ap.add_argument("--cropper-refine", type=int, default=0, help="second-look views for the cropper (zoomed on the card)")
    ap.add_argument("--cropper-tag", default="",
                    help="names a further batch of --cropper / --cropper-refine photos, with its own --seed and capture: "
                         "cropper-<tag>_<split>.npz and cropper_refine-<tag>_<split>.npz, trained on as --data cropper-<tag>")
    ap.add_argument("--flat", type=int, default=2500)
    ap.add_argument("--lines", type=int, default=15000)
    ap.add_argument("--lines-tag", default="",
                    help="names a further batch of --lines, with its own --seed: reader_lines-<tag>_<split>.npz, "
                         "trained on as --data lines-<tag>")
    ap.add_argument("--reader-cards", type=int, default=0,
                    help="photographed cards cut into reader line crops only, into reader_cards-<capture>_<split>.npz "
                         "(more reader data in another capture style than --flat's)")
    ap.add_argument("--reader-cards-tag", default="",
                    help="names a further batch of --reader-cards, with its own --seed, next to those already made: "
                         "reader_cards-<capture>-<tag>_<split>.npz, trained on as --data cards-<capture>-<tag>")
    ap.add_argument("--invented-words", action="store_true",
                    help="--reader-cards with names, streets, communes and districts of random syllables "
                         "(fvi.synth.identity.invent_words), into reader_cards-<capture>-invented[-<tag>]_<split>.npz: "
                         "card crops with no word the name lists hold")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--card-types", default=",".join(DEFAULT_CARD_TYPES),
                    help=f"comma-separated card types for the cropper and detector/reader cards, one drawn per card, "
                         f"or 'mixed' for all of {', '.join(CARD_TYPES)} (default %(default)s)")
    ap.add_argument("--capture", default=MILD.name, choices=sorted(CAPTURE_STYLES),
                    help="capture style (fvi.synth.photo): mild (default) or wild (issue 3's range; its photographic "
                         "backgrounds come from the training part of the wallpapers)")
    a = ap.parse_args()
    invented = "-invented" if a.invented_words else ""
    # each file's name, once: the record below and the writes after it must agree
    detector_file, flat_crops_file = f"detector_{a.split}.npz", f"reader_cards_{a.split}.npz"
    cards_file = f"reader_{further(f'cards-{a.capture}{invented}', a.reader_cards_tag)}_{a.split}.npz"
    lines_file = f"reader_{further('lines', a.lines_tag)}_{a.split}.npz"
    cropper_file, refine_file = (f"{further(k, a.cropper_tag)}_{a.split}.npz" for k in ("cropper", "cropper_refine"))
    try:
        types = resolve_card_types("mixed") if a.card_types == "mixed" else resolve_card_types(card_types=a.card_types.split(","))
    except ValueError as e:
        ap.error(str(e))
    a.out.mkdir(parents=True, exist_ok=True)
    record_run(a.out, a.split, {"command": "python -m training.make_data " + " ".join(sys.argv[1:]), "seed": a.seed,
                                "card_types": list(types), "capture": a.capture},
               [f for f, n in ((detector_file, a.flat), (flat_crops_file, a.flat), (lines_file, a.lines),
                               (cropper_file, a.cropper), (refine_file, a.cropper_refine), (cards_file, a.reader_cards)) if n])
    if a.flat:
        parts = _run(_flat_chunk, a.flat, a.seed, a.workers, card_types=types, capture=a.capture)
        offset, det_lines, crops = 0, [], []
        for imgs, _, lines, cr in parts:
            det_lines += [(i + offset, c, b) for i, c, b in lines]
            crops += cr
            offset += len(imgs)
        np.savez(a.out / detector_file, images=np.concatenate([p[0] for p in parts]),
                 card_type=np.concatenate([p[1] for p in parts]),
                 line_card=np.array([l[0] for l in det_lines], np.int32), line_class=np.array([l[1] for l in det_lines], np.int32),
                 line_box=np.stack([l[2] for l in det_lines]).astype(np.float32))
        np.savez(a.out / flat_crops_file, **_pack_crops(crops))
    if a.reader_cards:
        crops = [c for part in _run(_reader_cards_chunk, a.reader_cards, a.seed + 19, a.workers,
                                    card_types=types, capture=a.capture, invented_words=a.invented_words)
                 for c in part]
        np.savez(a.out / cards_file, **_pack_crops(crops))
    if a.lines:
        crops = [c for part in _run(_line_chunk, a.lines, a.seed + 7, a.workers, chunk=500) for c in part]
        np.savez(a.out / lines_file, **_pack_crops(crops))
    for count, fn, file, offset in ((a.cropper, _cropper_chunk, cropper_file, 13), (a.cropper_refine, _refine_chunk, refine_file, 17)):
        if count:
            parts = _run(fn, count, a.seed + offset, a.workers, card_types=types, capture=a.capture)
            np.savez(a.out / file, images=np.concatenate([p[0] for p in parts]),
                     corners=np.concatenate([p[1] for p in parts]), has_card=np.concatenate([p[2] for p in parts]))


if __name__ == "__main__":
    main()
