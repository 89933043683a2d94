"""Card geometry shared by every stage: corner order, letterboxing, homographies, line crops."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The flat (warped) card every downstream stage sees: ISO ID-1 aspect, 800 x 504 pixels.
CARD_W, CARD_H = 800, 504
CARD_CORNERS = np.array([[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]], dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into a square network input (to map points back).

    The image may itself be a reduced decode of the photo: sx, sy map photo pixels to image pixels,
    so `to_image` lands in the photo's own pixels whatever size the network's input was made from.
    """

    scale: float
    pad_x: float
    pad_y: float
    sx: float = 1.0
    sy: float = 1.0

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        return (pts - np.array([self.pad_x, self.pad_y], np.float32)) / self.scale / np.array([self.sx, self.sy], np.float32)

    def to_input(self, pts: np.ndarray) -> np.ndarray:
        return pts * np.array([self.sx, self.sy], np.float32) * self.scale + np.array([self.pad_x, self.pad_y], np.float32)

    def of_reduced(self, scale: np.ndarray) -> "Letterbox":
        """The same letterbox for an image that is a reduced decode of the photo ((x, y) photo → image factors)."""
        return Letterbox(self.scale, self.pad_x, self.pad_y, float(scale[0]), float(scale[1]))

    def as_array(self) -> np.ndarray:
        return np.array([self.scale, self.pad_x, self.pad_y, self.sx, self.sy], np.float32)

    @staticmethod
    def from_array(a: np.ndarray) -> "Letterbox":
        a = np.asarray(a, np.float32).reshape(-1)
        return Letterbox(*(float(v) for v in a[:5]))


def letterbox(image: np.ndarray, size: int, fill: int = 0) -> tuple[np.ndarray, Letterbox]:
    """Fit an image into a size x size square, keeping aspect, centred, padded with `fill`."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.full((size, size) + image.shape[2:], fill, dtype=image.dtype)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = resized
    return out, Letterbox(scale, float(px), float(py))


def warp_card(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Warp the quadrilateral (TL, TR, BR, BL in image pixels) to the flat CARD_W x CARD_H card."""
    m = cv2.getPerspectiveTransform(np.asarray(corners, np.float32), CARD_CORNERS)
    return cv2.warpPerspective(image, m, (CARD_W, CARD_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def apply_homography(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, np.asarray(m, np.float64)).reshape(-1, 2).astype(np.float32)


def quad_is_plausible(corners: np.ndarray, image_shape: tuple[int, ...], min_area_frac: float = 0.01) -> bool:
    """A convex quad of some size, in the card's own winding: rejects degenerate corner sets."""
    c = np.asarray(corners, np.float64)
    area = 0.5 * sum(c[i, 0] * c[(i + 1) % 4, 1] - c[(i + 1) % 4, 0] * c[i, 1] for i in range(4))
    cross = []
    for i in range(4):
        a, b, d = c[i], c[(i + 1) % 4], c[(i + 2) % 4]
        cross.append((b[0] - a[0]) * (d[1] - b[1]) - (b[1] - a[1]) * (d[0] - b[0]))
    convex = all(x > 0 for x in cross) or all(x < 0 for x in cross)
    return bool(convex and area > 0 and area >= min_area_frac * image_shape[0] * image_shape[1])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two axis-aligned boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
