"""Which read line is which field: by the labels read beside them, and where the card is, from the same labels.

Every line of the front is read, labels included (fvi.labels finds them in the readings). A value is then what
follows its label on the same line, the line right of it on the same row, or the lines under it, in two
dimensions: on the chip card the expiry sits beside the second residence line, so a value's lines below must
start under its label, not anywhere. The ID number and dates are also recognised by their shape, so a label
read too poorly to be found costs no digits. The card's corners come from the labels too: a homography from
where they were read to where the card type prints them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from fvi import labels
from fvi.labels import HEADER, Found
from fvi.schema import CARD_FIELDS, CARD_TYPES, FIELDS, FRONT_LINES


@dataclass(frozen=True)
class LinkParams:
    """Geometry of a value against its label, in heights of the label's line (they hold on every front measured in
    ../shared/notes/real-card-layouts.md: a value is on its label's row or within a line and a half under it)."""

    same_row: float = 0.6  # centres this close (vertically) are one row
    below_gap: float = 1.6  # a value's first line under its label starts at most this far under the label's line
    next_gap: float = 1.0  # a wrapped line starts at most this far under the line before it
    left_slack: float = 1.5  # a line under a label starts at most this far left of the label
    right_slack: float = 14.0  # ... and at most this far right of it (2016 fronts centre their values)
    min_anchors: int = 2  # labels or headers found for a card to be placed by them
    extent_margin: float = 0.1  # a card placed by its text alone: the text's extent grown by this much of its size
    sure_anchors: int = 6  # labels or headers found for the card to be placed with confidence 1
    homography_from: int = 5  # anchors from which a full homography is fit (fewer: similarity)
    homography_agree: float = 0.2  # ... and taken when no corner moves further than this (of the diagonal) from the similarity's
    ransac_tolerance: float = 0.03  # an anchor this far (of the card's width) from the fit is an outlier


LINK = LinkParams()


@dataclass
class ReadLine:
    """A line as read: its corners in reading order (photo pixels), the reading and its confidence."""

    quad: np.ndarray
    text: str
    confidence: float
    found: list[Found] = field(default_factory=list)
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # x0, y0, x1, y1 in the page frame

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def x_at(self, char: int) -> float:
        """The page-frame x of a character (characters taken as equally wide)."""
        return float(self.box[0] + (self.box[2] - self.box[0]) * char / max(1, len(self.text)))


@dataclass(frozen=True)
class Part:
    """Characters [start, end) of line `line`: a value, or part of one."""

    line: int
    start: int
    end: int


@dataclass
class Linked:
    card_type: str
    type_confidence: float
    parts: dict[str, list[Part]]  # field → its parts in reading order (empty: not found)
    anchors: list[tuple[np.ndarray, np.ndarray]]  # (photo point, template point) of every label found
    label_count: int


def clean(part: str) -> str:
    """A value's text without the punctuation that separates it from its label (": ", "/ ")."""
    return part.strip(" :;/.,|-_").strip() if part.strip(" :;/|-_") else ""


def value_in(text: str, line: ReadLine, part: Part) -> str | None:
    """The same value in another reading of its line: the piece after the same label (or before every label,
    for a part that starts its line), None when that reading does not show the label."""
    label = next((m for m in line.found if m.end == part.start), None)
    found = labels.find_labels(text)
    if label is None:
        return clean(text[: found[0].start] if found else text) if part.start == 0 else None
    for i, m in enumerate(found):
        if m.label == label.label:
            return clean(text[m.end : found[i + 1].start if i + 1 < len(found) else len(text)])
    return None


def page_rotation(lines: list[ReadLine]) -> np.ndarray:
    """2 x 2 rotation page frame → photo: the page frame's +x is the lines' mean reading direction."""
    u = np.mean([(l.quad[1] - l.quad[0] + l.quad[2] - l.quad[3]) for l in lines], axis=0)
    t = float(np.arctan2(u[1], u[0]))
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def page_frame(lines: list[ReadLine]) -> None:
    """Each line's box in the page frame: rotated so text runs along +x (the mean reading direction)."""
    if not lines:
        return
    r = page_rotation(lines)
    for l in lines:
        p = l.quad @ r  # photo → page frame (r is orthonormal)
        l.box = np.array([*p.min(axis=0), *p.max(axis=0)], np.float32)


