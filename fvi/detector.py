"""Detector pre/post-processing: flat card → per-field text-line maps → line boxes.

Targets are the line boxes shrunk (so neighbouring lines of one field stay apart), drawn as the fraction
of each map cell they cover; decoding expands each connected component back by the same ratios.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fvi.geometry import CARD_H, CARD_W
from fvi.schema import FIELDS

INPUT_W, INPUT_H = 512, 320
STRIDE = 4
MAP_W, MAP_H = INPUT_W // STRIDE, INPUT_H // STRIDE
SHRINK_Y = 0.22  # fraction of line height removed at top and bottom of the target
SHRINK_X = 0.25  # in line heights, removed at each end
THRESHOLD = 0.5
MIN_AREA_CELLS = 3


def resize(card_rgb: np.ndarray) -> np.ndarray:
    """Flat CARD_W x CARD_H RGB card → 512 x 320 RGB, the detector's view (also used to judge quality)."""
    return cv2.resize(card_rgb, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA)


def preprocess(card_small_rgb: np.ndarray) -> np.ndarray:
    """The resized card → (3, 320, 512) uint8 (the net normalises inside)."""
    return np.ascontiguousarray(card_small_rgb.transpose(2, 0, 1))


def target_box(box: np.ndarray) -> np.ndarray:
    """Card-pixel line box → shrunk box in map cells (what the net is trained to light up)."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    sx, sy = MAP_W / CARD_W, MAP_H / CARD_H
    return np.array([(x0 + SHRINK_X * h) * sx, (y0 + SHRINK_Y * h) * sy, (x1 - SHRINK_X * h) * sx, (y1 - SHRINK_Y * h) * sy])


def render_targets(lines: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """(class, card-pixel box) pairs → (C, MAP_H, MAP_W) float32 maps: each cell the fraction of it the shrunk
    box covers. A cell is 6.3 card pixels high and a line kernel two or three cells: coverage keeps the
    sub-cell extent that rounding to whole cells would lose, and decode() reads it back."""
    maps = np.zeros((len(FIELDS), MAP_H, MAP_W), np.float32)
    cells_x, cells_y = np.arange(MAP_W, dtype=np.float32), np.arange(MAP_H, dtype=np.float32)
    for cls, box in lines:
        x0, y0, x1, y1 = target_box(box)
        cover_x = np.clip(np.minimum(cells_x + 1, x1) - np.maximum(cells_x, x0), 0, 1)
        cover_y = np.clip(np.minimum(cells_y + 1, y1) - np.maximum(cells_y, y0), 0, 1)
        np.maximum(maps[cls], np.outer(cover_y, cover_x), out=maps[cls])
    return maps


@dataclass
class Line:
    field_index: int
    box: np.ndarray  # x0, y0, x1, y1 on the flat card (CARD_W x CARD_H pixels)
    score: float

    @property
    def field(self) -> str:
        return FIELDS[self.field_index]


def _kernel_rows(m: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[float, float]:
    """A line kernel's top and bottom in cells, to a fraction of a cell: its height is the probability summed
    down its columns (a row above and below included), its centre the profile's centroid. The thresholded
    component alone is a whole number of cells, and one cell more or less is a third of a line's height:
    a crop half again too tall shrinks the letters the reader sees (on 1,420 served lines of 180 mild cards,
    line height off by more than a quarter: 24% of lines from whole cells, 12% from the profile)."""
    r0, r1 = max(0, y - 1), min(m.shape[0], y + h + 1)
    profile = m[r0:r1, x : x + w].mean(1, dtype=np.float64)
    height = float(profile.sum())
    centre = r0 + float((profile * (np.arange(r1 - r0) + 0.5)).sum()) / height
    return centre - height / 2, centre + height / 2


def decode(maps: np.ndarray) -> list[Line]:
    """(C, MAP_H, MAP_W) probabilities → lines in reading order (field, then top to bottom)."""
    lines: list[Line] = []
    sx, sy = CARD_W / MAP_W, CARD_H / MAP_H
    for cls in range(maps.shape[0]):
        binary = (maps[cls] >= THRESHOLD).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4)
        for i in range(1, n):
            x, y, w, h, area = stats[i]
            if area < MIN_AREA_CELLS:
                continue
            score = float(maps[cls][labels == i].mean())
            ky0, ky1 = (r * sy for r in _kernel_rows(maps[cls], x, y, w, h))
            # undo the shrink: kernel height is (1 - 2*SHRINK_Y) of the line height
            line_h = (ky1 - ky0) / (1 - 2 * SHRINK_Y)
            pad_y = SHRINK_Y * line_h
            pad_x = SHRINK_X * line_h
            box = np.array([x * sx - pad_x, ky0 - pad_y, (x + w) * sx + pad_x, ky1 + pad_y], np.float32)
            box = np.clip(box, 0, [CARD_W, CARD_H, CARD_W, CARD_H]).astype(np.float32)
            lines.append(Line(cls, box, score))
    lines.sort(key=lambda l: (l.field_index, l.box[1], l.box[0]))
    return lines
