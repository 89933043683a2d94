"""Render a flat card from a template file (layout as data) and an identity."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from fvi.schema import load_template
from fvi.synth.identity import Identity

FONT_DIRS = [Path("/usr/share/fonts/truetype")]
# (regular, bold) file names of Vietnamese-capable families shipped by Debian font packages
FONT_FAMILIES: list[tuple[str, str]] = [
    ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf"),
    ("noto/NotoSans-Regular.ttf", "noto/NotoSans-Bold.ttf"),
    ("liberation2/LiberationSans-Regular.ttf", "liberation2/LiberationSans-Bold.ttf"),
    ("freefont/FreeSans.ttf", "freefont/FreeSansBold.ttf"),
    ("roboto/unhinted/RobotoTTF/Roboto-Regular.ttf", "roboto/unhinted/RobotoTTF/Roboto-Bold.ttf"),
]


def available_font_families() -> list[tuple[Path, Path]]:
    found = []
    for regular, bold in FONT_FAMILIES:
        for d in FONT_DIRS:
            r, b = d / regular, d / bold
            if r.exists() and b.exists():
                found.append((r, b))
                break
    if not found:
        raise RuntimeError("no Vietnamese-capable fonts found: install fonts-dejavu-core fonts-noto-core (make setup does)")
    return found


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@dataclass
class TextLine:
    field: str
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 on the rendered card


@dataclass
class RenderedCard:
    card_type: str
    image: np.ndarray  # H x W x 4 RGBA, alpha = the card's rounded outline
    lines: list[TextLine]  # the field values as printed (only the fields this card type carries)
    identity: Identity  # every field, also those this card type does not print (see card_fields)
    labels: list[TextLine] = field(default_factory=list)  # the printed static text (field ""), for layout checks
    card_fields: tuple[str, ...] = ()  # the fields printed on this card type, in template order

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _jitter(color, rng: np.random.Generator, amount: int) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _draw_text(img: Image.Image, text: str, xy: tuple[float, float], font: ImageFont.FreeTypeFont,
               color: tuple[int, ...], max_width: float | None = None, anchor_center: bool = False) -> tuple[float, float, float, float]:
    """Draw text whose box is the font's ascent-to-descent band; squeeze horizontally to fit max_width."""
    ascent, descent = font.getmetrics()
    width = font.getlength(text)
    top_pad = int(font.size * 0.4)
    mask = Image.new("L", (int(math.ceil(width)) + 8, ascent + descent + top_pad + 8), 0)
    ImageDraw.Draw(mask).text((4, 4 + top_pad), text, font=font, fill=255, anchor="la")
    if max_width is not None and width > max_width:
        mask = mask.resize((int(max_width) + 8, mask.height), Image.LANCZOS)
        width = max_width
    x, y = xy
    if anchor_center:
        x, y = x - width / 2, y - (ascent + descent) / 2
    layer = Image.new("RGBA", mask.size, color + (255,) if len(color) == 3 else color)
    img.paste(layer, (int(round(x)) - 4, int(round(y)) - 4 - top_pad), mask)
    return (float(int(round(x))), float(int(round(y))), float(int(round(x)) + width), float(int(round(y)) + ascent + descent))


def _background(size: tuple[int, int], spec: dict, rng: np.random.Generator) -> Image.Image:
    """The card's printed background; spec "style" picks the security print (default: the chip CCCD's
    waves and drum, drawn exactly as before the style key existed)."""
    style = spec.get("style", "waves_drum")
    if style != "waves_drum":
        return BACKGROUND_STYLES[style](size, spec, rng)
    w, h = size
    top = np.array(_jitter(spec["top"], rng, 12), np.float32)
    bottom = np.array(_jitter(spec["bottom"], rng, 12), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    xs = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    grad = top * (1 - t) + bottom * t + 10 * np.sin(xs * math.pi * rng.uniform(0.5, 2))
    img = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    pattern = _jitter(spec["pattern"], rng, 15)
    # guilloche: families of phase-shifted sine waves, and a faint drum in the centre
    for k in range(int(rng.integers(10, 22))):
        amp, freq, phase = rng.uniform(8, 30), rng.uniform(1.5, 5), rng.uniform(0, 2 * math.pi)
        y0 = (k + 0.5) * h / 16
        pts = [(x, y0 + amp * math.sin(freq * 2 * math.pi * x / w + phase)) for x in range(0, w + 10, 10)]
        d.line(pts, fill=pattern, width=1)
    cx, cy = w * rng.uniform(0.45, 0.6), h * rng.uniform(0.45, 0.6)
    for r in range(40, int(h * 0.45), int(rng.integers(12, 22))):
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=pattern, width=1)
    return img


