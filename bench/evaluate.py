"""`make eval`: the figures of issue 3 on a held-out synthetic test set, ours next to Tesseract's.

    python -m bench.evaluate [--cards-per-type 500] [--no-card-images N] [--seed 4300]
                             [--card-types a,b] [--tesseract-cards 100] [--triton-url HOST:PORT] [--out reports]

1. The test set: `--cards-per-type` photographed cards of every type in fvi.schema.CARD_TYPES
   (or --card-types; fvi.synth.dataset, seed SEED + the type's index in CARD_TYPES) and card-free photos (fvi.synth.photo
   .scene_background, seed SEED + 1000), written once to data/eval/<SEED>/ with their ground
   truth and reused by later runs. None of these seeds is used for training (training: 1, 2).
2. The served ensemble (the real tritonserver, started here unless --triton-url names one, called
   concurrently with client.fvi_client) and the in-process ReferencePipeline read every photo;
   Tesseract 5 (Vietnamese) reads the first --tesseract-cards photos of each folder, twice
   (bench/tesseract_peer.py: the full photo with the card's labels, and the ensemble's own line crops
   joined into fields by our linker).
3. reports/eval.md + reports/eval.json: every figure, overall and sliced by capture condition, the
   targets of issue 3 with met / not met, and reports/eval_failures/*.jpg (annotated failures).

Every figure is on synthetic cards: no real ID card images exist here.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rapidfuzz.distance import Levenshtein
from tqdm import tqdm

from fvi import MODELS_DIR, quality
from fvi.schema import CARD_TYPES, FIELDS, STATUS_NO_CARD, STATUS_OK
from fvi.synth.dataset import generate
from fvi.synth.domain import DOMAINS, TRAIN, RenderDomain
from fvi.synth.photo import CAPTURE_STYLES, MILD, OUTPUT_SIZES, CaptureStyle, scene_background

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "data" / "eval"
DEFAULT_SEED = 4300
NO_CARD_SEED_OFFSET = 1000
NO_CARD_DIR = "no_card"
SYSTEMS: tuple[str, ...] = ("ensemble", "reference", "tesseract_full", "tesseract_lines")
SYSTEM_NAMES = {
    "ensemble": "ours, served (fvi_ensemble on tritonserver)",
    "reference": "ours, in-process (ReferencePipeline)",
    "tesseract_full": "Tesseract 5 vie, full photo + label rules",
    "tesseract_lines": "Tesseract 5 vie, our line crops + our linker",
}
CONFIDENT = 0.95  # a field returned with at least this confidence and wrong is a false confidence
CORNER_TOLERANCE = 0.03  # of the card diagonal
SMALL_CARD_FILL = 0.6  # card's long side / frame's short side (the generator draws 0.45-0.95)
DETECTION_IOU = 0.5  # a predicted line and the true lines it holds, as polygons (match_lines)
COVERED = 0.9  # share of a true line's length inside a predicted line for that line to hold it
MIDLINE_SAMPLES = 41  # points a true line's length is measured at (every 2.5%)
# Mean grey of the card at its true corners (fvi.quality's brightness). Cards in full light measure
# ~200; fvi.quality warns below 75, which the generator's light (x0.6-1.15, shadows x0.55-0.85)
# rarely reaches, so the "low light" bucket is the dimmest cards: under 60% of full light.
LOW_LIGHT_BRIGHTNESS = 120.0


# The nets trained on our cards. The text detector is PP-OCRv4's DB net as shipped, trained on real photos of any
# text (converters/db_detector.py), and the cropper step has no net (a homography from the labels read).
TRAINED_NETS: tuple[str, ...] = ("reader",)


def card_types_by_model(models_dir: Path = MODELS_DIR, nets: Iterable[str] = TRAINED_NETS) -> dict[str, tuple[str, ...]]:
    """The card types each committed model trained on our cards saw, as its model card records (training.make_data's
    --card-types). A card that records no data is of a model trained before types could mix, on the chip
    2021 card alone."""
    out = {}
    for net in nets:
        card = json.loads((models_dir / f"{net}.metrics.json").read_text())
        seen = card.get("data", {}).get("train", {}).get("card_types", [CARD_TYPES[0]])
        out[net] = tuple(t for t in CARD_TYPES if t in seen)
    return out


def common_card_types(by_model: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(t for t in CARD_TYPES if all(t in types for types in by_model.values()))


def trained_card_types(models_dir: Path = MODELS_DIR) -> tuple[str, ...]:
    """The card types every committed model was trained on; the report names the types some model has not seen."""
    return common_card_types(card_types_by_model(models_dir))


# Issue 3's targets: figure key -> (comparison, threshold, what it says)
TARGETS: dict[str, tuple[str, float, str]] = {
    "mean_corner_error_pct": ("<=", 1.0, "mean corner error (% of card diagonal)"),
    "all_corners_within_3pct": (">=", 0.99, "cards with every corner within 3% of the diagonal"),
    "orientation_right": (">=", 0.995, "orientation right (0-360° rotation)"),
    "no_card_recognised": (">=", 0.99, "card-free photos answered no card"),
    "false_no_card": ("<=", 0.005, "false no card (cards answered no card)"),
    "line_precision": (">=", 0.99, "detector line precision (printed lines, labels included; IoU ≥ 0.5)"),
    "line_recall": (">=", 0.99, "detector line recall (printed lines, labels included; IoU ≥ 0.5)"),
    "reader_cer": ("<=", 0.005, "reader character error rate (the pipeline's line crops)"),
    "reader_line_accuracy": (">=", 0.98, "reader line accuracy (the pipeline's line crops)"),
    **{f"exact_match.{f}": (">=", 0.995 if f == "id_number" else 0.97, f"exact match: {f}") for f in FIELDS},
    "whole_card": (">=", 0.90, "whole card, all fields right"),
    "false_confidence": ("<=", 0.005, "false confidence (confidence ≥ 0.95 and wrong)"),
    "card_type_identified": (">=", 0.995, "card type identified"),
}


# ----------------------------------------------------------------------------------------- test set


@dataclass
class Item:
    """One photo of the test set and its ground truth (card_type None: a card-free photo)."""

    path: Path
    truth: dict
    index: int  # position within its folder (the Tesseract subset is the first N of each folder)

    @property
    def has_card(self) -> bool:
        return self.truth.get("card_type") is not None

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"


def measured_conditions(image: np.ndarray, corners: np.ndarray) -> dict[str, float]:
    """fvi.quality's measures of the card at its true corners: light and sharpness as the photo has them, on the
    view the cropper step measures (fvi.pipeline.stage_cropper)."""
    values = quality.measure(image.shape, corners, quality.card_view(image, corners))
    return {k: round(float(v), 3) for k, v in zip(quality.MEASURES, values)}


def _write_item(folder: Path, name: str, jpeg: bytes, truth: dict) -> None:
    (folder / f"{name}.jpg").write_bytes(jpeg)
    (folder / f"{name}.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")


def _complete(folder: Path, count: int, needs: str | None = None) -> bool:
    """At least `count` photos and, with `needs`, ground truth that records it: a set written before the truth
    had "labels" (the printed label words, which the detector figures count) is written again, the same photos."""
    truths = sorted(folder.glob("*.json"))[:count] if folder.is_dir() else []
    if len(truths) < count:
        return False
    return needs is None or all(needs in json.loads(p.read_text(encoding="utf-8")) for p in truths)


def no_card_photo(rng: np.random.Generator, style: CaptureStyle = MILD) -> tuple[bytes, dict]:
    """A card-free phone photo: a background of the kind cards lie on (in the wild style, photographs half
    of the time), JPEG as phones send it."""
    w, h = OUTPUT_SIZES[int(rng.integers(len(OUTPUT_SIZES)))]
    background, photographic = scene_background(w, h, rng, style)
    img = np.clip(background, 0, 255).astype(np.uint8)
    q = int(rng.integers(*style.jpeg_quality))
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    conditions: dict = {"jpeg_quality": q, "size": [w, h]}
    if style != MILD:
        conditions["photo_background"] = photographic
    return enc.tobytes(), conditions


def evaluation_style(capture: str) -> CaptureStyle:
    """Test photos lie on wallpapers no training photo used (training.make_data takes the other set)."""
    style = CAPTURE_STYLES[capture]
    return replace(style, wallpaper_set="held_out") if style.wallpaper else style


def ensure_test_set(root: Path, seed: int, cards_per_type: int, no_card_images: int,
                    card_types: Iterable[str] = CARD_TYPES, style: CaptureStyle = MILD,
                    invented_words: bool = False, domain: RenderDomain = TRAIN) -> list[Item]:
    """Generate what is missing under root/<seed>/ and return the first N items of every folder.

    A folder is regenerated whole when it holds fewer photos than asked (generation is sequential
    for a seed, so a larger set starts with the smaller one's photos).
    """
    base = root / (str(seed) if style == MILD else f"{seed}-{style.name}" + ("" if style.wallpaper_set == "all" else f"-{style.wallpaper_set}"))
    if invented_words:
        base = base.with_name(base.name + "-invented")
    if domain != TRAIN:
        base = base.with_name(base.name + f"-{domain.name}")
    for card_type in card_types:
        folder = base / card_type
        if _complete(folder, cards_per_type, needs="labels"):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        t = CARD_TYPES.index(card_type)  # a type's photos do not depend on which other types are asked for
        for s in tqdm(generate(cards_per_type, seed + t, card_type, style=style, invented_words=invented_words,
                               domain=domain),
                      total=cards_per_type,
                      desc=f"test set {card_type}", unit="card"):
            truth = s.ground_truth()
            truth["measured"] = measured_conditions(s.capture.image, s.capture.corners)
            _write_item(folder, s.name, s.capture.jpeg, truth)
    folder = base / NO_CARD_DIR
    if no_card_images and not _complete(folder, no_card_images):
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed + NO_CARD_SEED_OFFSET)
        for i in tqdm(range(no_card_images), desc="test set card-free", unit="photo"):
            jpeg, conditions = no_card_photo(rng, style)
            name = f"{seed + NO_CARD_SEED_OFFSET:04d}_{i:05d}"
            _write_item(folder, name, jpeg, {"image": f"{name}.jpg", "card_type": None, "conditions": conditions})
    items: list[Item] = []
    for sub, count in [*((c, cards_per_type) for c in card_types), (NO_CARD_DIR, no_card_images)]:
        for i, p in enumerate(sorted((base / sub).glob("*.json"))[:count]):
            items.append(Item(p.with_suffix(".jpg"), json.loads(p.read_text(encoding="utf-8")), i))
    return items


# --------------------------------------------------------------------------------------- the runs


@dataclass
class Outcome:
    """What one system answered for one photo: an OcrResult-shaped dict, plus LINE_META when served."""

    result: dict | None  # None: the photo was refused or the call failed (see error)
    line_meta: np.ndarray | None = None
    error: str | None = None
    # False: the lines came from another system's detector (Tesseract reading our crops): its reading is
    # scored on them, the detector figures are not its work
    detected_lines: bool = True

    @property
    def status(self) -> str:
        return self.result["status"] if self.result else "error"


def _parallel(fn: Callable[[Item], Outcome], items: list[Item], workers: int, desc: str) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item, outcome in tqdm(zip(items, pool.map(fn, items)), total=len(items), desc=desc, unit="photo"):
            out[item.name] = outcome
    return out


def run_ensemble(items: list[Item], url: str, concurrency: int = 8, timeout: float = 60.0) -> dict[str, Outcome]:
    """Every photo through the served fvi_ensemble, `concurrency` requests in flight (Triton batches them)."""
    from client.fvi_client import ImageRejected, connect, infer

    client = connect(url, timeout)

    def one(item: Item) -> Outcome:
        try:
            out = infer(client, item.path.read_bytes(), timeout)
        except ImageRejected as e:
            return Outcome(None, error=str(e))
        return Outcome(out.result, out.line_meta)

    return _parallel(one, items, concurrency, "served ensemble")


def run_reference(items: list[Item], threads: int = 2) -> dict[str, Outcome]:
    """Every photo through the in-process ReferencePipeline (onnxruntime sessions are thread-safe)."""
    from fvi.image_io import ImageError
    from fvi.pipeline import ReferencePipeline

    pipeline = ReferencePipeline()

    def one(item: Item) -> Outcome:
        try:
            return Outcome(pipeline(item.path.read_bytes()).to_dict())
        except ImageError as e:
            return Outcome(None, error=f"{e.code}: {e}")

    return _parallel(one, items, threads, "in-process reference")


def run_tesseract(items: list[Item], served: dict[str, Outcome], threads: int = 2) -> dict[str, dict[str, Outcome]]:
    """Tesseract's two rows on `items`: the full photo, and the crops the ensemble's reader got."""
    from bench import tesseract_peer

    def full(item: Item) -> Outcome:
        return Outcome(tesseract_peer.read_full_image(item.path.read_bytes()))

    def lines(item: Item) -> Outcome:
        s = served[item.name]
        if s.result is None or s.line_meta is None:  # refused: there are no lines to read
            return Outcome(s.result, error=s.error)
        return Outcome(tesseract_peer.read_line_crops(item.path.read_bytes(), s.line_meta), s.line_meta,
                       detected_lines=False)

    return {"tesseract_full": _parallel(full, items, threads, "tesseract, full photo"),
            "tesseract_lines": _parallel(lines, [i for i in items if i.has_card], threads, "tesseract, line crops")}


# ------------------------------------------------------------------------------------------ scoring


def corner_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, bool]:
    """Per-corner error as a fraction of the card diagonal (corners as returned), and whether the
    orientation is right: of the four cyclic assignments of the predicted to the true corners, the one
    with the smallest error is the identity, not a rotation of the card by 90/180/270°."""
    pred, truth = np.asarray(pred, np.float64).reshape(4, 2), np.asarray(truth, np.float64).reshape(4, 2)
    diag = float(np.linalg.norm(truth[0] - truth[2]))
    per_shift = [np.linalg.norm(np.roll(pred, -k, axis=0) - truth, axis=1).mean() for k in range(4)]
    return np.linalg.norm(pred - truth, axis=1) / diag, int(np.argmin(per_shift)) == 0


def truth_lines(truth: dict) -> list[tuple[np.ndarray, str]]:
    """Every line printed on the card as (polygon 4 x 2 in photo pixels, text): the values' lines and the printed
    labels and headers, which the detector must find too (the linker reads the fields off the labels)."""
    return [(np.asarray(l["polygon"], np.float32).reshape(4, 2), l["text"]) for l in [*truth["lines"], *truth["labels"]]]


def predicted_lines(result: dict, line_meta: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """(quad 4 x 2 in photo pixels, corners in reading order; read text) of every LINE_META line, the texts
    from RESULT's line_texts."""
    from client.annotate import line_quads, line_texts

    return [(q, t) for (q, _), t in zip(line_quads(line_meta), line_texts(result, line_meta))]


def polygon_area(poly: np.ndarray) -> float:
    return abs(float(cv2.contourArea(np.asarray(poly, np.float32))))


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """Area of the intersection of two convex polygons (a line's quad, a true line's polygon)."""
    area, _ = cv2.intersectConvexConvex(np.asarray(a, np.float32), np.asarray(b, np.float32))
    return max(0.0, float(area))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two convex polygons."""
    inter = overlap_area(a, b)
    union = polygon_area(a) + polygon_area(b) - inter
    return inter / union if union > 0 else 0.0


def midline(poly: np.ndarray, samples: int = MIDLINE_SAMPLES) -> np.ndarray:
    """Points along a line's middle, from the middle of its start side to that of its end side (TL, TR, BR, BL)."""
    start, end = (poly[0] + poly[3]) / 2, (poly[1] + poly[2]) / 2
    return start + (end - start) * np.linspace(0.0, 1.0, samples, dtype=np.float32)[:, None]


def inside(quad: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which points lie in a convex quad (either winding)."""
    edges = np.roll(quad, -1, axis=0) - quad
    d = points[:, None, :] - quad[None]
    cross = edges[None, :, 0] * d[..., 1] - edges[None, :, 1] * d[..., 0]
    return np.all(cross >= 0, axis=1) | np.all(cross <= 0, axis=1)


def match_lines(pred: list[np.ndarray], truth: list[np.ndarray]) -> dict[int, list[int]]:
    """Which true lines each predicted line found: predicted index → true indices in its reading order.

    Not one to one at IoU ≥ 0.5: a label and its value printed on one row are two true lines, and the text
    detector may find them as one line (they are a space apart) or as two; the reader reads both either way. So
    a true line is held by a predicted line that covers at least COVERED of its length (its midline), of several
    the one of highest IoU with it; a true line split across two detected lines is held by neither (not found
    whole). Length, not area: a true line's polygon is its font's ascent-to-descent band and DB's box hugs the
    ink, so a line of capitals or digits found exactly has only 70-90% of its area inside. A predicted line then
    found the lines it holds when its IoU with them is at least DETECTION_IOU (printed lines do not overlap, so
    their union's area is the sum): a box spanning half the card holds lines but finds none. Polygons
    throughout, not axis-aligned boxes: on a turned card a line's box takes in its neighbours."""
    held: dict[int, list[int]] = {}
    for g, t in enumerate(truth):
        points = midline(t)
        holders = [(iou(t, p), i) for i, p in enumerate(pred) if inside(p, points).mean() >= COVERED]
        if holders:
            held.setdefault(max(holders)[1], []).append(g)
    found: dict[int, list[int]] = {}
    for i, gs in held.items():
        inter = sum(overlap_area(truth[g], pred[i]) for g in gs)
        union = polygon_area(pred[i]) + sum(polygon_area(truth[g]) for g in gs) - inter
        if union > 0 and inter / union >= DETECTION_IOU:
            along = pred[i][1] - pred[i][0] + pred[i][2] - pred[i][3]  # the line's reading direction
            found[i] = sorted(gs, key=lambda g: float(truth[g].mean(axis=0) @ along))
    return found


def true_text(truth: list[tuple[np.ndarray, str]], held: list[int]) -> str:
    """What a detected line should read: the true lines it found, in its reading order, a space apart (a label
    and its value are printed a space apart)."""
    return " ".join(truth[g][1] for g in held)


def line_counts(result: dict, line_meta: np.ndarray, truth: dict) -> Counter[str]:
    """One photo's detector and reader counts: true lines and those found, predicted lines on the card and those
    that found some (match_lines); on those, the reader's edits against true_text, its characters, lines read
    exactly. A detected line whose centre lies off the card (its true corners) is text of the scene, rightly
    found by a text detector and the linker's to ignore: no precision is lost nor gained on it."""
    card = np.asarray(truth["corners"], np.float32).reshape(4, 2)
    pred = [(q, t) for q, t in predicted_lines(result, line_meta) if inside(card, q.mean(axis=0, keepdims=True))[0]]
    gt = truth_lines(truth)
    matched = match_lines([q for q, _ in pred], [p for p, _ in gt])
    counts = Counter(true=len(gt), true_found=sum(map(len, matched.values())), predicted=len(pred),
                     predicted_found=len(matched))
    for i, held in matched.items():
        text = true_text(gt, held)
        counts["edits"] += Levenshtein.distance(pred[i][1], text)
        counts["chars"] += len(text)
        counts["read_right"] += pred[i][1] == text
    return counts


def _rate(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def fields_right(result: dict, truth: dict) -> dict[str, bool]:
    """Which fields a result got exactly right against the card's ground truth."""
    return {f: (result["fields"].get(f) or {}).get("value") == truth["fields"][f] for f in FIELDS}


def per_photo(items: list[Item], outcomes: dict[str, Outcome]) -> dict[str, dict[str, Any]]:
    """Each photo's own outcome, for comparing two runs photo by photo (bench.compare): its status and, for a card
    read, which fields were right (one 0/1 per fvi.schema.FIELDS) and whether every corner was within 3%. What
    was right, never what was read."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        o = outcomes.get(item.name)
        if o is None:
            continue
        out[item.name] = record = {"card": item.has_card, "status": o.status}
        if item.has_card and o.status == STATUS_OK:
            record["right"] = "".join("1" if ok else "0" for ok in fields_right(o.result, item.truth).values())
            if o.result.get("corners") is not None:
                err, _ = corner_errors(o.result["corners"], item.truth["corners"])
                record["corners_within_3pct"] = bool(err.max() <= CORNER_TOLERANCE)
    return out


def score(items: list[Item], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """Every figure of one system on the items it read (items without an outcome are not counted)."""
    cards = [i for i in items if i.has_card and i.name in outcomes]
    free = [i for i in items if not i.has_card and i.name in outcomes]
    found = no_card = whole = confident = confident_wrong = type_right = within = oriented = 0
    right = {f: 0 for f in FIELDS}
    errors: list[float] = []
    lines: Counter[str] = Counter()
    has_conf = has_type = has_corners = has_lines = False
    own_lines = True
    for item in cards:
        o = outcomes[item.name]
        if o.status == STATUS_NO_CARD:
            no_card += 1
        if o.result is not None and o.line_meta is not None:  # found or not: a detector miss may lose the card
            has_lines = True
            own_lines = own_lines and o.detected_lines
            lines += line_counts(o.result, o.line_meta, item.truth)
        if o.status != STATUS_OK:
            continue
        found += 1
        r = o.result
        ok = fields_right(r, item.truth)
        for f in FIELDS:
            right[f] += ok[f]
            conf = (r["fields"].get(f) or {}).get("confidence")
            if conf is not None:
                has_conf = True
                if conf >= CONFIDENT:
                    confident += 1
                    confident_wrong += not ok[f]
        whole += all(ok.values())
        if r.get("card_type") is not None:
            has_type = True
        type_right += r.get("card_type") == item.truth["card_type"]
        if r.get("corners") is not None:
            has_corners = True
            err, orient = corner_errors(r["corners"], item.truth["corners"])
            errors.append(float(err.mean()))
            within += bool(err.max() <= CORNER_TOLERANCE)
            oriented += orient
    n = len(cards)
    free_no_card = sum(outcomes[i.name].status == STATUS_NO_CARD for i in free)
    return {
        "cards": n,
        "failed_requests": sum(outcomes[i.name].result is None for i in cards + free),
        "card_free_images": len(free),
        "card_found": _rate(found, n),
        "false_no_card": _rate(no_card, n),
        "no_card_recognised": _rate(free_no_card, len(free)),
        "exact_match": {f: _rate(right[f], n) for f in FIELDS},
        "id_number": _rate(right["id_number"], n),
        "whole_card": _rate(whole, n),
        "confident_fields": confident if has_conf else None,
        "false_confidence": _rate(confident_wrong, confident) if has_conf else None,
        "card_type_identified": _rate(type_right, n) if has_type else None,
        "mean_corner_error_pct": round(100 * float(np.mean(errors)), 3) if errors else None,
        "all_corners_within_3pct": _rate(within, n) if has_corners else None,
        "orientation_right": _rate(oriented, found) if has_corners else None,
        "line_precision": _rate(lines["predicted_found"], lines["predicted"]) if has_lines and own_lines else None,
        "line_recall": _rate(lines["true_found"], lines["true"]) if has_lines and own_lines else None,
        "reader_cer": round(lines["edits"] / lines["chars"], 5) if has_lines and lines["chars"] else None,
        "reader_line_accuracy": _rate(lines["read_right"], lines["predicted_found"]) if has_lines else None,
    }


def identical(a: Outcome, b: Outcome) -> bool:
    """Same status, card type, field values, confidences (±0.001) and corners (±0.01 px)."""
    if a.result is None or b.result is None:
        return a.result is None and b.result is None
    ra, rb = a.result, b.result
    if (ra["status"], ra.get("card_type")) != (rb["status"], rb.get("card_type")) or set(ra["fields"]) != set(rb["fields"]):
        return False
    if not np.allclose(np.asarray(ra["corners"], float), np.asarray(rb["corners"], float), atol=1e-2):
        return False
    return all(ra["fields"][f]["value"] == rb["fields"][f]["value"]
               and abs(ra["fields"][f]["confidence"] - rb["fields"][f]["confidence"]) <= 1e-3 for f in ra["fields"])


# What the service told the user about a card photo (fvi.quality's warnings): an eKYC front end acting on them keeps
# the accepted photos and asks for another of the rest.
VERDICT = "capture verdict (served)"
ACCEPTED, RETAKE = "accepted", "retake asked"


def capture_verdict(o: Outcome) -> str:
    """accepted: a card read with none of the warnings that ask for another photo (quality.RETAKE_CODES);
    retake asked: one of them, no card found, or the photo refused."""
    if o.status != STATUS_OK:
        return RETAKE
    return RETAKE if {w["code"] for w in o.result.get("warnings", [])} & quality.RETAKE_CODES else ACCEPTED


def slices(truth: dict) -> dict[str, str]:
    """The condition buckets a card photo belongs to (ground truth of the generator, and fvi.quality's
    measures of the card at its true corners for light, so no system's own output decides a bucket)."""
    c = truth["conditions"]
    rot = float(c["rotation"]) % 360
    lo = int(rot // 90) * 90
    q = int(c["jpeg_quality"])
    brightness = (truth.get("measured") or {}).get("brightness")
    small = float(c["card_fill"]) < SMALL_CARD_FILL
    return {
        "card type": truth["card_type"],
        "rotation": f"{lo}-{lo + 90}°",
        "blur": "sharp" if not c["blur"] else "blurred (σ>0)",
        "glare": "glare" if c["glare"] else "no glare",
        "low light": "n/a" if brightness is None else (
            f"low (card < {LOW_LIGHT_BRIGHTNESS:.0f} grey)" if brightness < LOW_LIGHT_BRIGHTNESS else "normal"),
        "small card": f"small (fill < {SMALL_CARD_FILL})" if small else "normal",
        # the two that take most from the print, together (a blurred small card's tone marks are a pixel or two)
        "blur and size": ("blurred (σ ≥ 1)" if c["blur"] >= 1 else "sharp (σ < 1)") + (", small" if small else ", large"),
        "jpeg quality": "<60" if q < 60 else ("60-80" if q <= 80 else ">80"),
        **_wild_slices(c),
    }


def _wild_slices(c: dict) -> dict[str, str]:
    """Buckets only the wild capture style records (fvi.synth.photo.WILD); none for mild sets."""
    if "tilt_deg" not in c:
        return {}
    return {
        "tilt": "≤ 15°" if c["tilt_deg"] <= 15 else ("15-25°" if c["tilt_deg"] <= 25 else "> 25°"),
        "motion blur": "motion blur" if c["motion_blur_px"] else "steady",
        "finger over an edge": "finger" if c["occluded"] else "clear",
        "background": "photographic" if c["photo_background"] else "procedural",
    }



def evaluate(cards_per_type: int, seed: int = DEFAULT_SEED, no_card_images: int | None = None,
             tesseract_cards: int = 100, triton_url: str | None = None, data_root: Path = DATA_ROOT,
             concurrency: int = 8, threads: int = 2, tesseract: bool = True,
             card_types: Iterable[str] = CARD_TYPES, capture: str = MILD.name, invented_words: bool = False,
             domain: str = TRAIN.name) -> tuple[dict, list[Item], dict[str, dict[str, Outcome]]]:
    """Build/reuse the test set, run every system, score them. Returns the report and the raw outcomes."""
    card_types = tuple(card_types)
    if no_card_images is None:
        no_card_images = max(10, cards_per_type * len(card_types) // 5)
    items = ensure_test_set(data_root, seed, cards_per_type, no_card_images, card_types, evaluation_style(capture),
                            invented_words, DOMAINS[domain])
    seconds: dict[str, float] = {}
    outcomes: dict[str, dict[str, Outcome]] = {}

    t0 = time.perf_counter()
    server = None
    if triton_url is None:
        from fvi.triton_launcher import RUN_DIR, TritonServer

        server = TritonServer(log_path=RUN_DIR / "eval_tritonserver.log").start()
        triton_url = server.grpc_url
    try:
        outcomes["ensemble"] = run_ensemble(items, triton_url, concurrency)
    finally:
        if server is not None:
            server.stop()
    seconds["ensemble"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    outcomes["reference"] = run_reference(items, threads)
    seconds["reference"] = round(time.perf_counter() - t0, 1)

    from bench import tesseract_peer

    tess_version = None
    if tesseract and tesseract_peer.available() and tesseract_cards > 0:
        tess_version = tesseract_peer.version()
        t0 = time.perf_counter()
        subset = [i for i in items if i.index < tesseract_cards]
        outcomes.update(run_tesseract(subset, outcomes["ensemble"], threads))
        seconds["tesseract"] = round(time.perf_counter() - t0, 1)

    cards = [i for i in items if i.has_card]
    by_model = card_types_by_model()
    trained = common_card_types(by_model)
    report: dict[str, Any] = {
        "data": "synthetic photographed cards (fvi.synth) and synthetic card-free photos; no real ID cards",
        "seed": seed,
        "card_types": list(card_types),
        "trained_card_types": [t for t in card_types if t in trained],
        "untrained_card_types": [t for t in card_types if t not in trained],
        "card_types_by_model": {net: list(types) for net, types in by_model.items()},
        "cards_per_type": cards_per_type,
        "capture": capture,
        "words": "invented" if invented_words else "name lists",
        "domain": domain,
        "cards": len(cards),
        "card_free_images": len(items) - len(cards),
        "tesseract_version": tess_version,
        "command": " ".join(["python -m bench.evaluate", *sys.argv[1:]]) if sys.argv[0].endswith("evaluate.py") else None,
        "seconds": seconds,
        "systems": {},
        "agreement_ensemble_reference": _rate(sum(identical(outcomes["ensemble"][i.name], outcomes["reference"][i.name])
                                                  for i in cards), len(cards)),
    }
    # every system's photos are bucketed alike: by their conditions, and by what the served ensemble told the user
    verdicts = {i.name: capture_verdict(outcomes["ensemble"][i.name]) for i in cards}
    buckets_of = {i.name: slices(i.truth) | {VERDICT: verdicts[i.name]} for i in cards}
    for system, outs in outcomes.items():
        by_slice: dict[str, dict[str, Any]] = {}
        for dim in buckets_of[cards[0].name] if cards else []:
            buckets: dict[str, list[Item]] = {}
            for i in cards:
                buckets.setdefault(buckets_of[i.name][dim], []).append(i)
            by_slice[dim] = {b: score(sub, outs) for b, sub in sorted(buckets.items(), key=lambda kv: _bucket_order(kv[0]))}
        report["systems"][system] = {"description": SYSTEM_NAMES[system], "overall": score(items, outs), "slices": by_slice}
    report["tesseract_cards_per_type"] = min(tesseract_cards, cards_per_type) if tess_version else 0
    if tess_version:  # ours on exactly the photos Tesseract read, for the side-by-side table
        subset = [i for i in items if i.index < tesseract_cards]
        report["same_photos_as_tesseract"] = {s: score(subset, outcomes[s]) for s in SYSTEMS if s in outcomes}
    report["targets"] = targets_table(report)
    report["per_photo"] = {"ensemble": per_photo(items, outcomes["ensemble"])}
    return report, items, outcomes


def _bucket_order(bucket: str) -> tuple:
    digits = "".join(ch for ch in bucket.split("-")[0] if ch.isdigit())
    return (bucket[:1] != "<", int(digits) if digits else math.inf, bucket)


def _figure(overall: dict, key: str) -> float | None:
    if key.startswith("exact_match."):
        return overall["exact_match"][key.split(".", 1)[1]]
    return overall.get(key)


def targets_table(report: dict) -> list[dict[str, Any]]:
    """Issue 3's targets, each with every system's figure and met / not met for the served ensemble."""
    rows = []
    for key, (op, threshold, what) in TARGETS.items():
        values = {s: _figure(r["overall"], key) for s, r in report["systems"].items()}
        rows.append({"figure": key, "what": what, "target": f"{op} {threshold:g}", "values": values,
                     "met": meets(key, values.get("ensemble"))})
    return rows


def meets(key: str, value: float | None) -> bool | None:
    """Whether a figure meets its target in TARGETS (None: no figure)."""
    if value is None:
        return None
    op, threshold, _ = TARGETS[key]
    return value <= threshold if op == "<=" else value >= threshold


# Figures that are a share of the test set's cards (or of its card-free photos): their 95% interval is where the
# same system could land on another test set of that size, so a target missed by less than that is not told apart
# from met. (Two runs of the same test set are compared photo by photo instead, bench.compare, which tells smaller
# changes apart.) Line and character figures have none here: a card's lines fail together, so counting them as
# independent draws would make their intervals too narrow.
PER_CARD = {"card_found", "false_no_card", "id_number", "whole_card", "card_type_identified", "all_corners_within_3pct",
            *(f"exact_match.{f}" for f in FIELDS)}
PER_CARD_FREE_PHOTO = {"no_card_recognised"}


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% at z 1.96) of a share measured on n draws: unlike share ± z·SE it stays
    inside [0, 1] and is not empty at 0% or 100%."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def interval(overall: dict, key: str) -> tuple[float, float] | None:
    """A figure's 95% interval from its system's counts, for the figures that are shares of cards or photos."""
    n = overall.get("cards") if key in PER_CARD else overall.get("card_free_images") if key in PER_CARD_FREE_PHOTO else None
    value = _figure(overall, key)
    return wilson_interval(value, n) if n and value is not None else None


def interval_text(overall: dict, key: str) -> str:
    band = interval(overall, key)
    return "n/a" if band is None else f"{band[0]:.1%} – {band[1]:.1%}"


# ------------------------------------------------------------------------------------------ writing


PCT_KEYS = {"card_found", "false_no_card", "no_card_recognised", "id_number", "whole_card", "false_confidence",
            "card_type_identified", "all_corners_within_3pct", "orientation_right", "line_precision", "line_recall",
            "reader_line_accuracy"}


def fmt(key: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    if key == "mean_corner_error_pct":
        return f"{v:.2f}%"
    if key == "reader_cer":
        return f"{v:.2%}"
    if key in PCT_KEYS or key.startswith("exact_match"):
        return f"{v:.1%}"
    return str(v)


SHORT = {"id_number": "ID", "full_name": "name", "date_of_birth": "birth", "sex": "sex", "nationality": "nation.",
         "place_of_origin": "origin", "place_of_residence": "residence", "date_of_expiry": "expiry"}
TABLE_COLUMNS: list[tuple[str, str]] = [
    ("card_found", "found"), *((f"exact_match.{f}", SHORT[f]) for f in FIELDS), ("whole_card", "whole card"),
    ("false_confidence", "false conf."), ("card_type_identified", "type"), ("mean_corner_error_pct", "corner err."),
    ("all_corners_within_3pct", "corners ≤3%"), ("orientation_right", "orient."), ("line_recall", "line recall"),
    ("reader_cer", "CER"),
]


def _row(label: str, r: dict, n_key: str = "cards") -> str:
    return "| " + " | ".join([label, str(r[n_key]), *(fmt(k, _figure(r, k)) for k, _ in TABLE_COLUMNS)]) + " |"


def _header(first: str) -> list[str]:
    cols = [first, "cards", *(c for _, c in TABLE_COLUMNS)]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def write_markdown(report: dict, failures: list[Path], out: Path) -> Path:
    """reports/eval.md: targets first, then all systems side by side, then every slice."""
    r, systems = report, report["systems"]
    lines = ["# Evaluation (synthetic cards)", "",
             f"**All figures are on synthetic data**: {r['cards']} photographed synthetic cards "
             f"({r['cards_per_type']} per card type: {', '.join(r['card_types'])}) and {r['card_free_images']} "
             f"synthetic card-free photos, generated with seed {r['seed']} (never used for training), capture "
             f"style {r.get('capture', MILD.name)} (fvi.synth.photo.CaptureStyle), "
             + ("names and places of random syllables (`--invented-words`: none of the generator's name lists' "
                "words). " if r.get("words") == "invented" else "names and places from the generator's name "
                "lists (`--invented-words` tests without them). ")
             + ("**Held-out render domain** (`--domain held_out`, fvi.synth.domain.HELD_OUT): font families, "
                "layout offsets, inks, backgrounds and name and place lists that no training data used: the "
                "project's own prediction of how it reads cards drawn by another hand. " if r.get("domain") == "held_out"
                else "In-domain: drawn by the renderer that drew the reader's training data (fvi.synth.domain.TRAIN). ")
             + "No real ID card was seen.", ""]
    if r.get("command"):
        lines += [f"Command: `{r['command']}` (`make eval`; `make eval CARDS=60` for a quick run). "
                  f"Seconds: {', '.join(f'{k} {v}' for k, v in r['seconds'].items())}.", ""]
    if r.get("untrained_card_types"):
        by_model = "; ".join(f"{net}: {', '.join(types)}" for net, types in r.get("card_types_by_model", {}).items())
        lines += [f"> Not every committed model is trained on every type ({by_model}): "
                  f"{', '.join(r['untrained_card_types'])} {'is' if len(r['untrained_card_types']) == 1 else 'are'} "
                  "new to at least one of them. The overall figures mix the types; the \"card type\" rows under "
                  "\"By capture condition\" give each type's own figures. Fields a type does not print "
                  "(the 2024 card's origin, residence and expiry) have ground truth \"\" and count as right "
                  "only when returned empty.", ""]
    if r["cards_per_type"] < 500:
        lines += [f"> This run used {r['cards_per_type']} cards per type; issue 3 asks for ≥ 500 per type "
                  "(`make eval`). Small runs show the shape, not the precision, of the figures.", ""]
    lines += ["## Targets of issue 3", "",
              "Met / not met is judged on the served ensemble (what users get). The 95% interval (Wilson, for "
              "shares of the cards or card-free photos) is where the same system could land on another test set "
              "of this size: a target missed by less is not told apart from met.", "",
              "| figure | target | ours, served | 95% interval | met | ours, in-process | Tesseract full photo | "
              "Tesseract line crops |",
              "|---|---|---|---|---|---|---|---|"]
    for t in r["targets"]:
        v = t["values"]
        met = "n/a" if t["met"] is None else ("met" if t["met"] else "**not met**")
        band_text = interval_text(systems["ensemble"]["overall"], t["figure"]) if "ensemble" in systems else "n/a"
        lines.append(f"| {t['what']} | {t['target']} | {fmt(t['figure'], v.get('ensemble'))} | {band_text} | {met} | "
                     f"{fmt(t['figure'], v.get('reference'))} | {fmt(t['figure'], v.get('tesseract_full'))} | "
                     f"{fmt(t['figure'], v.get('tesseract_lines'))} |")
    lines += ["", "Detector and reader figures need the lines' quads (LINE_META), which only the served ensemble "
              "returns; the in-process pipeline runs the same code (agreement below). Tesseract reading our line "
              "crops is scored as a reader on the ensemble's lines; their detection is not its work.",
              "", f"Ensemble and in-process pipeline give identical results on "
              f"{fmt('card_found', r['agreement_ensemble_reference'])} of the cards (status, card type, every "
              "field value and confidence, corners).", "",
              "Photos answered with an error instead of a result (counted as cards not found): "
              + ", ".join(f"{name} {s['overall']['failed_requests']}" for name, s in r["systems"].items()
                          if s["overall"].get("failed_requests") is not None) + ".", ""]

    lines += ["## Side by side", ""]
    if "same_photos_as_tesseract" in r:
        same = r["same_photos_as_tesseract"]
        lines += [f"On the {same['ensemble']['cards']} cards (the first {r['tesseract_cards_per_type']} of each type) "
                  f"and {same['ensemble']['card_free_images']} card-free photos Tesseract {r['tesseract_version']} read:", ""]
        lines += _header("system")
        lines += [_row(SYSTEM_NAMES[s], same[s]) for s in SYSTEMS if s in same]
        lines += ["", "| system | card-free photos | no card recognised |", "|---|---|---|"]
        lines += [f"| {SYSTEM_NAMES[s]} | {same[s]['card_free_images']} | {fmt('no_card_recognised', same[s]['no_card_recognised'])} |"
                  for s in SYSTEMS if s in same and same[s]["card_free_images"]]
        lines += ["", "Tesseract, full photo: `tesseract --psm 6 -l vie` on the decoded photo; fields are what "
                  "follows the card's label words (bench/tesseract_peer.py), normalised by fvi.assemble.normalize_field; "
                  "a card counts as found when ≥ 2 labels are read. No corners, card type or confidence.",
                  "Tesseract, line crops: the ensemble's own line crops (its LINE_META quads cut from the photo by "
                  "fvi.reader.cut_quad, as the line_crops step cuts them), 3× upscaled, `--psm 7`, read by Tesseract "
                  "and joined by our linker: fvi.linker.link finds the labels in Tesseract's text and decides the "
                  "card type and which line is which field, fvi.linker.card_corners places the card from them (found "
                  "when it can), fvi.assemble.assemble makes the fields (without the reader's other readings, which "
                  "Tesseract does not give). Confidence = Tesseract's lowest word confidence. Same detector, same "
                  "linker, other OCR: the lines, and which way up they run, are the ensemble's, so this row's corners "
                  "are not scored, nor its line precision and recall.", ""]
    else:
        lines += ["Tesseract is not installed (apt: tesseract-ocr tesseract-ocr-vie; `make setup` installs it) or "
                  "was switched off: no peer rows.", ""]
    lines += ["All photos:", ""] + _header("system")
    lines += [_row(SYSTEM_NAMES[s], systems[s]["overall"]) for s in SYSTEMS if s in systems]
    lines += [""]

    by_verdict = systems["ensemble"]["slices"].get(VERDICT, {}) if "ensemble" in systems else {}
    if by_verdict.get(ACCEPTED):
        lines += verdict_section(r["targets"], systems["ensemble"]["overall"], by_verdict)

    lines += ["## By capture condition", "",
              "Buckets come from the generator's ground truth (rotation, blur σ, glare spot, card fill, JPEG "
              f"quality) and, for light, from fvi.quality's brightness of the card at its true corners (low: mean grey "
              f"< {LOW_LIGHT_BRIGHTNESS:.0f}); the capture verdict from what the served ensemble told the user (Definitions). "
              "Every figure of every system is in reports/eval.json.", ""]
    for s in SYSTEMS:
        if s not in systems:
            continue
        lines += [f"### {SYSTEM_NAMES[s]}", ""] + _header("condition")
        for dim, buckets in systems[s]["slices"].items():
            lines += [_row(f"{dim}: {b}", v) for b, v in buckets.items()]
        lines += [""]

    lines += ["## Failures", "",
              "Annotated photos of served-ensemble failures (predicted corners as dots TL red, TR green, BR blue, "
              "BL orange; true corners as white rings; every detected line with what was read, grey when no field "
              "took it; wrong fields listed below the photo):", ""]
    lines += [f"- [{p.name}](eval_failures/{p.name})" for p in failures] or ["- none"]
    lines += ["", "## Definitions", "",
              "- found: the photo answered `ok`; false no card: a card photo answered `no_card`; no card recognised: "
              "a card-free photo answered `no_card`.",
              "- exact match, whole card: over all cards (a card not found has every field wrong).",
              "- false confidence: of the fields returned with confidence ≥ 0.95, the share that is wrong.",
              "- corner error: distance of each returned corner to the true one / the card's diagonal, averaged "
              "over found cards; corners ≤3%: cards (all cards) whose four corners are all within 3%; orientation "
              "right (found cards): of the four cyclic assignments of returned to true corners the best is the "
              "identity.",
              "- line precision / recall: on every card photo answered (found or not), the detected lines (LINE_META "
              "quads) against every line printed on the card, values and labels (the linker reads the fields off the "
              "labels), as polygons in photo pixels. A true line is held by a detected line covering ≥ "
              f"{COVERED:.0%} of its length (of several, the one of highest IoU with it); a detected line found the "
              "lines it holds when its IoU with them is "
              f"≥ {DETECTION_IOU} (a label and its value on one row may be one detected line). Recall: true lines "
              "found; precision: detected lines on the card that found some (lines off the card are scene text, the "
              "linker's to ignore; bench.evaluate.match_lines).",
              "- CER and line accuracy: the reading of each detected line that found true lines, against their "
              "texts in its reading order a space apart (the label's text included): the crops the pipeline cut.",
              f"- capture verdict: from the served ensemble's answer alone (no ground truth), the same photos for every "
              f"system: {ACCEPTED}, a card read with none of fvi.quality's capture warnings; {RETAKE}, one of them, "
              "no card found, or the photo refused.",
              ""]
    path = out / "eval.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def verdict_section(targets: list[dict[str, Any]], overall: dict, by_verdict: dict[str, dict]) -> list[str]:
    """The targets on the card photos the served ensemble accepted, next to all photos and those it asked to retake:
    what an eKYC front end that acts on the capture warnings gets."""
    accepted, retake = by_verdict[ACCEPTED], by_verdict.get(RETAKE)
    asked = retake["cards"] if retake else 0
    lines = ["## Acting on the capture warnings", "",
             "The service asks for another photo when the card it found is small, blurred, under a glare spot, dark or "
             "cut off (fvi.quality's warnings, `quality.RETAKE_CODES`), or when it finds no card. It asked for another "
             f"photo of {asked} of the {overall['cards']} card photos ({_rate(asked, overall['cards']):.1%}); a front "
             f"end acting on those warnings keeps the other {accepted['cards']}. What the served ensemble reads on "
             "each (the targets are judged above, on all photos; this is not a substitute for them):", "",
             "| figure | target | all photos | accepted photos | 95% interval | met on accepted | retake asked |",
             "|---|---|---|---|---|---|---|"]
    for t in targets:
        key = t["figure"]
        value = _figure(accepted, key)
        if value is None:  # a figure of the card-free photos: they are in neither bucket
            continue
        met = "met" if meets(key, value) else "**not met**"
        lines.append(f"| {t['what']} | {t['target']} | {fmt(key, _figure(overall, key))} | {fmt(key, value)} | "
                     f"{interval_text(accepted, key)} | {met} | {fmt(key, _figure(retake, key) if retake else None)} |")
    return lines + [""]


def failure_image(item: Item, o: Outcome) -> np.ndarray:
    """The photo with what the ensemble found, the true corners, and a panel listing the wrong fields."""
    from PIL import Image, ImageDraw, ImageFont

    from client.annotate import FONT_PATH, annotate
    from fvi.image_io import decode_image

    image = decode_image(item.path.read_bytes())
    result = o.result or {"status": o.error or "error"}
    corners = np.asarray(result["corners"], np.float32) if result.get("corners") is not None else None
    drawn = np.array(annotate(image, result, corners, o.line_meta))  # writable copy
    unit = max(1, round(min(image.shape[:2]) / 400))
    for x, y in np.asarray(item.truth["corners"], np.float32):
        cv2.circle(drawn, (int(round(x)), int(round(y))), 8 * unit, (255, 255, 255), unit + 1, cv2.LINE_AA)
    truth = item.truth["fields"]
    got = (o.result or {}).get("fields") or {}
    notes = [f"{item.name}  status {o.status}  " + ", ".join(f"{k} {v}" for k, v in item.truth["conditions"].items())]
    notes += [f"{f}: read '{(got.get(f) or {}).get('value', '')}'  truth '{truth[f]}'" for f in FIELDS
              if (got.get(f) or {}).get("value") != truth[f]]
    size = max(14, round(drawn.shape[1] / 70))
    per_line = max(20, int(drawn.shape[1] / (size * 0.55)))
    notes = [part for note in notes for part in textwrap.wrap(note, per_line, subsequent_indent="    ")]
    try:
        font = ImageFont.truetype(str(FONT_PATH), size)
    except OSError:
        font = ImageFont.load_default()
    panel = Image.new("RGB", (drawn.shape[1], (len(notes) + 1) * (size + 6)), (0, 0, 0))
    draw = ImageDraw.Draw(panel)
    for k, text in enumerate(notes):
        draw.text((6, 4 + k * (size + 6)), text, font=font, fill=(255, 255, 255) if k == 0 else (255, 120, 120))
    return np.vstack([drawn, np.asarray(panel)])


def write_failures(items: list[Item], outcomes: dict[str, Outcome], folder: Path, count: int) -> list[Path]:
    """Up to `count` annotated served-ensemble failures of different kinds: not found, wrong orientation,
    most fields wrong; the folder is emptied first so it only holds this run's images."""
    if folder.exists():
        shutil.rmtree(folder)
    if count <= 0:
        return []
    missed, turned, wrong = [], [], []
    for item in (i for i in items if i.has_card):
        o = outcomes[item.name]
        if o.status != STATUS_OK:
            missed.append(item)
            continue
        if not corner_errors(o.result["corners"], item.truth["corners"])[1]:
            turned.append(item)
            continue
        n_wrong = sum(o.result["fields"][f]["value"] != item.truth["fields"][f] for f in FIELDS)
        if n_wrong:
            wrong.append((n_wrong, item))
    wrong_items = [i for _, i in sorted(wrong, key=lambda t: -t[0])]
    chosen = (missed[:2] + turned[:2] + wrong_items)[:count]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in chosen:
        img = failure_image(item, outcomes[item.name])
        scale = min(1.0, 1100 / max(img.shape[:2]))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img
        path = folder / f"{item.path.parent.name}_{item.path.stem}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        paths.append(path)
    return paths


def write_report(report: dict, items: list[Item], outcomes: dict[str, dict[str, Outcome]], out: Path,
                 failures: int = 6) -> dict[str, Path]:
    """eval.json, eval.md and eval_failures/ under `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    images = write_failures(items, outcomes["ensemble"], out / "eval_failures", failures)
    report = dict(report, failures=[f"eval_failures/{p.name}" for p in images])
    js = out / "eval.json"
    js.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"json": js, "markdown": write_markdown(report, images, out), "failures": out / "eval_failures"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cards-per-type", type=int, default=500, help="photographed cards per card type (default %(default)s)")
    ap.add_argument("--no-card-images", type=int, default=None, help="card-free photos (default: a fifth of the cards, at least 10)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="test set seed (default %(default)s; never a training seed)")
    ap.add_argument("--card-types", type=lambda v: tuple(t for t in v.split(",") if t), default=CARD_TYPES,
                    help=f"comma-separated card types to test (default: all of {','.join(CARD_TYPES)})")
    ap.add_argument("--capture", default=MILD.name, choices=sorted(CAPTURE_STYLES),
                    help="capture style of the test photos: mild (what the committed models were trained on) or "
                         "wild (issue 3's range: 35° tilt, 20%% fill, motion blur, low light, fingers, wallpapers, JPEG 30); default %(default)s")
    ap.add_argument("--tesseract-cards", type=int, default=100,
                    help="Tesseract reads the first N photos of each folder (about 2 s a card on 2 cores; 0: skip)")
    ap.add_argument("--triton-url", help="an already running tritonserver's gRPC host:port (default: start one)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight to the ensemble")
    ap.add_argument("--threads", type=int, default=2, help="threads for the in-process pipeline and Tesseract")
    ap.add_argument("--failures", type=int, default=6, help="annotated failure images to write")
    ap.add_argument("--invented-words", action="store_true",
                    help="test cards whose names, streets, communes and districts are random syllables "
                         "(fvi.synth.identity.invent_words): how the models read names no list taught them")
    ap.add_argument("--domain", default=TRAIN.name, choices=sorted(DOMAINS),
                    help="render domain of the test cards: train (the renderer of the training data) or held_out "
                         "(fonts, layouts, inks and value lists no training data used); default %(default)s")
    ap.add_argument("--data", type=Path, default=DATA_ROOT, help="where test sets live (default data/eval)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "reports")
    a = ap.parse_args(argv)
    if a.cards_per_type < 1:
        ap.error("--cards-per-type must be at least 1")
    if not a.card_types or set(a.card_types) - set(CARD_TYPES):
        ap.error(f"--card-types: choose from {', '.join(CARD_TYPES)}")
    report, items, outcomes = evaluate(a.cards_per_type, a.seed, a.no_card_images, a.tesseract_cards, a.triton_url,
                                       a.data, a.concurrency, a.threads, card_types=a.card_types, capture=a.capture,
                                       invented_words=a.invented_words, domain=a.domain)
    paths = write_report(report, items, outcomes, a.out, a.failures)
    print(paths["markdown"].read_text(encoding="utf-8").split("## Side by side")[0])
    print(f"written: {paths['markdown']}, {paths['json']}, {paths['failures']}/")


if __name__ == "__main__":
    main()
