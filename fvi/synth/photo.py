"""Turn a flat rendered card into a phone-like capture: background, pose, light, blur, noise, JPEG."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fvi.geometry import apply_homography, warp_card
from fvi.synth.card import RenderedCard

# phone captures as eKYC apps send them (already downscaled from the sensor)
OUTPUT_SIZES = [(1280, 960), (960, 1280), (1280, 720), (720, 1280), (1024, 768), (768, 1024), (1080, 1080)]


@dataclass
class PlacedLine:
    field: str
    text: str
    polygon: np.ndarray  # 4 x 2 (TL, TR, BR, BL) in image pixels


@dataclass
class Capture:
    image: np.ndarray  # H x W x 3 RGB uint8
    jpeg: bytes  # the image as a phone would send it
    corners: np.ndarray  # 4 x 2: TL, TR, BR, BL of the card's own orientation, image pixels
    lines: list[PlacedLine]
    conditions: dict


def procedural_background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(4)
    base = rng.uniform(20, 235, 3)
    if kind == 0:  # smooth gradient (desk, wall)
        other = rng.uniform(20, 235, 3)
        t = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, w)[None, :, None]
        img = base * (1 - t) + other * t
        img = np.broadcast_to(img, (h, w, 3)).copy()
    elif kind == 1:  # wood-like stripes
        xs = np.arange(w)[None, :] + 15 * np.sin(np.arange(h)[:, None] / rng.uniform(20, 80))
        stripes = (np.sin(xs / rng.uniform(3, 12)) * 0.5 + 0.5)[..., None]
        img = base * (0.75 + 0.25 * stripes)
    elif kind == 2:  # clutter of rectangles and text-like strokes
        img = np.ascontiguousarray(np.broadcast_to(base, (h, w, 3)), dtype=np.uint8)
        for _ in range(int(rng.integers(5, 25))):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            x1, y1 = x0 + rng.integers(20, w // 2), y0 + rng.integers(20, h // 2)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), rng.uniform(0, 255, 3).tolist(), -1)
        for _ in range(int(rng.integers(0, 12))):
            cv2.putText(img, "".join(rng.choice(list("ABCDEFGHIK0123456789 "), 12)), (int(rng.integers(0, w)), int(rng.integers(0, h))),
                        cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.5, 1.5), rng.uniform(0, 255, 3).tolist(), 2)
        img = img.astype(np.float32)
    else:  # blurred noise (fabric, carpet)
        noise = rng.uniform(0, 1, (h // 8 + 1, w // 8 + 1, 3))
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        img = base * 0.6 + noise * rng.uniform(40, 160)
    img = img + rng.standard_normal((h, w, 3), dtype=np.float32) * rng.uniform(1, 8)
    return np.clip(img, 0, 255).astype(np.float32)


def _pose(w: int, h: int, card_w: int, card_h: int, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """Destination corners of the card: scale, any in-plane rotation, perspective tilt, inside the frame."""
    angle = rng.uniform(0, 360)
    for _ in range(50):
        fill = rng.uniform(0.45, 0.95)  # card's long side vs the frame's short side
        long_side = fill * min(w, h)
        sx, sy = long_side / 2, long_side * card_h / card_w / 2
        rect = np.array([[-sx, -sy], [sx, -sy], [sx, sy], [-sx, sy]])
        tilt = rng.uniform(0, 0.18)
        rect = rect + rng.uniform(-tilt, tilt, (4, 2)) * long_side
        a = math.radians(angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = rect @ rot.T
        lo, hi = pts.min(0), pts.max(0)
        span = np.array([w, h]) - (hi - lo) - 4
        if (span > 0).all():
            center = -lo + 2 + rng.uniform(0, 1, 2) * span
            return (pts + center).astype(np.float32), angle, fill
    return _pose(w, h, card_w, card_h, rng)


def photograph(card: RenderedCard, rng: np.random.Generator, size: tuple[int, int] | None = None) -> Capture:
    w, h = size or OUTPUT_SIZES[int(rng.integers(len(OUTPUT_SIZES)))]
    cw, ch = card.size
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    dst, angle, fill = _pose(w, h, cw, ch, rng)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(card.image, m, (w, h), flags=cv2.INTER_AREA if fill < 0.7 else cv2.INTER_LINEAR)
    alpha = warped[..., 3:4].astype(np.float32) / 255.0
    img = procedural_background(w, h, rng) * (1 - alpha) + warped[..., :3].astype(np.float32) * alpha
    img = img.astype(np.float32)
    # lighting: a smooth brightness field, a colour cast, sometimes a glare spot or a shadow band
    # light fields are smooth: compute them at 1/8 resolution and upsample
    sh, sw = h // 8 + 1, w // 8 + 1
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32) * 8
    gx, gy = rng.uniform(-1, 1, 2)
    light = rng.uniform(0.6, 1.15) + 0.25 * (gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    glare = rng.random() < 0.25
    add = np.zeros_like(light)
    if glare:
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.2) * min(w, h)
        add = 255 * rng.uniform(0.3, 0.8) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    if rng.random() < 0.2:
        nx, ny = rng.normal(0, 1, 2)
        side = (xx - rng.uniform(0, w)) * nx + (yy - rng.uniform(0, h)) * ny > 0
        light = np.where(side, light * rng.uniform(0.55, 0.85), light)
    light = cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    add = cv2.resize(add.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    img = img * light[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32) + add[..., None]
    blur = float(rng.choice([0, 0, 0.6, 1.0, 1.6]))
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, 6)
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(50, 96))
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    jpeg = enc.tobytes()
    rgb = cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    lines = []
    for line in card.lines:
        x0, y0, x1, y1 = line.box
        poly = apply_homography(m, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32))
        lines.append(PlacedLine(line.field, line.text, poly))
    conditions = {"rotation": round(angle, 1), "card_fill": round(fill, 3), "blur": blur, "glare": glare,
                  "jpeg_quality": quality, "size": [w, h]}
    return Capture(rgb, jpeg, dst, lines, conditions)


def flatten_like_cropper(capture: Capture, rng: np.random.Generator, corner_noise: float = 0.006) -> tuple[np.ndarray, list[PlacedLine]]:
    """The flat card the detector and reader see in production: warped with slightly wrong corners."""
    diag = float(np.linalg.norm(capture.corners[0] - capture.corners[2]))
    noisy = capture.corners + rng.normal(0, corner_noise * diag, (4, 2)).astype(np.float32)
    flat = warp_card(capture.image, noisy)
    from fvi.geometry import CARD_CORNERS

    m = cv2.getPerspectiveTransform(noisy, CARD_CORNERS)
    return flat, [PlacedLine(l.field, l.text, apply_homography(m, l.polygon)) for l in capture.lines]