def _gradient(size: tuple[int, int], spec: dict, rng: np.random.Generator) -> Image.Image:
    """Top-to-bottom tint with a slow horizontal swell; spec "side" blends a third tint in from the right."""
    w, h = size
    top = np.array(_jitter(spec["top"], rng, 12), np.float32)
    bottom = np.array(_jitter(spec["bottom"], rng, 12), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    xs = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    grad = top * (1 - t) + bottom * t + 8 * np.sin(xs * math.pi * rng.uniform(0.5, 2) + rng.uniform(0, math.pi))
    if "side" in spec:  # a third tint blended in from the right edge
        side = np.array(_jitter(spec["side"], rng, 12), np.float32)
        k = np.clip(xs * 1.6 - 0.6, 0, 1) * rng.uniform(0.5, 0.9)
        grad = grad * (1 - k) + side * k
    return Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8), "RGB")


def _background_mesh_drum(size: tuple[int, int], spec: dict, rng: np.random.Generator) -> Image.Image:
    """The 2016 CCCD's print: a fine mesh of crossing wavy diagonals and a bronze-drum sun with rays."""
    w, h = size
    img = _gradient(size, spec, rng)
    d = ImageDraw.Draw(img)
    pattern, pattern2 = _jitter(spec["pattern"], rng, 15), _jitter(spec.get("pattern2", spec["pattern"]), rng, 15)
    step = int(rng.integers(26, 40))
    amp, freq = rng.uniform(4, 12), rng.uniform(2, 5)
    for sign, colour in ((1, pattern), (-1, pattern2)):
        phase = rng.uniform(0, 2 * math.pi)
        for k in range(-h // step - 2, w // step + 2):
            x0 = k * step
            pts = [(x0 + sign * y * 0.8 + amp * math.sin(freq * 2 * math.pi * y / h + phase), y) for y in range(0, h + 12, 12)]
            d.line(pts, fill=colour, width=1)
    cx, cy = w * rng.uniform(0.55, 0.7), h * rng.uniform(0.5, 0.62)
    radii = range(30, int(h * 0.5), int(rng.integers(14, 24)))
    for r in radii:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=pattern, width=1)
    rays = int(rng.integers(12, 17))
    for i in range(rays):
        a = 2 * math.pi * i / rays
        d.line([(cx + 8 * math.cos(a), cy + 8 * math.sin(a)), (cx + 28 * math.cos(a + math.pi / rays), cy + 28 * math.sin(a + math.pi / rays)),
                (cx + 8 * math.cos(a + 2 * math.pi / rays), cy + 8 * math.sin(a + 2 * math.pi / rays))], fill=pattern2, width=2)
    return img


