"""The printed words of a card front — field labels, headers, titles — and finding them in what the reader read.

Every front prints its labels ("Họ và tên / Full name:", "Quê quán:", ...) in words that do not change from
card to card, so they say which line is which field wherever a layout puts it, and which card type it is.
They are matched on base letters (no tone marks, lower case: the marks are what a reader misses most) and
fuzzily, inside a line, since a detected line may hold a label and its value, or two labels.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from fvi.schema import CARD_TYPES, load_template

CHIP, OLD, NEW = CARD_TYPES  # cccd_chip_2021, cccd_2016, can_cuoc_2024
HEADER = ""  # the "field" of a printed word that is no field's label (headers, titles)


@dataclass(frozen=True)
class Label:
    field: str  # the field it introduces, HEADER for the other printed words
    text: str  # as printed
    card_types: frozenset[str]  # the fronts that print it


def _label(field: str, text: str, *types: str) -> Label:
    return Label(field, text, frozenset(types))


# As the three fronts print them (../shared/notes/real-card-layouts.md, measured on real cards; the templates
# print the same words). A bilingual label is listed whole: matched whole it outweighs its Vietnamese part alone,
# which is how a 2021 chip card and a 2016 card tell apart.
LABELS: tuple[Label, ...] = (
    _label(HEADER, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", CHIP, OLD, NEW),
    _label(HEADER, "Độc lập - Tự do - Hạnh phúc", CHIP, OLD, NEW),
    _label(HEADER, "SOCIALIST REPUBLIC OF VIET NAM", CHIP, NEW),
    _label(HEADER, "Independence - Freedom - Happiness", CHIP, NEW),
    _label(HEADER, "CĂN CƯỚC CÔNG DÂN", CHIP, OLD),
    _label(HEADER, "Citizen Identity Card", CHIP),
    _label(HEADER, "CĂN CƯỚC", NEW),
    _label(HEADER, "IDENTITY CARD", NEW),
    _label("id_number", "Số / No.:", CHIP),
    _label("id_number", "Số:", OLD),
    _label("id_number", "Số định danh cá nhân / Personal identification number:", NEW),
    _label("full_name", "Họ và tên / Full name:", CHIP),
    _label("full_name", "Họ và tên:", OLD),
    _label("full_name", "Họ, chữ đệm và tên khai sinh / Full name:", NEW),
    _label("date_of_birth", "Ngày sinh / Date of birth:", CHIP),
    _label("date_of_birth", "Ngày, tháng, năm sinh:", OLD),
    _label("date_of_birth", "Ngày, tháng, năm sinh / Date of birth:", NEW),
    _label("sex", "Giới tính / Sex:", CHIP, NEW),
    _label("sex", "Giới tính:", OLD),
    _label("nationality", "Quốc tịch / Nationality:", CHIP, NEW),
    _label("nationality", "Quốc tịch:", OLD),
    _label("place_of_origin", "Quê quán / Place of origin:", CHIP),
    _label("place_of_origin", "Quê quán:", OLD),
    _label("place_of_residence", "Nơi thường trú / Place of residence:", CHIP),
    _label("place_of_residence", "Nơi thường trú:", OLD),
    _label("date_of_expiry", "Có giá trị đến:", CHIP, OLD),
    _label("date_of_expiry", "Date of expiry", CHIP),
)


@dataclass(frozen=True)
class MatchParams:
    """How near a reading must come to a label's letters to count as it (rapidfuzz scores, 0-100)."""

    min_score: float = 72.0
    min_score_short: float = 90.0  # labels of at most SHORT letters ("Số:", "Giới tính:") are easy to meet by chance
    short: int = 4
    # a label of at most this many letters found inside a line (not at its start) must be followed by its colon:
    # "Quê quán:" is also nearly "Châu, Quận" in an address, but no address prints a colon after it
    colon_within_line: int = 10
    min_letters: int = 2


MATCH = MatchParams()


def base_char(c: str) -> str:
    """One character → its base letter, lower case (ộ → o, Đ → d); digits stay; anything else is a space.
    One character for one, so a match's span in the base text is its span in the reading."""
    if c in "đĐ":
        return "d"
    b = unicodedata.normalize("NFD", c)[0].lower()
    return b if b.isascii() and b.isalnum() else " "


def base_text(text: str) -> str:
    return "".join(base_char(c) for c in text)


@lru_cache(maxsize=None)
def _label_base(text: str) -> str:
    return " ".join(base_text(text).split())


