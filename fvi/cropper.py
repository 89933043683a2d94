"""Cropper pre/post-processing: letterboxed input, 4 corner heatmaps (one class per corner) → quad."""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from fvi.geometry import Letterbox, letterbox, quad_is_plausible

INPUT_SIZE = 256
STRIDE = 4
HEATMAP_SIZE = INPUT_SIZE // STRIDE
# A corner peak below this is "not seen"; all four must be seen for a card. Calibrated with
# `python -m training.cropper calibrate` (synthetic photos no evaluation uses: seed 9100, training wallpapers,
# 450 cards and 600 card-free images per capture style) and the cropper of record: a plausible quad on a
# card-free image peaks at most 0.097 (mild) / 0.107 (wild), while a weak corner of a real card (glare, blur,
# low light, a finger) often peaks at 0.1-0.3, its position still right. At 0.15 the first look found
# 96.9% (mild) / 94.7% (wild) of cards, at 0.10 98.7% / 96.4%; card-free images taken for a card: 0 / 1 of 600.
CORNER_THRESHOLD = 0.10

# When the first look does not see all four, the second look (zoomed on the first look's corners) may still
# find the card: one corner under a finger or glare, or one peak off the card so that the quad is implausible
# while the view around it still holds the card. It counts when its own quad is plausible and either its
# weakest corner reaches SECOND_LOOK_ALONE, or the first look had three corners of THREE_CORNERS in a plausible
# quad and the second look's weakest reaches SECOND_LOOK_AFTER_THREE. Calibrated as above (seed 9100): on
# card-free images the second look's weakest corner of a plausible quad peaked at most 0.11, their first look's
# third-strongest corner at most 0.20; cards found rose from 98.7% to 99.6% (mild) and 96.4% to 98.4% (wild),
# every added card with its corners within 3%, no card-free image added.
SECOND_LOOK_ALONE = 0.4
THREE_CORNERS = 0.3
SECOND_LOOK_AFTER_THREE = 0.05