def _background_rosette(size: tuple[int, int], spec: dict, rng: np.random.Generator) -> Image.Image:
    """The 2024 card's print: guilloche rosettes (woven bands of wavy circles) and fine wavy rows over a blue-to-pink tint."""
    w, h = size
    img = _gradient(size, spec, rng)
    d = ImageDraw.Draw(img)
    pattern, pattern2 = _jitter(spec["pattern"], rng, 15), _jitter(spec.get("pattern2", spec["pattern"]), rng, 15)
    for k in range(int(rng.integers(20, 34))):  # fine horizontal guilloche rows
        y0 = (k + rng.uniform(0, 1)) * h / 26
        amp, freq, phase = rng.uniform(2, 6), rng.uniform(6, 14), rng.uniform(0, 2 * math.pi)
        d.line([(x, y0 + amp * math.sin(freq * 2 * math.pi * x / w + phase)) for x in range(0, w + 8, 8)], fill=pattern2, width=1)
    centres = [(w * rng.uniform(0.5, 0.65), h * rng.uniform(0.45, 0.6), h * rng.uniform(0.38, 0.48))]
    if rng.random() < 0.7:
        centres.append((w * rng.uniform(0.05, 0.2), h * rng.uniform(0.75, 0.95), h * rng.uniform(0.2, 0.3)))
    ts = np.linspace(0, 2 * math.pi, 900)
    for cx, cy, radius in centres:  # woven bands: phase-shifted copies of r(θ) = R (1 + a sin(kθ + φ))
        for band in range(int(rng.integers(2, 4))):
            r0, k, a = radius * (1 - 0.3 * band), int(rng.integers(12, 30)), rng.uniform(0.04, 0.09)
            copies = int(rng.integers(5, 9))
            for j in range(copies):
                r = r0 * (1 + a * np.sin(k * ts + 2 * math.pi * j / copies))
                d.line(list(zip((cx + r * np.cos(ts)).tolist(), (cy + r * np.sin(ts)).tolist())),
                       fill=pattern if band % 2 == 0 else pattern2, width=1)
    return img


BACKGROUND_STYLES = {"mesh_drum": _background_mesh_drum, "rosette": _background_rosette}


def _emblem(d: ImageDraw.ImageDraw, center, radius, rng: np.random.Generator) -> None:
    cx, cy = center
    red, gold = _jitter((205, 35, 35), rng, 20), _jitter((235, 195, 60), rng, 20)
    d.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=gold)
    r2 = radius * 0.86
    d.ellipse([cx - r2, cy - r2, cx + r2, cy + r2], fill=red)
    star = []
    for i in range(10):
        r = radius * (0.45 if i % 2 == 0 else 0.18)
        a = -math.pi / 2 + i * math.pi / 5
        star.append((cx + r * math.cos(a), cy - radius * 0.12 + r * math.sin(a)))
    d.polygon(star, fill=gold)
    d.arc([cx - r2 * 0.9, cy - r2 * 0.9, cx + r2 * 0.9, cy + r2 * 0.9], 20, 160, fill=gold, width=max(2, int(radius * 0.08)))


