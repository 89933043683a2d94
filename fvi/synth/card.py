"""Render a flat card from a template file (layout as data) and an identity."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from fvi.schema import load_template
from fvi.synth.domain import LABEL_SEPARATOR, TRAIN, UNDERLINED, Ink, Placement, RenderDomain
from fvi.synth.fonts import Family, face_path, installed_families
from fvi.synth.identity import Identity


def domain_families(domain: RenderDomain = TRAIN) -> list[Family]:
    """The domain's font families that are installed, in its order (the renderer draws one per card by index)."""
    found = installed_families(domain.fonts)
    if not found:
        raise RuntimeError(f"no font family of the {domain.name} domain is installed ({', '.join(domain.fonts)}): "
                           "make setup installs them (scripts/setup.sh)")
    return found


def available_font_families(domain: RenderDomain = TRAIN) -> list[tuple[Path, Path]]:
    """(regular, bold) files of the domain's installed families: the faces the template renderer and the rendered
    training lines are set in."""
    return [(face_path(f, "regular"), face_path(f, "bold")) for f in domain_families(domain)]


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
    fonts: tuple[str, ...] = ()  # the font families its text is set in
    domain: str = TRAIN.name  # the render domain (fvi.synth.domain) it was drawn in

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _jitter(color, rng: np.random.Generator, amount: int) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _draw_text(img: Image.Image, text: str, xy: tuple[float, float], font: ImageFont.FreeTypeFont,
               color: tuple[int, ...], max_width: float | None = None, anchor_center: bool = False) -> tuple[float, float, float, float]:
    """Draw text whose box is the font's ascent-to-descent band; squeeze horizontally to fit max_width."""
    return _draw_runs(img, [(text, font)], xy, color, max_width, anchor_center)


def _run_advances(runs: list[tuple[str, ImageFont.FreeTypeFont]], tracking: float = 0.0
                  ) -> tuple[list[tuple[str, ImageFont.FreeTypeFont]], list[float], float]:
    """The pieces drawn one by one (every character when tracked), each one's advance, and the total width
    (no tracking after the last character)."""
    pieces = [(ch, f) for t, f in runs for ch in t] if tracking else runs
    advances = [f.getlength(t) + tracking * f.size for t, f in pieces]
    return pieces, advances, sum(advances) - (tracking * pieces[-1][1].size if tracking and pieces else 0)


def _draw_runs(img: Image.Image, runs: list[tuple[str, ImageFont.FreeTypeFont]], xy: tuple[float, float],
               color: tuple[int, ...], max_width: float | None = None, anchor_center: bool = False, hscale: float = 1.0,
               tracking: float = 0.0, underline: bool = False) -> tuple[float, float, float, float]:
    """Draw pieces of text in their own fonts on one baseline (a label's bold Vietnamese and italic English part)
    at xy, the top of the band between the tallest font's ascent and descent, which is the box returned. The text
    is squeezed horizontally by hscale and further to fit max_width; tracking adds that many em after each
    character; underline rules it over its width."""
    ascent = max(f.getmetrics()[0] for _, f in runs)
    descent = max(f.getmetrics()[1] for _, f in runs)
    size = max(f.size for _, f in runs)
    pieces, advances, width = _run_advances(runs, tracking)
    top_pad = int(size * 0.4)
    mask = Image.new("L", (int(math.ceil(width)) + 8, ascent + descent + top_pad + 8), 0)
    draw = ImageDraw.Draw(mask)
    x = 0.0
    for (text, font), advance in zip(pieces, advances):
        draw.text((4 + x, 4 + top_pad + ascent - font.getmetrics()[0]), text, font=font, fill=255, anchor="la")
        x += advance
    if underline:
        y = 4 + top_pad + ascent + round(size * 0.12)
        draw.rectangle([4, y, 4 + width, y + max(1, round(size * 0.06)) - 1], fill=255)
    target = width * hscale
    if max_width is not None and target > max_width:
        target = max_width
    if target != width:
        mask = mask.resize((int(target) + 8, mask.height), Image.LANCZOS)
        width = target
    x, y = xy
    if anchor_center:
        x, y = x - width / 2, y - (ascent + descent) / 2
    if img.mode == "L":  # a grey image (render_text_line) takes its grey ink as it is
        layer = Image.new("L", mask.size, color[0])
    else:
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