def preprocess(image_rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 image of any size → (3, 256, 256) uint8 input and the letterbox to map back."""
    boxed, lb = letterbox(image_rgb, INPUT_SIZE, fill=0)
    return to_input_tensor(boxed), lb


# The second look: a square around the first pass's corners, this much wider than their bounding box on
# each side, so a corner the first pass placed a few percent off is still well inside the view.
REFINE_MARGIN = 0.12


def refine_view(image_rgb: np.ndarray, corners: np.ndarray, margin: float = REFINE_MARGIN) -> tuple[np.ndarray, Letterbox]:
    """A second cropper input zoomed on the card the first pass found (corners in `image_rgb`'s pixels).

    On the whole photo a card filling a fifth of the frame is 50 input pixels long, and a heatmap cell
    is 8% of it; zoomed, the card fills the input and a cell is under 2%. Outside the photo is black,
    as the letterbox pads. Returns (3, 256, 256) uint8 and the map back to `image_rgb`'s pixels.
    """
    lo, hi = np.asarray(corners, np.float32).min(0), np.asarray(corners, np.float32).max(0)
    side = float((hi - lo).max()) * (1 + 2 * margin)
    x0, y0 = (lo + hi) / 2 - side / 2
    scale = INPUT_SIZE / max(side, 1.0)
    h, w = image_rgb.shape[:2]
    # the part of the photo inside the square, resized once (INTER_AREA when shrinking, as letterbox does)
    # whole photo pixels inside the square: the part lands at or right of the view's left/top edge
    cx0, cy0 = max(0, int(np.ceil(x0))), max(0, int(np.ceil(y0)))
    cx1, cy1 = min(w, int(np.floor(x0 + side))), min(h, int(np.floor(y0 + side)))
    out = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    if cx1 > cx0 and cy1 > cy0:
        ox, oy = (cx0 - x0) * scale, (cy0 - y0) * scale
        tw = max(1, min(INPUT_SIZE - int(ox), round((cx1 - cx0) * scale)))
        th = max(1, min(INPUT_SIZE - int(oy), round((cy1 - cy0) * scale)))
        part = cv2.resize(image_rgb[cy0:cy1, cx0:cx1], (tw, th), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        out[int(oy) : int(oy) + th, int(ox) : int(ox) + tw] = part
        # the pasted part starts at int(ox): the map back uses where the pixels really are
        x0, y0 = cx0 - int(ox) / scale, cy0 - int(oy) / scale
    return to_input_tensor(out), Letterbox(scale, -x0 * scale, -y0 * scale)


# A second look whose weakest corner peaks under this is taken again with the view turned by one, two and three
# quarter turns, and the corners are placed on the four looks' heatmaps turned back and averaged: a corner the
# net put on a background edge in one orientation rarely wins in all four. Whether a card is there stays the
# unturned look's decision (its own peaks, as calibrated). Tuning photos no evaluation uses, cards with every
# corner within 3%: seed 9310 (1,500 mild) 97.7% -> 98.1%, seed 9311 (600 wild) 87.5% -> 90.2%; turning every
# second look placed no more corners right than turning those under 0.7 (a third of the mild ones).
TURN_BELOW = 0.7
QUARTER_TURNS = (1, 2, 3)  # the turned views, counter-clockwise, in the order they are read


def quarter_turns(view: np.ndarray) -> np.ndarray:
    """(3, 256, 256) view → (3, 3, 256, 256): it turned by one, two and three quarter turns (counter-clockwise).
    A corner keeps its class when turned (it belongs to the card), as the cropper was trained (training.cropper)."""
    return np.stack([np.ascontiguousarray(np.rot90(view, k, axes=(1, 2))) for k in QUARTER_TURNS])


def mean_over_turns(heatmaps: np.ndarray, turned_heatmaps: np.ndarray) -> np.ndarray:
    """The unturned view's (4, 64, 64) heatmaps and the turned views' (3, 4, 64, 64), turned back and averaged.
    A stride-4 cell maps exactly onto a cell when turned (64 cells of 4 pixels tile the 256-pixel view)."""
    back = [np.rot90(h, -k, axes=(1, 2)) for k, h in zip(QUARTER_TURNS, turned_heatmaps)]
    return (heatmaps + sum(back)) / (1 + len(back))


def to_input_tensor(boxed_rgb: np.ndarray) -> np.ndarray:
    """Pixels stay uint8 (CHW): the nets normalise inside (training.nets), 4x less to copy between steps."""
    return np.ascontiguousarray(boxed_rgb.transpose(2, 0, 1))


def corner_to_cell(pts_input: np.ndarray) -> np.ndarray:
    """Input pixels → heatmap cell coordinates (cell i covers input pixels [4i, 4i+4))."""
    return pts_input / STRIDE - 0.5


def cell_to_corner(cells: np.ndarray) -> np.ndarray:
    return (cells + 0.5) * STRIDE


@dataclass
class CornerResult:
    found: bool
    corners: np.ndarray  # 4 x 2, image pixels (TL, TR, BR, BL)
    scores: np.ndarray  # peak probability per corner
    confidence: float
    plausible: bool  # fvi.geometry.quad_is_plausible

    @property
    def third_strongest(self) -> float:
        """The peak of the third-strongest corner: three corners seen at least this well."""
        return float(np.sort(self.scores)[1])


def second_look_finds(first: CornerResult, second: CornerResult) -> bool:
    """Whether the second look finds a card the first did not see (constants above)."""
    if not second.plausible:
        return False
    three_seen = first.plausible and first.third_strongest >= THREE_CORNERS
    return second.confidence >= SECOND_LOOK_ALONE or (three_seen and second.confidence >= SECOND_LOOK_AFTER_THREE)


def pick_look(first: CornerResult, second: CornerResult) -> CornerResult:
    """The cropper's answer from its two looks. When the first found the card, the second places the corners
    (should it not see all four, the first look's stand); when the first did not, the second may still find it."""
    if first.found:
        return second if second.found else first
    return replace(second, found=True) if second_look_finds(first, second) else first


def decode(heatmaps: np.ndarray, lb: Letterbox, image_shape: tuple[int, ...]) -> CornerResult:
    """(4, 64, 64) corner probabilities → the look they make (corners in image pixels, peaks, found)."""
    return corner_result(*peaks(heatmaps, lb), image_shape)


def peaks(heatmaps: np.ndarray, lb: Letterbox) -> tuple[np.ndarray, np.ndarray]:
    """(4, 64, 64) corner probabilities → each corner's place in image pixels, with sub-cell precision (3x3
    weighted centroid), and its peak."""
    corners = np.zeros((4, 2), np.float32)
    scores = np.zeros(4, np.float32)
    n = heatmaps.shape[-1]
    for k in range(4):
        hm = heatmaps[k]
        y, x = np.unravel_index(int(hm.argmax()), hm.shape)
        scores[k] = hm[y, x]
        y0, y1, x0, x1 = max(0, y - 1), min(n, y + 2), max(0, x - 1), min(n, x + 2)
        patch = hm[y0:y1, x0:x1].astype(np.float64)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        wsum = patch.sum()
        cx, cy = (float((patch * xs).sum() / wsum), float((patch * ys).sum() / wsum)) if wsum > 0 else (float(x), float(y))
        corners[k] = cell_to_corner(np.array([cx, cy], np.float32))
    return lb.to_image(corners), scores


def corner_result(corners: np.ndarray, scores: np.ndarray, image_shape: tuple[int, ...]) -> CornerResult:
    """Corners (image pixels) and their peaks → a look: it sees a card when every corner peaks at least
    CORNER_THRESHOLD in a plausible quad."""
    confidence = float(scores.min())
    plausible = quad_is_plausible(corners, image_shape)
    return CornerResult(bool(confidence >= CORNER_THRESHOLD and plausible), corners, scores, confidence, plausible)