_DIGITS = re.compile(r"\d")
_DATE = re.compile(r"\d{1,2}\s*[/\-.]\s*\d{1,2}\s*[/\-.]\s*\d{4}|\d{8}")
_ID = re.compile(r"\d[\d ]{7,14}\d")
_SEPARATED_DATE = re.compile(r"\d{1,2}\s*[/\-.]\s*\d{1,2}\s*[/\-.]\s*\d{4}")


def link(lines: list[ReadLine], params: LinkParams = LINK) -> Linked:
    """Find the labels, decide the card type, then each field's parts."""
    page_frame(lines)
    for l in lines:
        l.found = labels.find_labels(l.text)
    found = [m for l in lines for m in l.found]
    votes = labels.card_type_votes(found)
    card_type = max(CARD_TYPES, key=lambda t: votes[t])
    total = sum(votes.values())
    type_conf = votes[card_type] / total if total else 0.0
    for l in lines:  # a label another front prints is, on this one, part of a value ("Số:" in "Số 5 Đường...")
        l.found = [m for m in l.found if card_type in m.label.card_types]
    parts = _fields(lines, card_type, params)
    return Linked(card_type, type_conf, parts, _anchors(lines, card_type), len(found))


def _segments(l: ReadLine) -> list[tuple[Found | None, int, int]]:
    """A line cut at its labels: (label or None for text before the first, start, end) of each piece's value."""
    cuts = [(None, 0)] + [(m, m.end) for m in l.found]
    out = []
    for i, (m, start) in enumerate(cuts):
        end = l.found[i].start if i < len(l.found) else len(l.text)
        out.append((m, start, end))
    return out


def _fields(lines: list[ReadLine], card_type: str, params: LinkParams) -> dict[str, list[Part]]:
    # free text: pieces that are no label, with what label (if any) precedes them on their line
    free: list[tuple[Part, Found | None]] = []
    for i, l in enumerate(lines):
        for m, start, end in _segments(l):
            if clean(l.text[start:end]) and (m is None or m.label.field != HEADER):
                free.append((Part(i, start, end), m))
    used: set[Part] = set()
    out: dict[str, list[Part]] = {name: [] for name in FIELDS}
    on_front = CARD_FIELDS[card_type]
    # every label found of each field, heaviest first: a field printed with two labels (the chip card's "Có giá trị
    # đến:" over "Date of expiry") has its value beside either
    label_of: dict[str, list[tuple[int, Found]]] = {}
    for i, l in enumerate(lines):
        for m in l.found:
            if m.label.field != HEADER and card_type in m.label.card_types:
                label_of.setdefault(m.label.field, []).append((i, m))
    for found in label_of.values():
        found.sort(key=lambda im: -im[1].weight)

    def text(p: Part) -> str:
        return clean(lines[p.line].text[p.start : p.end])

    def after_label(name: str) -> list[Part]:
        """The free pieces this field's labels introduce: on a label's line, right of it on its row, then under it."""
        return [p for i, m in label_of.get(name, []) for p in _introduced(lines, i, m, free, params)]

    def take(name: str, ok, span=None) -> None:
        """The first piece the field's labels introduce that `ok` accepts; span(raw) → (start, end) keeps only
        that much of it (a date, an ID number) and frees the rest: on the chip card the expiry and the second
        residence line are one detected line."""
        for p in after_label(name):
            if p not in used and ok(text(p)):
                claim(name, p, span)
                return

    def claim(name: str, p: Part, span=None) -> None:
        used.add(p)
        if span is not None and (found := span(lines[p.line].text[p.start : p.end])) is not None:
            a, b = found
            rest = Part(p.line, p.start + b, p.end)
            p = Part(p.line, p.start + a, p.start + b)
            if len(clean(text(rest))) >= 2:
                free.append((rest, None))
        out[name] = [p]
        used.add(p)

    def is_date(t: str) -> bool:
        return len(_DIGITS.findall(t)) >= 6 and bool(_DATE.search(t.replace(" ", "")) or len(_DIGITS.findall(t)) >= 8)

    def is_expiry(t: str) -> bool:
        return is_date(t) or labels.base_text(t).replace(" ", "").startswith(("khong", "khongthoi"))

    def pattern_span(pattern: re.Pattern):
        def span(raw: str) -> tuple[int, int] | None:
            m = pattern.search(raw)
            return (m.start(), m.end()) if m else None
        return span

    # the ID: by its label where found, else the longest run of digits that is no date
    def is_id(t: str) -> bool:  # a run of 9 or more digits in a piece that holds no date
        m = _ID.search(t)
        return m is not None and len(_DIGITS.findall(m.group())) >= 9 and not _SEPARATED_DATE.search(t)

    take("id_number", is_id, pattern_span(_ID))
    if not out["id_number"]:
        ids = [p for p, _ in free if p not in used and is_id(text(p))]
        if ids:
            claim("id_number", max(ids, key=lambda p: len(_DIGITS.findall(text(p)))), pattern_span(_ID))
    take("date_of_birth", is_date, pattern_span(_DATE))
    if "date_of_expiry" in on_front:
        take("date_of_expiry", is_expiry, pattern_span(_DATE))
    take("sex", lambda t: 1 <= len(t) <= 6 and not _DIGITS.search(t))
    take("nationality", lambda t: not _DIGITS.search(t))
    take("full_name", lambda t: not _DIGITS.search(t) and len(t) >= 3)
    _by_shape(out, free, used, text, claim, on_front, pattern_span(_DATE))
    for name in ("place_of_origin", "place_of_residence"):
        if name not in on_front:
            continue
        take(name, lambda t: len(t) >= 2)
        limit = FRONT_LINES[card_type][name]
        while out[name] and len(out[name]) < limit:
            nxt = _next_line(lines, out[name][-1], label_of[name][0], free, used, params)
            if nxt is None:
                break
            out[name].append(nxt)
            used.add(nxt)
    for name in FIELDS:
        if name not in on_front:
            out[name] = []
    return out


