"""Draw what the ensemble found back onto the user's photo: corners, every text line and what was read in it.

LINE_META holds each line's corners in the photo's own pixels, so what the detector found, what the reader read
and which field took it can be checked against the eye on the photo itself. A line no field took (a label, say)
is drawn grey.
Vietnamese diacritics need a real TrueType font (cv2.putText only knows ASCII), hence PIL + DejaVu,
with an ASCII fallback so a machine without the font still gets an annotated image.
"""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fvi.schema import CORNERS, FIELDS, LINE_META_COLUMNS

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CORNER_LABELS: tuple[str, ...] = ("TL", "TR", "BR", "BL")  # same order as fvi.schema.CORNERS
assert len(CORNER_LABELS) == len(CORNERS)
# RGB; one colour per corner so a swapped corner order is visible at a glance
CORNER_COLOURS: tuple[tuple[int, int, int], ...] = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48))
FIELD_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 225, 25), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)
QUAD_COLOUR = (255, 255, 255)
UNKNOWN_FIELD_COLOUR = (200, 200, 200)


def line_quads(line_meta: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(4x2 quad in photo pixels TL,TR,BR,BL in reading order, detector score) for every real LINE_META row."""
    rows = np.asarray(line_meta, np.float32).reshape(-1, LINE_META_COLUMNS)
    return [(r[:8].reshape(4, 2), float(r[8])) for r in rows if r[8] >= 0]  # score -1: padding (no line)


def line_texts(result: dict[str, Any], line_meta: np.ndarray) -> list[str]:
    """The read text of each real LINE_META row, in row order (RESULT's line_texts: every line the detector
    found, labels and lines no field took included)."""
    rows = line_quads(line_meta)
    texts = list(result.get("line_texts") or [])
    if len(texts) != len(rows):
        raise ValueError(f"RESULT has {len(texts)} line texts for {len(rows)} LINE_META lines")
    return texts


def field_of_line(result: dict[str, Any], text: str) -> int | None:
    """The index in FIELDS of the field that took (part of) this line's text, or None (a label, say)."""
    for i, name in enumerate(FIELDS):
        f = (result.get("fields") or {}).get(name) or {}
        if any(part and part in text for part in f.get("lines") or []):
            return i
    return None


def ascii_fold(text: str) -> str:
    """Vietnamese -> plain ASCII for cv2.putText (drops diacritics, đ -> d)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("ascii", "replace").decode()


def _load_font(size: int, font_path: Path):
    try:
        from PIL import ImageFont

        return ImageFont.truetype(str(font_path), size)
    except (ImportError, OSError):
        return None


def _clamp_text_origin(x: float, y: float, w: int, h: int, img_w: int, img_h: int) -> tuple[int, int]:
    return int(min(max(0, x), max(0, img_w - w))), int(min(max(0, y), max(0, img_h - h)))


def annotate(image_rgb: np.ndarray, result: dict[str, Any], corners: np.ndarray | None = None,
             line_meta: np.ndarray | None = None, font_path: Path = FONT_PATH) -> np.ndarray:
    """A copy of the photo (same size, RGB) with the corners, the line boxes and their text drawn on it.

    `corners` defaults to result["corners"]; without `line_meta` only the corners and status are drawn.
    """
    img = np.ascontiguousarray(image_rgb[..., :3].copy())
    h, w = img.shape[:2]
    unit = max(1, round(min(h, w) / 400))  # line thickness that stays visible on large photos
    font_size = max(12, round(min(h, w) / 45))
    corners_arr = np.asarray(corners if corners is not None else result.get("corners", []), np.float32)
    found = result.get("status") == "ok"
    corners_arr = corners_arr.reshape(4, 2) if corners_arr.size == 8 and found else None  # no card: no corners

    boxes: list[tuple[int | None, np.ndarray, float]] = []
    texts: list[str] = []
    if line_meta is not None:
        texts = line_texts(result, line_meta)
        boxes = [(field_of_line(result, t), q, score) for (q, score), t in zip(line_quads(line_meta), texts)]

    # shapes with cv2 (anti-aliased); text afterwards, with PIL when the font exists
    if corners_arr is not None:
        cv2.polylines(img, [np.round(corners_arr).astype(np.int32)], True, QUAD_COLOUR, unit, cv2.LINE_AA)
    for f, quad, _ in boxes:
        colour = UNKNOWN_FIELD_COLOUR if f is None else FIELD_COLOURS[f % len(FIELD_COLOURS)]
        cv2.polylines(img, [np.round(quad).astype(np.int32)], True, colour, unit + 1, cv2.LINE_AA)
    if corners_arr is not None:
        for (x, y), colour in zip(corners_arr, CORNER_COLOURS):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(img, (int(round(x)), int(round(y))), 4 * unit + 3, colour, -1, cv2.LINE_AA)

    labels: list[tuple[float, float, str, tuple[int, int, int]]] = []  # x, y (bottom-left anchor), text, colour
    status = result.get("status", "?")
    banner = f"{status}  card {result.get('card_type') or '-'}  conf {float(result.get('card_confidence') or 0):.2f}"
    labels.append((0, font_size * 1.4, banner, (255, 255, 255) if found else (255, 80, 80)))
    if corners_arr is not None:
        for (x, y), text, colour in zip(corners_arr, CORNER_LABELS, CORNER_COLOURS):
            if np.isfinite(x) and np.isfinite(y):
                labels.append((x + 6 * unit, y - 4 * unit, text, colour))
    for (f, quad, _), text in zip(boxes, texts):
        colour = UNKNOWN_FIELD_COLOUR if f is None else FIELD_COLOURS[f % len(FIELD_COLOURS)]
        labels.append((float(quad[0, 0]), float(quad[0, 1]) - 2 * unit, text or "[?]", colour))

    font = _load_font(font_size, font_path)
    if font is not None:
        from PIL import Image, ImageDraw

        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        for x, y, text, colour in labels:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left + 4, bottom - top + 4
            ox, oy = _clamp_text_origin(x, y - th, tw, th, w, h)
            draw.rectangle([ox, oy, ox + tw, oy + th], fill=(0, 0, 0))
            draw.text((ox + 2 - left, oy + 2 - top), text, font=font, fill=colour)
        img = np.asarray(pil)
    else:
        scale = font_size / 30
        for x, y, text, colour in labels:
            text = ascii_fold(text)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, unit)
            ox, oy = _clamp_text_origin(x, y - th - base, tw + 4, th + base + 4, w, h)
            cv2.rectangle(img, (ox, oy), (ox + tw + 4, oy + th + base + 4), (0, 0, 0), -1)
            cv2.putText(img, text, (ox + 2, oy + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, unit, cv2.LINE_AA)
    return img


def write_annotated(image_rgb: np.ndarray, result: dict[str, Any], out_path: Path, corners: np.ndarray | None = None,
                    line_meta: np.ndarray | None = None, quality: int = 90) -> Path:
    """annotate() and save as JPEG (creating the folder); returns the path written."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    drawn = annotate(image_rgb, result, corners, line_meta)
    ok = cv2.imwrite(str(out_path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not write {out_path}")
    return out_path