def _qr(d: ImageDraw.ImageDraw, box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    n = 29
    cell = (x1 - x0) / n
    d.rectangle(box, fill=(250, 250, 250))
    grid = rng.random((n, n)) < 0.5
    for fy, fx in ((0, 0), (0, n - 7), (n - 7, 0)):
        grid[fy : fy + 7, fx : fx + 7] = False
        grid[fy, fx : fx + 7] = grid[fy + 6, fx : fx + 7] = True
        grid[fy : fy + 7, fx] = grid[fy : fy + 7, fx + 6] = True
        grid[fy + 2 : fy + 5, fx + 2 : fx + 5] = True
    for j, i in zip(*np.nonzero(grid)):
        d.rectangle([x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell], fill=(15, 15, 15))


def _portrait(img: Image.Image, box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    photo = Image.new("RGB", (w, h), _jitter((205, 220, 235), rng, 25))
    d = ImageDraw.Draw(photo)
    skin = _jitter((190, 160, 140), rng, 40)
    d.ellipse([w * 0.05, h * 0.68, w * 0.95, h * 1.4], fill=_jitter((60, 60, 70), rng, 40))
    d.ellipse([w * 0.28, h * 0.16, w * 0.72, h * 0.66], fill=skin)
    d.chord([w * 0.25, h * 0.1, w * 0.75, h * 0.5], 180, 360, fill=_jitter((30, 25, 25), rng, 20))
    img.paste(photo, (x0, y0))


def _split_to_lines(text: str, font: ImageFont.FreeTypeFont, widths: list[float]) -> list[str]:
    """Greedy word wrap over the template's line slots; the last slot takes the remainder."""
    words = text.split()
    lines: list[str] = []
    for slot, max_w in enumerate(widths):
        if slot == len(widths) - 1:
            lines.append(" ".join(words))
            break
        line: list[str] = []
        while words and font.getlength(" ".join(line + [words[0]])) <= max_w:
            line.append(words.pop(0))
        lines.append(" ".join(line))
    return [ln for ln in lines if ln]


class CardRenderer:
    def __init__(self, card_type: str = "cccd_chip_2021") -> None:
        self.card_type = card_type
        self.template = load_template(card_type)
        self.card_fields = tuple(f["field"] for f in self.template["fields"])
        self.fonts = available_font_families()

    def render(self, identity: Identity, rng: np.random.Generator) -> RenderedCard:
        """Draw the card. The draws from rng happen in a fixed order, and only for elements the template
        has, so a template's output for a seed never changes when other templates gain new keys."""
        t = self.template
        w, h = t["size"]
        regular, bold = self.fonts[int(rng.integers(len(self.fonts)))]
        img = _background((w, h), t["background"], rng)
        d = ImageDraw.Draw(img)
        if "emblem" in t:
            _emblem(d, t["emblem"]["center"], t["emblem"]["radius"], rng)
        if "qr" in t:
            _qr(d, t["qr"]["box"], rng)
        _portrait(img, t["photo"]["box"], rng)
        size_scale = rng.uniform(0.94, 1.04)
        ink = int(rng.integers(-10, 40))
        labels: list[TextLine] = []
        for s in t["static_text"]:
            font = _font(str(bold if s["bold"] else regular), int(s["size"] * size_scale))
            color = tuple(int(np.clip(c + ink, 0, 255)) for c in s["color"])
            if "center" in s:
                box = _draw_text(img, s["text"], s["center"], font, color, max_width=s.get("max_width"), anchor_center=True)
            else:
                box = _draw_text(img, s["text"], s["origin"], font, color, max_width=s.get("max_width"))
            labels.append(TextLine("", s["text"], box))
        lines: list[TextLine] = []
        values = identity.fields()
        for f in t["fields"]:
            font = _font(str(bold if f["bold"] else regular), int(f["size"] * size_scale))
            color = tuple(int(np.clip(c + ink, 0, 255)) for c in f["color"])
            slots = f["lines"]
            texts = _split_to_lines(values[f["field"]], font, [s["max_width"] for s in slots])
            for slot, text in zip(slots, texts):
                jitter = rng.normal(0, 1.5, 2)
                origin = (slot["origin"][0] + jitter[0], slot["origin"][1] + jitter[1])
                box = _draw_text(img, text, origin, font, color, max_width=slot["max_width"])
                lines.append(TextLine(f["field"], text, box))
        if rng.random() < 0.5:
            img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.7)))
        alpha = Image.new("L", (w, h), 0)
        ImageDraw.Draw(alpha).rounded_rectangle([0, 0, w - 1, h - 1], radius=int(h * 0.05), fill=255)
        rgba = np.dstack([np.asarray(img), np.asarray(alpha)])
        return RenderedCard(self.card_type, rgba, lines, identity, labels, self.card_fields)


def render_text_line(text: str, rng: np.random.Generator, fonts: list[tuple[Path, Path]] | None = None) -> np.ndarray:
    """A single line of text as a grey uint8 image with the reader's margins (for reader training)."""
    fonts = fonts or available_font_families()
    regular, bold = fonts[int(rng.integers(len(fonts)))]
    font = _font(str(bold if rng.random() < 0.7 else regular), int(rng.integers(22, 40)))
    ascent, descent = font.getmetrics()
    h = ascent + descent
    width = int(font.getlength(text))
    pad_x, pad_y = int(0.25 * h), int(0.12 * h)
    bg = int(rng.integers(150, 250))
    ink = int(rng.integers(0, max(1, bg - 90)))
    img = Image.new("L", (width + 2 * pad_x, h + 2 * pad_y), bg)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):  # guilloche-like strokes behind the text
        y = rng.uniform(0, img.height)
        d.line([(0, y), (img.width, y + rng.uniform(-10, 10))], fill=int(bg - rng.integers(10, 50)), width=1)
    _draw_text(img, text, (pad_x, pad_y), font, (ink,))
    return np.asarray(img)
