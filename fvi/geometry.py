"""Card geometry: the flat card, corner order, homographies."""
from __future__ import annotations

import cv2
import numpy as np

# The flat (warped) card capture quality is judged on and the synthetic photos are drawn from: ISO ID-1 aspect.
CARD_W, CARD_H = 800, 504
CARD_CORNERS = np.array([[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]], dtype=np.float32)


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