def _by_shape(out: dict[str, list[Part]], free, used: set[Part], text, claim, on_front, date_span) -> None:
    """Fields whose label was not read, from what every front's values look like: of the dates left, the earliest
    is the birth and the latest, 14 or more years on, the expiry (a card expires after its holder's birth;
    "Không thời hạn" is an expiry too); a piece that reads Nam or Nữ is the sex; Việt Nam the nationality."""
    def year(p: Part) -> int | None:
        d = _DATE.search(text(p).replace(" ", ""))
        return int(d.group()[-4:]) if d else None

    left = [p for p, _ in free if p not in used]
    dates = sorted((p for p in left if year(p) is not None), key=year)
    if not out["date_of_birth"] and dates:
        claim("date_of_birth", dates.pop(0), date_span)
    if "date_of_expiry" in on_front and not out["date_of_expiry"]:
        never = next((p for p in left if p not in used
                      and labels.base_text(text(p)).replace(" ", "").startswith("khongthoi")), None)
        born = year(out["date_of_birth"][0]) if out["date_of_birth"] else None
        later = [p for p in dates if p not in used and (born is None or year(p) >= born + 14)]
        if never is not None:
            claim("date_of_expiry", never)
        elif later:
            claim("date_of_expiry", later[-1], date_span)
    for name, base in (("sex", ("nam", "nu")), ("nationality", ("viet nam",))):
        if not out[name]:
            p = next((p for p in left if p not in used and " ".join(labels.base_text(text(p)).split()) in base), None)
            if p is not None:
                claim(name, p)


def _introduced(lines: list[ReadLine], i: int, m: Found, free: list[tuple[Part, Found | None]],
                params: LinkParams) -> list[Part]:
    """The free pieces label m (on line i) introduces: after it on its line, the first right of it on its row,
    then the first under it (where each piece starts, not its line: a piece may follow a label or a value)."""
    lab = lines[i]
    h = max(lab.height, 1.0)
    cy = (lab.box[1] + lab.box[3]) / 2
    x_end, x_start = lab.x_at(m.end), lab.x_at(m.start)
    inline = [p for p, pm in free if p.line == i and pm is m]
    row = [p for p, pm in free if p.line != i and pm is None and abs(_cy(lines[p.line]) - cy) < params.same_row * h
           and _x0(lines, p) >= x_end - 0.5 * h]
    row.sort(key=lambda p: _x0(lines, p))
    under = [p for p, pm in free if p.line != i and pm is None and 0 < lines[p.line].box[1] - lab.box[1]
             and lines[p.line].box[1] - lab.box[3] < params.below_gap * h
             and x_start - params.left_slack * h <= _x0(lines, p) <= x_start + params.right_slack * h]
    under.sort(key=lambda p: lines[p.line].box[1])
    return inline + row[:1] + under[:1]


def _x0(lines: list[ReadLine], p: Part) -> float:
    """Where a piece starts along its line, in the page frame."""
    return lines[p.line].x_at(p.start)


def _cy(l: ReadLine) -> float:
    return float(l.box[1] + l.box[3]) / 2


