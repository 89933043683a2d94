"""Tesseract 5 (Vietnamese) as the peer of the evaluation: the same photos, the same field rules.

Two ways to let Tesseract read a card, both scored exactly like our pipeline:

* full image: Tesseract reads the whole photo (`--psm 6`, one block of text) and the card's label
  words (Số / No., Họ và tên, Ngày sinh, ...) are found in its text; what follows a label is that
  field. This is how a generic OCR engine is used on an ID card without a card model.
* line crops: Tesseract reads the very line crops our reader gets (the quads of the ensemble's
  LINE_META, cut by `fvi.reader.cut_quad` from the photo decoded as `fvi.pipeline.work_photo` does,
  one line each, `--psm 7`), and our own linker and assembly make the card of them: `fvi.linker.link`
  finds the labels in Tesseract's text and decides the card type and which line is which field,
  `fvi.linker.card_corners` places the card from those labels (too few read: no card, as in the
  cropper step), `fvi.assemble.assemble` joins and normalises the values. This isolates the reader:
  same detector, same linker, other OCR.

Both normalise values with `fvi.assemble.normalize_field`, so a date or a sex reads the same way.
Tesseract's own word confidences (0-100) become the line confidence (the lowest word), so false
confidence is measured for the line-crop row too.
"""
from __future__ import annotations

import os
import re
import shutil
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np
from rapidfuzz import fuzz

from fvi import linker, quality, reader
from fvi.assemble import assemble, normalize_field
from fvi.image_io import decode_image
from fvi.pipeline import quads_of, work_photo
from fvi.schema import FIELDS, STATUS_NO_CARD, STATUS_OK
from fvi.validate import NO_EXPIRY

# Each tesseract process would otherwise start one OpenMP thread per core: the evaluation runs
# several processes at once, and oversubscribing 2 cores only slows every one of them.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

LANG = "vie"
FULL_IMAGE_CONFIG = "--psm 6"  # one uniform block: keeps a label and its value on one text line
LINE_CONFIG = "--psm 7"  # a single text line: what a reader crop is
# The reader's 32-pixel-high crops carry ~20-pixel letters; Tesseract reads best at ~30 px x-height.
LINE_UPSCALE = 3
# A card is "found" by the full-image route when at least this many label words were read.
MIN_LABELS_FOR_CARD = 2
LABEL_MATCH_SCORE = 80.0  # rapidfuzz partial ratio (0-100) for a label found in a noisy text line


@dataclass(frozen=True)
class Label:
    """A label printed on the card and where its value sits relative to it."""

    field: str | None  # None: a label that only ends the previous value (e.g. "Date of expiry")
    text: str  # as printed, Vietnamese / English
    value: str  # "same": the rest of the line; "next": the rest of the line, else the next line;
    #             "same+next": the rest of the line and the next line (two-line residence)


# The front of the chip CCCD (2021); the 2016 and 2024 cards print the same Vietnamese label words.
LABELS: tuple[Label, ...] = (
    Label("id_number", "Số / No.:", "next"),
    Label("full_name", "Họ và tên / Full name:", "next"),
    Label("date_of_birth", "Ngày sinh / Date of birth:", "same"),
    Label("sex", "Giới tính / Sex:", "same"),
    Label("nationality", "Quốc tịch / Nationality:", "same"),
    Label("place_of_origin", "Quê quán / Place of origin:", "next"),
    Label("place_of_residence", "Nơi thường trú / Place of residence:", "same+next"),
    Label("date_of_expiry", "Có giá trị đến:", "same"),
    Label(None, "Date of expiry", "same"),
)
_DATE = re.compile(r"\d{1,2}\s*[/.-]\s*\d{1,2}\s*[/.-]\s*\d{4}")
_ID = re.compile(r"\d[\d ]{10,14}\d")


def available() -> bool:
    """Tesseract 5 with Vietnamese installed (apt: tesseract-ocr tesseract-ocr-vie) and pytesseract importable."""
    if shutil.which("tesseract") is None:
        return False
    try:
        import pytesseract

        return LANG in pytesseract.get_languages(config="")
    except Exception:
        return False


def version() -> str:
    import pytesseract

    return str(pytesseract.get_tesseract_version())


def fold(text: str) -> str:
    """Lower-case ASCII with one character per input character (positions stay valid)."""
    out = []
    for c in unicodedata.normalize("NFC", text):
        c = "d" if c in "đĐ" else c
        base = "".join(b for b in unicodedata.normalize("NFD", c) if not unicodedata.combining(b))
        out.append((base[:1] or " ").lower())
    return "".join(out)


_FOLDED_LABELS = [(lab, fold(lab.text)) for lab in LABELS]


def _find_labels(line: str) -> list[tuple[int, int, Label]]:
    """(start, end, label) of every label read in one line, left to right, non-overlapping."""
    folded = fold(line)
    hits = []
    for lab, key in _FOLDED_LABELS:
        # the short "Số / No." label needs its full form; the others are found on their Vietnamese words too
        compact = key.replace(" / ", "/")
        variants = [key, compact] if lab.field == "id_number" else [key, compact, key.split(" / ")[0]]
        for v in variants:
            a = fuzz.partial_ratio_alignment(v, folded)
            if a is not None and a.score >= LABEL_MATCH_SCORE and a.dest_end - a.dest_start >= 0.7 * len(v):
                hits.append((a.dest_start, a.dest_end, lab))
                break
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    kept: list[tuple[int, int, Label]] = []
    for h in hits:
        if not kept or h[0] >= kept[-1][1]:
            kept.append(h)
    return kept