def _qr(d: ImageDraw.ImageDraw, box, rng: np.random.Generator, modules: int = 29, quiet_zone: bool = True) -> None:
    """A QR-like square; without its quiet zone the light modules show the print behind (as on real chip cards)."""
    x0, y0, x1, y1 = box
    n = modules
    cell = (x1 - x0) / n
    if quiet_zone:
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


# Templates place text by the top of its ascent band and size it in px, set for DejaVu Sans (ascent 0.93 em,
# capitals 0.73 em): the measured rendering keeps the pre-printed text's baselines and capitals, whatever the face.
TEMPLATE_ASCENT = 0.93
TEMPLATE_CAP = 0.73
# A value the template sets beside a label starts at least this far (W) right of the label's end.
MIN_GAP = 0.005
VALUE_ROLES = {"id_number": "id", "full_name": "name", "date_of_expiry": "expiry"}  # else "value"


@lru_cache(maxsize=128)
def _cap_ratio(path: str) -> float:
    """A face's capital height per unit of font size (its H)."""
    return -_font(path, 200).getbbox("H", anchor="ls")[1] / 200


def _sized(family: Family, face: str, cap_px: float, cap_face: str = "regular") -> ImageFont.FreeTypeFont:
    """The face at the size whose capitals (those of cap_face, so a label's faces share one size) are cap_px tall."""
    return _font(str(face_path(family, face)), max(6, int(round(cap_px / _cap_ratio(str(face_path(family, cap_face)))))))