def _next_line(lines: list[ReadLine], last: Part, label: tuple[int, Found], free, used, params: LinkParams) -> Part | None:
    """The line a wrapped address continues on: just under the last one, starting under its label or right of it."""
    prev = lines[last.line]
    lab = lines[label[0]]
    h = max(prev.height, lab.height, 1.0)
    x_start = lab.x_at(label[1].start)
    cands = [p for p, pm in free if p not in used and pm is None and p.line != last.line
             and 0 < lines[p.line].box[1] - prev.box[1] and lines[p.line].box[1] - prev.box[3] < params.next_gap * h
             and _x0(lines, p) >= x_start - params.left_slack * h]
    return min(cands, key=lambda p: lines[p.line].box[1]) if cands else None


def _anchors(lines: list[ReadLine], card_type: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo point, template point) for every printed word found that the card type's template prints: the left
    end of its middle line, or its centre for a centred header."""
    where = labels.template_anchors(card_type)
    seen: dict[str, tuple[float, tuple[np.ndarray, np.ndarray]]] = {}
    for l in lines:
        for m in l.found:
            a = where.get(m.label.text)
            if a is None:
                continue
            f0, f1 = m.start / max(1, len(l.text)), m.end / max(1, len(l.text))
            top = l.quad[0] + (l.quad[1] - l.quad[0]) * (f1 + f0) / 2 if a.centred else l.quad[0] + (l.quad[1] - l.quad[0]) * f0
            bottom = l.quad[3] + (l.quad[2] - l.quad[3]) * (f1 + f0) / 2 if a.centred else l.quad[3] + (l.quad[2] - l.quad[3]) * f0
            pair = ((top + bottom) / 2, np.array(a.point, np.float32))
            if m.label.text not in seen or m.weight > seen[m.label.text][0]:
                seen[m.label.text] = (m.weight, pair)
    return [p for _, p in seen.values()]


def card_corners(anchors: list[tuple[np.ndarray, np.ndarray]], card_type: str,
                 params: LinkParams = LINK) -> np.ndarray | None:
    """The card's corners TL, TR, BR, BL (photo pixels) from where its labels were read, or None when too few
    were found to place it."""
    if len(anchors) < params.min_anchors:
        return None
    src = np.array([t for _, t in anchors], np.float32)
    dst = np.array([p for p, _ in anchors], np.float32)
    w, h = labels.template_size(card_type)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    scale = float(np.linalg.norm(dst.max(axis=0) - dst.min(axis=0)) / max(1.0, np.linalg.norm(src.max(axis=0) - src.min(axis=0))))
    tol = params.ransac_tolerance * w * scale
    a, _ = cv2.estimateAffinePartial2D(src, dst, ransacReprojThreshold=tol)
    if a is None:
        return None
    m = np.vstack([a, [0, 0, 1]])
    out = cv2.perspectiveTransform(corners[None], m)[0]
    if len(anchors) >= params.homography_from:
        # the labels of a front sit in few columns, so a homography from them can fold the card; one that moves
        # a corner further than homography_agree of the card's diagonal from the similarity's is such a fold
        hm, _ = cv2.findHomography(src, dst, cv2.RANSAC, ransacReprojThreshold=tol)
        if hm is not None:
            bent = cv2.perspectiveTransform(corners[None], hm)[0]
            diag = float(np.linalg.norm(out[2] - out[0]))
            if np.all(np.isfinite(bent)) and np.linalg.norm(bent - out, axis=1).max() <= params.homography_agree * diag:
                out = bent
    return out if np.all(np.isfinite(out)) and cv2.isContourConvex(out.astype(np.float32)) else None


def text_extent_corners(lines: list[ReadLine], linked: Linked, params: LinkParams = LINK) -> np.ndarray | None:
    """Corners TL, TR, BR, BL (photo pixels) of a card its labels cannot place but whose values say it is one: an
    ID number and a date of birth linked (every front prints both). The extent of the lines that hold a field or a
    label, in the page frame, grown by extent_margin: where the card is, not where its edges are."""
    if not (linked.parts["id_number"] and linked.parts["date_of_birth"]):
        return None  # (a date of birth is linked by its label or, without one, as the earliest date read)
    used = {p.line for parts in linked.parts.values() for p in parts} | {i for i, l in enumerate(lines) if l.found}
    if not used:
        return None
    r = page_rotation(lines)
    pts = np.concatenate([lines[i].quad for i in used]) @ r  # photo → page frame
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    grow = params.extent_margin * (hi - lo)
    lo, hi = lo - grow, hi + grow
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    return (box @ r.T).astype(np.float32)
