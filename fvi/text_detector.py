"""Text-line detection on the whole photo: PP-OCRv4's DB detector (trained on real photos) pre/post-processing.

The net gives, for each pixel of its input, the probability that it lies inside a (shrunk) text line. Lines
are the connected regions of that map, each a rotated rectangle grown back by DB's unclip ratio, reported in
the photo's own pixels with their corners in reading order (the page orientation decides which end is the
start: `orient`). No card crop is needed first: the lines of a card are found wherever the card is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

STRIDE = 32  # the net's input sides are multiples of this


@dataclass(frozen=True)
class DetectorParams:
    """DB post-processing as PaddleOCR ships it for PP-OCRv4, and the sizes the photo is looked at."""

    first_side: int = 960  # long side of the whole-photo look
    second_side: int = 960  # long side of the second look at the text (fvi.text_detector.second_view)
    zoom_below: float = 0.5  # text spanning less than this of the photo's long side gets a second look
    level_within_deg: float = 10.0  # text further than this from level (or upright) gets a second look
    zoom_margin: float = 0.08  # the second look: the text's extent grown by this much of its size each side
    max_zoom: float = 3.0  # at most this many view pixels per photo pixel
    threshold: float = 0.3  # pixel probability that counts as text
    dilate: bool = True  # grow the text mask by a pixel before finding regions (rapidocr's default)
    box_threshold: float = 0.5  # a region's mean probability to be a line
    unclip_ratio: float = 1.6  # the region grown back by area * ratio / perimeter
    min_side_px: float = 3.0  # in the net's input pixels
    max_lines: int = 48  # a card front has 15-25 text lines, labels included
    tall_line: float = 1.7  # a region this many times the page's median line height is looked at again, ...
    split_thresholds: tuple[float, ...] = (0.5, 0.7)  # ... with these stricter pixel thresholds, to part its rows


PARAMS = DetectorParams()


@dataclass
class Line:
    """A text line: corners (4 x 2, photo pixels) in reading order TL, TR, BR, BL, and the detector's score."""

    quad: np.ndarray
    score: float
    meta: dict = field(default_factory=dict)

    @property
    def height(self) -> float:
        return float((np.linalg.norm(self.quad[3] - self.quad[0]) + np.linalg.norm(self.quad[2] - self.quad[1])) / 2)

    @property
    def length(self) -> float:
        return float((np.linalg.norm(self.quad[1] - self.quad[0]) + np.linalg.norm(self.quad[2] - self.quad[3])) / 2)


def input_size(w: int, h: int, side: int) -> tuple[int, int]:
    """The net's (width, height) for an image of w x h looked at with long side `side` (multiples of STRIDE)."""
    s = side / max(w, h)
    return max(STRIDE, int(round(w * s / STRIDE)) * STRIDE), max(STRIDE, int(round(h * s / STRIDE)) * STRIDE)


def preprocess(image_rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB image → (3, H, W) uint8 net input (the graph normalises) and the (x, y) factors input → image pixels."""
    h, w = image_rgb.shape[:2]
    nw, nh = input_size(w, h, side)
    interp = cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR
    x = cv2.resize(image_rgb, (nw, nh), interpolation=interp)
    return np.ascontiguousarray(x.transpose(2, 0, 1)), np.array([w / nw, h / nh], np.float32)


def decode(prob: np.ndarray, to_image: np.ndarray, offset: np.ndarray | None = None,
           params: DetectorParams = PARAMS) -> list[Line]:
    """(H, W) probability map → lines in image pixels (input pixels * to_image + offset), unordered ends."""
    prob = np.asarray(prob, np.float32).reshape(prob.shape[-2:])
    mask = (prob > params.threshold).astype(np.uint8)
    if params.dilate:
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    regions = [c for c in contours if len(c) >= 4 and min(cv2.minAreaRect(c)[1]) >= params.min_side_px]
    regions = _split_rows(prob, regions, params)
    off = np.zeros(2, np.float32) if offset is None else np.asarray(offset, np.float32)
    lines = []
    for c in regions:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(c)
        score = _mean_inside(prob, c)
        if score < params.box_threshold:
            continue
        grow = rw * rh * params.unclip_ratio / (2 * (rw + rh))
        box = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)).astype(np.float32)
        lines.append(Line(box * np.asarray(to_image, np.float32) + off, score))
    lines.sort(key=lambda l: -l.score * l.length)
    return lines[: params.max_lines]


def _split_rows(prob: np.ndarray, regions: list[np.ndarray], params: DetectorParams) -> list[np.ndarray]:
    """A region much taller than the page's lines is two rows the map joined (on the chip card the expiry value
    sits between its two label lines and beside the second residence line): looked at with a stricter threshold,
    its rows come apart. Regions are kept as they are when no stricter threshold parts them."""
    if len(regions) < 3:
        return regions
    heights = np.array([min(cv2.minAreaRect(c)[1]) for c in regions])
    typical = float(np.median(heights))
    out = []
    for c, h in zip(regions, heights):
        if h <= params.tall_line * typical:
            out.append(c)
            continue
        x, y, w, hh = cv2.boundingRect(c)
        inside = np.zeros((hh, w), np.uint8)
        cv2.fillPoly(inside, [c.reshape(-1, 2) - [x, y]], 1)
        parts = [c]
        for t in params.split_thresholds:
            sub = ((prob[y : y + hh, x : x + w] > t) & (inside > 0)).astype(np.uint8)
            found, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            found = [f + [x, y] for f in found if len(f) >= 4 and min(cv2.minAreaRect(f)[1]) >= params.min_side_px]
            if len(found) >= 2:
                parts = found
                break
        out.extend(parts)
    return out


def _mean_inside(prob: np.ndarray, contour: np.ndarray) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [contour.reshape(-1, 2) - [x, y]], 1)
    return float(cv2.mean(prob[y : y + h, x : x + w], mask)[0])


def second_view(lines: list[Line], image_size: tuple[int, int], params: DetectorParams = PARAMS
                ) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Where a second look should go: (2 x 3 affine image → view, (width, height) of the view), or None when the
    first look already sees the text well. Two things call for it: text spanning little of the photo (a card a
    fifth of the frame wide has 5-pixel print in a whole-photo look) and text running off the axes (DB's
    training text is level; at 30-60 degrees it breaks lines into words). The view is the text's extent,
    turned level and scaled to `second_side`."""
    if not lines:
        return None
    w, h = image_size
    angle = page_angle(lines)
    off_axis = abs(angle - round(angle / (np.pi / 2)) * (np.pi / 2)) > np.radians(params.level_within_deg)
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.array([[c, -s], [s, c]])
    pts = np.concatenate([l.quad for l in lines]) @ rot.T
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = float(max(hi - lo))
    if not off_axis and span >= params.zoom_below * max(w, h):
        return None
    lo, hi = lo - params.zoom_margin * span, hi + params.zoom_margin * span
    k = min(params.max_zoom, params.second_side / float(max(hi - lo)))
    vw, vh = input_size(int((hi - lo)[0] * k) + 1, int((hi - lo)[1] * k) + 1, int(max(hi - lo) * k) + 1)
    m = np.hstack([k * rot, (-k * lo)[:, None]]).astype(np.float32)
    return m, (vw, vh)