def _ink(ink: Ink, rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour between the ink's dark and light end, a little off the line between them."""
    t = rng.random()
    return tuple(int(np.clip(d + t * (l - d) + rng.normal(0, 4), 0, 255)) for d, l in zip(ink.dark, ink.light))


def _shift(extent: tuple[float, float], size: tuple[int, int], rng: np.random.Generator) -> tuple[float, float]:
    """A rigid offset, uniform within ± extent (fractions of W and H), in pixels."""
    return (float(rng.uniform(-1, 1) * extent[0] * size[0]), float(rng.uniform(-1, 1) * extent[1] * size[1]))


def _moved(box, offset: tuple[float, float]) -> tuple[float, float, float, float]:
    return (box[0] + offset[0], box[1] + offset[1], box[2] + offset[0], box[3] + offset[1])


def _print_background(size: tuple[int, int], spec: dict, shift: tuple[float, float], domain: RenderDomain,
                      rng: np.random.Generator) -> Image.Image:
    """The background print with its pattern at another phase and offset (drawn larger, cut at a random place,
    moved with the pre-printed layer) and its contrast against its own smooth tint scaled."""
    w, h = size
    m = int(round(domain.pattern_offset * w))
    big = _background((w + 2 * m, h + 2 * m), spec, rng)
    ox, oy = (int(np.clip(int(rng.integers(0, 2 * m + 1)) - round(s), 0, 2 * m)) for s in shift)
    img = big.crop((ox, oy, ox + w, oy + h))
    contrast = rng.uniform(*domain.pattern_contrast)
    a = np.asarray(img, np.float32)
    smooth = np.asarray(img.filter(ImageFilter.GaussianBlur(6)), np.float32)
    return Image.fromarray(np.clip(smooth + contrast * (a - smooth), 0, 255).astype(np.uint8))


def _white_balance(img: Image.Image, domain: RenderDomain, rng: np.random.Generator) -> Image.Image:
    """White moved by up to ± domain.white_balance per channel (an exposure and a cast), sometimes warm."""
    shift = (rng.uniform(-0.5, 0.5) + rng.uniform(-0.5, 0.5, 3)) * domain.white_balance
    if rng.random() < domain.warm_share:
        shift += np.array([1, 0.3, -1]) * rng.uniform(0.3, 1.0) * domain.white_balance
    gains = (255 + shift) / 255
    return Image.fromarray(np.clip(np.asarray(img, np.float32) * gains, 0, 255).astype(np.uint8))


def _static_roles(static_text: list[dict]) -> list[tuple[str, int]]:
    """Each pre-printed text's role: "title" (the largest centred), "header" (centred above it; with its index,
    top down), "subtitle" (centred below it), "label" (set from an origin)."""
    centred = [i for i, s in enumerate(static_text) if "center" in s]
    title = max(centred, key=lambda i: static_text[i]["size"]) if centred else -1
    roles = []
    for i, s in enumerate(static_text):
        if "center" not in s:
            roles.append(("label", 0))
        elif i == title:
            roles.append(("title", 0))
        else:
            roles.append(("header", centred.index(i)) if i < title else ("subtitle", 0))
    return roles


@dataclass(frozen=True)
class _Anchor:
    """A printed label as the personal data are placed against it: without the pre-printed layer's offset."""

    x0: float
    x1: float
    baseline: float
    top: float
    bottom: float
    cap: float  # its capitals' height, px
    size: float  # its font size, px

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass(frozen=True)
class _Spot:
    """Where a value line goes before its width is known: x is its x0, or its centre for the centred kinds (for
    "under", the offset from the line before); base is its baseline, or for "under" the drop below that line's."""

    kind: str
    x: float
    base: float
    anchor: _Anchor | None
    right: float  # where the line must end by: the template slot's end, or the card's right margin


def _clear_of_labels(x0: float, x1: float, base: float, cap_px: float, size: float, anchors: dict[str, _Anchor],
                     pre: tuple[float, float]) -> float:
    """A value line's baseline moved off the labels of other rows it spans (as drawn, moved by pre): its marks and
    descenders clear of a label below, its capitals' marks clear of a label's descenders above."""
    for a in anchors.values():
        lx0, lx1, lbase = a.x0 + pre[0], a.x1 + pre[0], a.baseline + pre[1]
        if lx1 <= x0 or lx0 >= x1 or abs(lbase - base) < 0.5 * cap_px:
            continue
        if lbase > base:  # a label below: its capitals' marks (0.3 cap) above, our descenders (0.2 em) below
            base = min(base, lbase - 1.3 * a.cap - 0.2 * size)
        else:  # a label above: its descenders below it, our capitals' marks above us
            base = max(base, lbase + 0.2 * a.size + 1.3 * cap_px)
    return base


def _break_value(value: str, rooms: list[float], width_of, rule: str | None, rng: np.random.Generator) -> list[str]:
    """A value's printed lines: a one-line field whole; an address broken as the card breaks it (rule, see
    CardLayout.address_breaks) with the comma at the break dropped, word-wrapped inside a part too long for its
    line; any other value greedily over the line rooms."""
    if len(rooms) == 1:
        return [value]
    if rule is None:
        words, lines = value.split(), []
        for room in rooms[:-1]:
            line: list[str] = []
            while words and width_of(" ".join(line + [words[0]])) <= room:
                line.append(words.pop(0))
            lines.append(" ".join(line))
        return [ln for ln in lines + [" ".join(words)] if ln]
    parts = value.split(", ")
    if len(parts) == 1 or (rule == "comma_if_long" and width_of(value) <= rooms[0]):
        return [value]
    k = {"first_part": 1, "comma": int(rng.integers(1, 3))}.get(rule, len(parts) - 1)
    k = max(1, min(k, len(parts) - 1))
    while k > 1 and width_of(", ".join(parts[:k])) > rooms[0]:
        k -= 1
    first, rest = ", ".join(parts[:k]), ", ".join(parts[k:])
    if width_of(first) > rooms[0]:
        words = first.split(" ")
        n = len(words)
        while n > 1 and width_of(" ".join(words[:n])) > rooms[0]:
            n -= 1
        first, rest = " ".join(words[:n]), ", ".join(p for p in (" ".join(words[n:]), rest) if p)
    return [first, rest]


class CardRenderer:
    def __init__(self, card_type: str = "cccd_chip_2021", domain: RenderDomain = TRAIN) -> None:
        self.card_type = card_type
        self.domain = domain
        self.template = load_template(card_type)
        self.card_fields = tuple(f["field"] for f in self.template["fields"])
        self.fonts = domain_families(domain)
        self.header_fonts = installed_families(domain.header_fonts)
        self.layout = domain.layouts[card_type] if domain.measured else None
        self.roles = _static_roles(self.template["static_text"])

    def render(self, identity: Identity, rng: np.random.Generator) -> RenderedCard:
        """Draw the card. The draws from rng happen in a fixed order, and only for elements the template
        has, so a template's output for a seed never changes when other templates gain new keys."""
        if self.layout is not None:
            return self._render_measured(identity, rng)
        t = self.template
        w, h = t["size"]
        family = self.fonts[int(rng.integers(len(self.fonts)))]
        regular, bold = face_path(family, "regular"), face_path(family, "bold")
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
        return self._finish(img, identity, lines, labels, (family.name,), rng)

    def _finish(self, img: Image.Image, identity: Identity, lines: list[TextLine], labels: list[TextLine],
                fonts: tuple[str, ...], rng: np.random.Generator) -> RenderedCard:
        """Sometimes a slight blur, then the card's rounded outline as its alpha."""
        w, h = img.size
        if rng.random() < 0.5:
            img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.7)))
        alpha = Image.new("L", (w, h), 0)
        ImageDraw.Draw(alpha).rounded_rectangle([0, 0, w - 1, h - 1], radius=int(h * 0.05), fill=255)
        rgba = np.dstack([np.asarray(img), np.asarray(alpha)])
        return RenderedCard(self.card_type, rgba, lines, identity, labels, self.card_fields, fonts, self.domain.name)

    def _render_measured(self, identity: Identity, rng: np.random.Generator) -> RenderedCard:
        """The card as the domain's layout measures real ones (fvi.synth.domain): a rigid offset of the pre-printed
        layer (background, emblem, headers, labels) and another of the personal data (photo, QR, values), the
        layout's cap heights, weights and inks, each value placed against its own label, white balance last."""
        t, dom, lay = self.template, self.domain, self.layout
        w, h = t["size"]
        family = self.fonts[int(rng.integers(len(self.fonts)))]
        headers = family
        if lay.serif_headers and self.header_fonts:
            headers = self.header_fonts[int(rng.integers(len(self.header_fonts)))]
        rare = rng.random() < dom.rare_offset_share
        pre = _shift(lay.preprint_offset_rare if rare else lay.preprint_offset, (w, h), rng)
        data = _shift(dom.data_offset, (w, h), rng)
        img = _print_background((w, h), t["background"], pre, dom, rng)
        d = ImageDraw.Draw(img)
        if "emblem" in t:
            (cx, cy), r = t["emblem"]["center"], t["emblem"]["radius"]
            _emblem(d, (cx + pre[0], cy + pre[1]), r, rng)
        if "qr" in t and lay.qr_modules[1]:
            _qr(d, _moved(t["qr"]["box"], data), rng, int(rng.integers(lay.qr_modules[0], lay.qr_modules[1] + 1)),
                quiet_zone=False)
        photo = _moved(t["photo"]["box"], data)
        _portrait(img, photo, rng)
        if lay.grey_photo:
            box = tuple(int(v) for v in photo)
            img.paste(img.crop(box).convert("L").convert("RGB"), box[:2])
        inks = {role: _ink(getattr(lay, f"{role}_ink"), rng) for role in ("header", "label", "title", "value", "id")}

        def cap(heights: tuple[float, float]) -> float:  # a cap height in pixels, ± the domain's jitter
            return rng.uniform(*heights) * rng.uniform(1 - dom.cap_jitter, 1 + dom.cap_jitter) * h

        labels, anchors = self._measured_static(img, family, headers, pre, inks, rng)
        lines = self._measured_values(img, identity, family, pre, data, inks, cap, anchors, rng)
        img = _white_balance(img, dom, rng)
        fonts = tuple(dict.fromkeys((family.name, headers.name)))
        return self._finish(img, identity, lines, labels, fonts, rng)

    def _static_runs(self, text: str, role: str, index: int, family: Family, headers: Family, cap_px: float
                     ) -> list[tuple[str, ImageFont.FreeTypeFont]]:
        """A pre-printed text's pieces and faces: bilingual labels bold Vietnamese / italic English, English headers
        and subtitles bold italic, the title bold; the 2016 card's labels regular and its serif headers bold, then
        regular."""
        lay = self.layout
        if role == "label":
            if not lay.bilingual_labels:
                return [(text, _sized(family, "regular", cap_px))]
            if LABEL_SEPARATOR in text:
                vn, en = text.split(LABEL_SEPARATOR, 1)
                return [(vn, _sized(family, "bold", cap_px)), (LABEL_SEPARATOR, _sized(family, "regular", cap_px)),
                        (en, _sized(family, "italic", cap_px))]
            return [(text, _sized(family, "italic" if text.isascii() else "bold", cap_px))]
        if role == "header" and lay.serif_headers:
            return [(text, _sized(headers, "bold" if index == 0 else "regular", cap_px))]
        italic = role == "subtitle" or (role == "header" and text.isascii())
        return [(text, _sized(family, "bold_italic" if italic else "bold", cap_px))]

    def _measured_static(self, img: Image.Image, family: Family, headers: Family, pre: tuple[float, float],
                         inks: dict, rng: np.random.Generator) -> tuple[list[TextLine], dict[str, _Anchor]]:
        """The pre-printed text at the template's capitals (its spacing was set for them) ± the cap jitter, moved by the
        layer's offset, each squeezed by its own horizontal scale; returns the boxes and every label's place before
        the offset (what the values are placed against)."""
        t, dom = self.template, self.domain
        labels, anchors = [], {}
        for s, (role, index) in zip(t["static_text"], self.roles):
            text = s["text"]
            cap_px = s["size"] * TEMPLATE_CAP * rng.uniform(1 - dom.cap_jitter, 1 + dom.cap_jitter)
            runs = self._static_runs(text, role, index, family, headers, cap_px)
            ink = inks["title" if role == "title" else "header" if role == "header" else "label"]
            hscale, underline = rng.uniform(*dom.preprint_hscale), text in UNDERLINED
            ascent = max(f.getmetrics()[0] for _, f in runs)
            if "center" in s:
                xy, centred = (s["center"][0] + pre[0], s["center"][1] + pre[1]), True
            else:
                xy = (s["origin"][0] + pre[0], s["origin"][1] + TEMPLATE_ASCENT * s["size"] - ascent + pre[1])
                centred = False
            box = _draw_runs(img, runs, xy, ink, s.get("max_width"), centred, hscale, underline=underline)
            labels.append(TextLine("", text, box))
            anchors[text] = _Anchor(box[0] - pre[0], box[2] - pre[0], box[1] + ascent - pre[1], box[1] - pre[1],
                                    box[3] - pre[1], cap_px, max(f.size for _, f in runs))
        return labels, anchors

    def _spot(self, p: Placement | None, slot: dict, size: float, cap_px: float, anchors: dict[str, _Anchor],
              rng: np.random.Generator) -> _Spot:
        w, h = self.template["size"]
        right = min(w * (1 - self.domain.right_margin), slot["origin"][0] + slot["max_width"])
        if p is None:  # the template's slot, clear of a label it sets on the same row
            x, base = slot["origin"][0], slot["origin"][1] + TEMPLATE_ASCENT * size
            row = [a.x1 for a in anchors.values() if a.x0 < x and a.top < base and a.bottom > base - cap_px]
            return _Spot("template", max([x] + [x1 + MIN_GAP * w for x1 in row]), base, None, right)
        if p.label not in anchors:
            raise KeyError(f"{self.card_type}: a placement names the label {p.label!r}, which its template does not print")
        a, dx, drop = anchors[p.label], rng.uniform(*p.dx) * w, rng.uniform(*p.drop) * h
        x = {"right": a.x1 + dx, "below": a.x0 + dx, "centred": a.centre + dx, "under": dx}[p.kind]
        return _Spot(p.kind, x, drop if p.kind == "under" else a.baseline + drop, a, right)

    def _room(self, spot: _Spot, cap_px: float) -> float:
        """How wide a line may run from where it starts to where it must end."""
        if spot.kind == "centred":
            on_row = spot.anchor.top < spot.base and spot.anchor.bottom > spot.base - cap_px
            return spot.right - (spot.anchor.x1 + MIN_GAP * self.template["size"][0] if on_row else spot.anchor.x0)
        return spot.right - (spot.anchor.x0 if spot.kind == "under" else spot.x)

    def _resolve(self, spot: _Spot, width: float, cap_px: float,
                 previous: tuple[tuple[float, float], float] | None) -> tuple[float, float]:
        """(x0, baseline) of a line of this width: a centred one kept right of its label on its row and clear of its
        end, one under another centred on it and not left of its label's column."""
        if spot.kind == "centred":
            x0 = min(spot.x - width / 2, spot.right - width)
            return max(x0, spot.right - self._room(spot, cap_px)), spot.base
        if spot.kind == "under":
            (x0, x1), base = previous
            x0 = min((x0 + x1) / 2 + spot.x - width / 2, spot.right - width)
            return max(x0, spot.anchor.x0), base + spot.base
        return spot.x, spot.base

    def _measured_values(self, img: Image.Image, identity: Identity, family: Family, pre: tuple[float, float],
                         data: tuple[float, float], inks: dict, cap, anchors: dict[str, _Anchor],
                         rng: np.random.Generator) -> list[TextLine]:
        """The personal data at the layout's cap heights and weights, each line placed against its label (or at
        the template's slot), then moved by the data layer's offset and its own jitter, and kept off the labels
        of the rows above and below it (the offsets of the two layers add up). Values keep their size and run
        longer, squeezed only where they would pass their slot's end or the right margin."""
        t, dom, lay = self.template, self.domain, self.layout
        w, h = t["size"]
        values = identity.fields()
        all_bold = rng.random() < lay.bold_values_share
        name_bold = all_bold or rng.random() < lay.bold_name_share
        caps = {role: cap(getattr(lay, role)) for role in ("id", "name", "value", "expiry")}
        tracking = rng.uniform(*lay.id_tracking)
        lines: list[TextLine] = []
        for f in t["fields"]:
            name, slots = f["field"], f["lines"]
            role = VALUE_ROLES.get(name, "value")
            bold = lay.id_bold if role == "id" else name_bold if role == "name" else all_bold
            font = _sized(family, "bold" if bold else "regular", caps[role])
            track = tracking if role == "id" else 0.0
            placements = lay.placements.get(name, ())
            spots = [self._spot(placements[i] if i < len(placements) else None, slot, f["size"], caps[role], anchors, rng)
                     for i, slot in enumerate(slots)]

            def width_of(text: str) -> float:
                return _run_advances([(text, font)], track)[2]

            texts = _break_value(values[name], [self._room(s, caps[role]) for s in spots], width_of,
                                 lay.address_breaks.get(name), rng)
            previous = None
            ascent, descent = font.getmetrics()
            for spot, text in zip(spots, texts):
                width = width_of(text)
                x0, base = self._resolve(spot, width, caps[role], previous)
                previous = (x0, x0 + width), base  # where the next line is centred under, before the offsets
                x0 = max(2.0, x0 + data[0] + rng.uniform(-1, 1) * dom.field_jitter * w)
                base = base + data[1] + rng.uniform(-1, 1) * dom.field_jitter * h
                base = min(_clear_of_labels(x0, x0 + width, base, caps[role], font.size, anchors, pre), h - 2 - descent)
                room = spot.right + data[0] - x0
                box = _draw_runs(img, [(text, font)], (x0, base - ascent), inks["id" if role == "id" else "value"],
                                 max_width=room, tracking=track)
                lines.append(TextLine(name, text, box))
        return lines


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