@dataclass(frozen=True)
class Found:
    """A label found in a reading: characters [start, end) of the reading are it; `letters` of them matched."""

    label: Label
    start: int
    end: int
    score: float
    letters: int

    @property
    def weight(self) -> float:
        """How much of the reading the label explains, and how well: a longer label read only in part must not
        outweigh a shorter one read whole ("Họ, chữ đệm và tên khai sinh / Full name:" in "Họ và tên / Full name:")."""
        return self.score * self.letters


def _collapsed(text: str) -> tuple[str, list[int]]:
    """The reading's base text with runs of spaces as one (as the labels' are), and each character's index in the
    reading: "Số / No." has three spaces where the label's base has one."""
    out, where = [], []
    for i, c in enumerate(base_text(text)):
        if c == " " and (not out or out[-1] == " "):
            continue
        out.append(c)
        where.append(i)
    return "".join(out), where


def _match(label: Label, text: str, base: str, where: list[int]) -> Found | None:
    needle = _label_base(label.text)
    letters = len(needle.replace(" ", ""))
    if len(needle) <= len(base):
        a = fuzz.partial_ratio_alignment(needle, base)
        score, start, end = a.score, a.dest_start, a.dest_end
    else:  # the reading is shorter than the label: all of the label must be there
        score, start, end = fuzz.ratio(needle, base.strip()), 0, len(base)
    short = letters <= MATCH.short
    if score < (MATCH.min_score_short if short else MATCH.min_score) or end <= start:
        return None
    if short and not _whole_words(base, start, end):
        return None
    tail = needle.split()[-1]  # a window as long as the label runs on into the value when a letter was not read
    lo = max(start, end - len(tail) - 3)
    again = fuzz.partial_ratio_alignment(tail, base[lo:end]) if len(tail) > 2 else None
    if again is not None and again.score >= 60 and lo + again.dest_end > start:
        end = lo + again.dest_end
    first, last = where[start], where[end - 1] + 1
    # a misread last word ("Nationatrty") ends where the word does; a value read on without its space begins with a
    # capital or a digit ("residenceSố 7")
    while last < len(text) and text[last].isalpha() and text[last].islower():
        last += 1
    needs_colon = short or (letters <= MATCH.colon_within_line and text[:first].strip() != "")
    if needs_colon and label.text.endswith(":") and ":" not in text[last : last + 3]:
        return None  # "Số" starts many a street address; the label is "Số:" with its colon
    return Found(label, first, last, float(score), len(base[start:end].replace(" ", "")))


def _whole_words(base: str, start: int, end: int) -> bool:
    """A short label must stand as words of its own ("so" inside "hoso" is not Số)."""
    return (start == 0 or base[start - 1] == " ") and (end >= len(base) or base[end] == " ")


def find_labels(text: str) -> list[Found]:
    """The printed words in one reading, left to right, none overlapping (the heavier match wins). A match ends on
    its last letter: the punctuation after it (": ") is left to the value, which strips it."""
    base, where = _collapsed(text)
    if sum(c.isalpha() for c in base) < MATCH.min_letters:
        return []
    found = [m for label in LABELS if (m := _match(label, text, base, where)) is not None]
    kept: list[Found] = []
    for m in sorted(found, key=lambda m: -m.weight):
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


def card_type_votes(found: list[Found]) -> dict[str, float]:
    """Each label found votes for the fronts that print it, by its weight; the types in CARD_TYPES order."""
    votes = {t: 0.0 for t in CARD_TYPES}
    for m in found:
        for t in m.label.card_types:
            votes[t] += m.weight
    return votes


@dataclass(frozen=True)
class Anchor:
    """Where a card type's template prints a label: the left end of its text's middle line ('origin' labels) or
    its centre ('center' headers), in template pixels, and the template's size."""

    point: tuple[float, float]
    centred: bool


@lru_cache(maxsize=None)
def template_anchors(card_type: str) -> dict[str, Anchor]:
    """Printed text (as written) → its anchor on the card type's template (fvi/templates): what the card's corners
    are placed from (fvi.linker.card_corners)."""
    out = {}
    for s in load_template(card_type)["static_text"]:
        if "center" in s:
            out[s["text"]] = Anchor((float(s["center"][0]), float(s["center"][1])), True)
        else:  # the text's box starts at origin and is about 1.17 sizes high (ascent + descent)
            out[s["text"]] = Anchor((float(s["origin"][0]), float(s["origin"][1]) + 0.58 * s["size"]), False)
    return out


def template_size(card_type: str) -> tuple[float, float]:
    w, h = load_template(card_type)["size"]
    return float(w), float(h)
