"""Turn a flat rendered card into a phone-like capture: background, pose, light, blur, noise, JPEG."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fvi.geometry import apply_homography
from fvi.synth.card import RenderedCard

# phone captures as eKYC apps send them (already downscaled from the sensor)
OUTPUT_SIZES = [(1280, 960), (960, 1280), (1280, 720), (720, 1280), (1024, 768), (768, 1024), (1080, 1080)]


# Photographic backgrounds: Debian's wallpaper packages (mate-backgrounds, installed by make setup).
WALLPAPER_DIRS = [Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers")]


@dataclass(frozen=True)
class CaptureStyle:
    """How much a capture varies. MILD is what the committed models were trained and evaluated on
    (its draws are unchanged, so its photos are byte-identical to earlier sets); WILD spans what
    issue 3 lists for real phone captures, for the next training data and a harder evaluation."""

    name: str = "mild"
    fill: tuple[float, float] = (0.45, 0.95)  # card's long side / frame's short side
    tilt: float = 0.18  # random corner offsets, in card long sides (MILD's only perspective)
    max_tilt_deg: float = 0.0  # WILD: the card plane turned up to this far from facing the camera
    jpeg_quality: tuple[int, int] = (50, 96)
    motion_blur: float = 0.0  # probability of a linear motion blur
    low_light: float = 0.0  # probability of a dark, noisy capture
    occlusion: float = 0.0  # probability of a finger over an edge near a corner
    wallpaper: float = 0.0  # probability of a photographic background (when wallpapers are installed)
    # which wallpapers: "all", or a fixed two-thirds for training data and the other third, never trained
    # on, for evaluation (so its backgrounds are ones the models have not seen)
    wallpaper_set: str = "all"


MILD = CaptureStyle()
WILD = CaptureStyle(name="wild", fill=(0.2, 0.95), tilt=0.04, max_tilt_deg=35.0, jpeg_quality=(30, 96),
                    motion_blur=0.15, low_light=0.15, occlusion=0.12, wallpaper=0.5)
CAPTURE_STYLES = {s.name: s for s in (MILD, WILD)}


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
    labels: list[PlacedLine] = field(default_factory=list)  # the printed static text (field ""): headers, labels


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


def _pose(w: int, h: int, card_w: int, card_h: int, rng: np.random.Generator, style: CaptureStyle = MILD
          ) -> tuple[np.ndarray, float, float, float]:
    """Destination corners of the card: scale, any in-plane rotation, perspective tilt, inside the frame."""
    angle = rng.uniform(0, 360)
    for _ in range(50):
        fill = rng.uniform(*style.fill)  # card's long side vs the frame's short side
        long_side = fill * min(w, h)
        sx, sy = long_side / 2, long_side * card_h / card_w / 2
        rect = np.array([[-sx, -sy], [sx, -sy], [sx, sy], [-sx, sy]])
        tilt_deg = 0.0
        if style.max_tilt_deg:
            rect, tilt_deg = _turned(rect, style.max_tilt_deg, rng)
        tilt = rng.uniform(0, style.tilt)
        rect = rect + rng.uniform(-tilt, tilt, (4, 2)) * long_side
        a = math.radians(angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = rect @ rot.T
        lo, hi = pts.min(0), pts.max(0)
        span = np.array([w, h]) - (hi - lo) - 4
        if (span > 0).all():
            center = -lo + 2 + rng.uniform(0, 1, 2) * span
            return (pts + center).astype(np.float32), angle, fill, tilt_deg
    return _pose(w, h, card_w, card_h, rng, style)


def _turned(rect: np.ndarray, max_deg: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The card plane turned about a random axis in it, seen by a phone camera (pinhole, ~65° view)."""
    tilt = math.radians(rng.uniform(0, max_deg))
    axis_angle = rng.uniform(0, 2 * math.pi)
    ax = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0])
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    r = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * (k @ k)  # Rodrigues
    pts = np.c_[rect, np.zeros(4)] @ r.T
    focal = 1.6 * float(np.abs(rect).max()) * 2  # the card about two thirds of the view
    z = pts[:, 2] + focal
    proj = pts[:, :2] * (focal / z)[:, None]
    return proj * (np.abs(rect).max() / np.abs(proj).max()), math.degrees(tilt)


WALLPAPER_SETS = ("all", "train", "held_out")