def view_input(image_rgb: np.ndarray, view: tuple[np.ndarray, tuple[int, int]]) -> np.ndarray:
    """The second look's (3, H, W) uint8 net input."""
    m, size = view
    x = cv2.warpAffine(image_rgb, m, size, flags=cv2.INTER_LINEAR if m[0, 0] ** 2 + m[0, 1] ** 2 >= 1 else cv2.INTER_AREA,
                       borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def from_view(lines: list[Line], view: tuple[np.ndarray, tuple[int, int]]) -> list[Line]:
    """Lines found in a view (view pixels) → photo pixels."""
    inv = cv2.invertAffineTransform(view[0])
    return [Line(l.quad @ inv[:, :2].T + inv[:, 2], l.score) for l in lines]


def page_angle(lines: list[Line]) -> float:
    """The direction text runs on the page (radians, in (-pi/2, pi/2]): the length-weighted mean of the lines'
    long axes, doubled angles so a line's two ends count alike. Upside-down is decided later, by what is read."""
    if not lines:
        return 0.0
    acc = np.zeros(2)
    for l in lines:
        a, b = _long_axis(l.quad)
        d = b - a
        t = np.arctan2(d[1], d[0])
        acc += np.hypot(*d) * np.array([np.cos(2 * t), np.sin(2 * t)])
    t = float(np.arctan2(acc[1], acc[0]) / 2)
    return t if t > -np.pi / 2 + 1e-6 else t + np.pi


def _long_axis(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints of the quad's two short sides (start, end in the quad's own order)."""
    if np.linalg.norm(q[1] - q[0]) >= np.linalg.norm(q[2] - q[1]):
        return (q[0] + q[3]) / 2, (q[1] + q[2]) / 2
    return (q[0] + q[1]) / 2, (q[3] + q[2]) / 2


def orient(quad: np.ndarray, angle: float) -> np.ndarray:
    """The quad's corners as TL, TR, BR, BL of text running along `angle` (radians, image y down): the side
    nearest that direction is the line's length, whatever the box's own aspect (a 'Nam' box is almost square)."""
    u = np.array([np.cos(angle), np.sin(angle)])
    q = np.asarray(quad, np.float32)
    best = None
    for k in range(4):
        r = np.roll(q, -k, axis=0)
        along = ((r[1] - r[0]) + (r[2] - r[3])) @ u  # TL→TR and BL→BR should both run along u
        down = ((r[3] - r[0]) + (r[2] - r[1])) @ np.array([-u[1], u[0]])  # TL→BL runs 90° clockwise of u
        if best is None or along + down > best[0]:
            best = (along + down, r)
    return best[1]


def turned(quad: np.ndarray) -> np.ndarray:
    """The same line read the other way up."""
    return np.roll(np.asarray(quad), 2, axis=0)


def find_lines(image_rgb: np.ndarray, run_net, params: DetectorParams = PARAMS) -> list[Line]:
    """Every text line of a photo (photo pixels of `image_rgb`), looked at once whole and, where second_view asks,
    once more on the text turned level and zoomed. run_net: (1, 3, H, W) uint8 → (1, 1, H, W) probabilities."""
    x, to_image = preprocess(image_rgb, params.first_side)
    lines = decode(run_net(x[None]), to_image, params=params)
    view = second_view(lines, (image_rgb.shape[1], image_rgb.shape[0]), params)
    if view is None:
        return lines
    return from_view(decode(run_net(view_input(image_rgb, view)[None]), np.ones(2, np.float32), params=params), view)