def _clean(value: str) -> str:
    return value.strip(" :;,.|/-_—'\"").strip()


def extract_fields(text: str) -> tuple[dict[str, str], int]:
    """Tesseract's text of a whole photo → raw field values by the card's labels, and labels found."""
    lines = [l for l in (ln.strip() for ln in text.splitlines()) if l]
    found = [_find_labels(l) for l in lines]
    raw: dict[str, str] = {}
    n_labels = 0
    for i, (line, hits) in enumerate(zip(lines, found)):
        for k, (_, end, lab) in enumerate(hits):
            n_labels += 1
            if lab.field is None or lab.field in raw:
                continue
            stop = hits[k + 1][0] if k + 1 < len(hits) else len(line)
            value = _clean(line[end:stop])
            nxt = i + 1 < len(lines) and not found[i + 1]  # the next line is a value, not labels
            if lab.value == "next" and not value and nxt:
                value = _clean(lines[i + 1])
            elif lab.value == "same+next" and nxt:
                value = _clean(f"{line[end:stop]} {lines[i + 1]}")
            raw[lab.field] = value
    if "id_number" not in raw:  # generous to the peer: the card's only 12-digit number
        m = _ID.search(text)
        if m:
            raw["id_number"] = m.group(0)
    for name in ("date_of_birth", "date_of_expiry"):
        if name in raw:
            m = _DATE.search(raw[name])
            if m:
                raw[name] = m.group(0)
            elif name == "date_of_expiry" and fuzz.partial_ratio(fold(NO_EXPIRY), fold(raw[name])) >= LABEL_MATCH_SCORE:
                raw[name] = NO_EXPIRY
    if "sex" in raw:
        raw["sex"] = raw["sex"].split(" ")[0] if raw["sex"] else ""
    return raw, n_labels


def read_full_image(data: bytes) -> dict:
    """One photo → an OcrResult-shaped dict (no corners, no confidence: the full-image route has neither)."""
    import pytesseract

    text = pytesseract.image_to_string(decode_image(data), lang=LANG, config=FULL_IMAGE_CONFIG)
    raw, n_labels = extract_fields(text)
    if n_labels < MIN_LABELS_FOR_CARD:
        return {"status": STATUS_NO_CARD, "card_type": None, "corners": None, "fields": {}, "warnings": []}
    fields = {f: {"value": normalize_field(f, raw.get(f, "")), "confidence": None, "lines": []} for f in FIELDS}
    return {"status": STATUS_OK, "card_type": None, "corners": None, "fields": fields, "warnings": []}


def line_crops(data: bytes, line_meta: np.ndarray) -> list[np.ndarray]:
    """The grey line images our reader got for this photo, one per line of LINE_META (row order).

    LINE_META's quads are in the photo's own pixels; the line_crops step cuts them from the photo decoded at
    working size (`fvi.pipeline.work_photo`, maybe reduced: `photo.scale`), with the reader's own margins
    (`fvi.reader.cut_quad`), before its contrast normalisation and padding (Tesseract binarises by itself).
    """
    photo = work_photo(data)
    gray = cv2.cvtColor(photo.image, cv2.COLOR_RGB2GRAY)
    return [reader.cut_quad(gray, q * photo.scale) for q in quads_of(line_meta)]


def read_line(crop: np.ndarray) -> tuple[str, float]:
    """One line crop → (text, confidence 0-1: Tesseract's lowest word confidence)."""
    import pytesseract

    big = cv2.resize(crop, None, fx=LINE_UPSCALE, fy=LINE_UPSCALE, interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, 8, 8, 8, 8, cv2.BORDER_REPLICATE)
    d = pytesseract.image_to_data(big, lang=LANG, config=LINE_CONFIG, output_type=pytesseract.Output.DICT)
    words = [(w, float(c)) for w, c in zip(d["text"], d["conf"]) if str(w).strip() and float(c) >= 0]
    if not words:
        return "", 0.0
    return " ".join(w for w, _ in words), min(c for _, c in words) / 100.0


def read_line_crops(data: bytes, line_meta: np.ndarray) -> dict:
    """The ensemble's own line crops read by Tesseract, made a card by our linker and assembly (module docstring).

    The lines' quads and which way up they are come from the ensemble (its LINE_META is the reading the cropper
    step kept, upright), so the corners are not this row's own and are not returned (None: not scored); the
    card type is, as the linker votes on the labels Tesseract read. Capture quality is not measured here either.
    """
    quads = quads_of(line_meta)
    lines = [linker.ReadLine(q, text, conf) for q, (text, conf) in zip(quads, map(read_line, line_crops(data, line_meta)))]
    linked = linker.link(lines)
    corners = linker.card_corners(linked.anchors, linked.card_type)
    if corners is None:
        linked, corners = None, np.zeros((4, 2), np.float32)
    confidence = min(1.0, len(linked.anchors) / linker.LINK.sure_anchors) if linked else 0.0
    result = assemble(lines, linked, corners, confidence, np.zeros(len(quality.MEASURES), np.float32)).to_dict()
    # quality measures of zeros would warn of every capture problem: this row measures none
    result["warnings"] = [w for w in result["warnings"] if w["code"] not in quality.RETAKE_CODES]
    return dict(result, corners=None)