@lru_cache(maxsize=3)
def wallpapers(which: str = "all") -> tuple[Path, ...]:
    """The installed wallpapers, or the training / held-out part of them (every third file is held out)."""
    if which not in WALLPAPER_SETS:
        raise ValueError(f"wallpaper set {which!r}: expected one of {', '.join(WALLPAPER_SETS)}")
    files = sorted(p for d in WALLPAPER_DIRS if d.is_dir() for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if which == "all":
        return tuple(files)
    return tuple(p for i, p in enumerate(files) if (i % 3 == 0) == (which == "held_out"))


@lru_cache(maxsize=64)
def _wallpaper(path: Path) -> np.ndarray | None:
    """Decoded once per process, at most 1600 px (some are 4K)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is not None and max(img.shape[:2]) > 1600:
        f = 1600 / max(img.shape[:2])
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return img


def photo_background(w: int, h: int, rng: np.random.Generator, which: str = "all") -> np.ndarray | None:
    """A random crop of a random wallpaper of the set, w x h float32 RGB; None when none is installed or readable."""
    files = wallpapers(which)
    if not files:
        return None
    img = _wallpaper(files[int(rng.integers(len(files)))])
    if img is None:
        return None
    ih, iw = img.shape[:2]
    scale = max(w / iw, h / ih) * rng.uniform(1.0, 2.0)
    img = cv2.resize(img, (max(w, round(iw * scale)), max(h, round(ih * scale))), interpolation=cv2.INTER_AREA)
    y, x = int(rng.integers(img.shape[0] - h + 1)), int(rng.integers(img.shape[1] - w + 1))
    return cv2.cvtColor(img[y:y + h, x:x + w], cv2.COLOR_BGR2RGB).astype(np.float32)


def scene_background(w: int, h: int, rng: np.random.Generator, style: CaptureStyle = MILD) -> tuple[np.ndarray, bool]:
    """What a card lies on (or a card-free photo shows): a wallpaper photograph with the style's
    probability when one is installed, else a procedural surface. Returns (float32 RGB, photographic).
    MILD draws nothing for the choice, so its photos stay as they were."""
    photo = photo_background(w, h, rng, style.wallpaper_set) if style.wallpaper and rng.random() < style.wallpaper else None
    return (procedural_background(w, h, rng), False) if photo is None else (photo, True)


def _finger(img: np.ndarray, corners: np.ndarray, rng: np.random.Generator) -> None:
    """A finger-like blob over the card's edge next to one corner (in place): the corner itself stays visible
    often enough for the cropper, while the print near it is hidden."""
    k = int(rng.integers(4))
    c, nxt = corners[k], corners[(k + 1) % 4]
    edge = float(np.linalg.norm(nxt - c))
    centre = c + (nxt - c) * rng.uniform(0.08, 0.25)
    axes = (int(edge * rng.uniform(0.05, 0.08)), int(edge * rng.uniform(0.15, 0.3)))
    angle = math.degrees(math.atan2(*(nxt - c)[::-1])) + 90 + rng.uniform(-25, 25)
    skin = np.array([rng.uniform(150, 230), rng.uniform(100, 170), rng.uniform(80, 140)])
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, angle, 0, 360, 255, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 3).astype(np.float32)[..., None] / 255
    img[:] = img * (1 - mask) + skin.astype(np.float32) * mask


def photograph(card: RenderedCard, rng: np.random.Generator, size: tuple[int, int] | None = None,
               style: CaptureStyle = MILD) -> Capture:
    w, h = size or OUTPUT_SIZES[int(rng.integers(len(OUTPUT_SIZES)))]
    cw, ch = card.size
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    dst, angle, fill, tilt_deg = _pose(w, h, cw, ch, rng, style)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(card.image, m, (w, h), flags=cv2.INTER_AREA if fill < 0.7 else cv2.INTER_LINEAR)
    alpha = warped[..., 3:4].astype(np.float32) / 255.0
    # WILD-only draws are guarded by their probability, so MILD consumes the generator exactly as before
    background, photographic = scene_background(w, h, rng, style)
    img = background * (1 - alpha) + warped[..., :3].astype(np.float32) * alpha
    img = img.astype(np.float32)
    occluded = bool(style.occlusion and rng.random() < style.occlusion)
    if occluded:
        _finger(img, dst, rng)
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
    low_light = bool(style.low_light and rng.random() < style.low_light)
    if low_light:  # a dim room: little light, and the sensor's gain shows as noise below
        light = light * rng.uniform(0.25, 0.5)
    light = cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    add = cv2.resize(add.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    img = img * light[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32) + add[..., None]
    blur = float(rng.choice([0, 0, 0.6, 1.0, 1.6]))
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    motion = 0
    if style.motion_blur and rng.random() < style.motion_blur:  # the hand moved during the exposure
        motion = int(rng.integers(5, 16))
        kernel = np.zeros((motion, motion), np.float32)
        kernel[motion // 2, :] = 1.0 / motion
        rot = cv2.getRotationMatrix2D(((motion - 1) / 2, (motion - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (motion, motion))
        img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, 6)
    if low_light:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(4, 12)
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(*style.jpeg_quality))
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    jpeg = enc.tobytes()
    rgb = cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    def placed(line) -> PlacedLine:
        x0, y0, x1, y1 = line.box
        return PlacedLine(line.field, line.text, apply_homography(m, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)))

    lines = [placed(line) for line in card.lines]
    conditions = {"rotation": round(angle, 1), "card_fill": round(fill, 3), "blur": blur, "glare": glare,
                  "jpeg_quality": quality, "size": [w, h]}
    if style != MILD:  # MILD's ground truth stays as it was
        conditions.update({"style": style.name, "tilt_deg": round(tilt_deg, 1), "motion_blur_px": motion,
                           "low_light": low_light, "occluded": occluded, "photo_background": photographic})
    return Capture(rgb, jpeg, dst, lines, conditions, [placed(line) for line in card.labels])
