"""Field schema and the structured result every entry point (ensemble, reference, gateway) returns."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

# Detector class index i  <->  FIELDS[i]. Order is part of the exported detector's contract.
FIELDS: tuple[str, ...] = (
    "id_number",
    "full_name",
    "date_of_birth",
    "sex",
    "nationality",
    "place_of_origin",
    "place_of_residence",
    "date_of_expiry",
)
FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}

# Card types (front side), one layout template each in fvi/templates/<card type>.json. The order is the
# exported detector's `card_type` output order (fvi.assemble.card_type_of).
CARD_TYPES: tuple[str, ...] = ("cccd_chip_2021", "cccd_2016", "can_cuoc_2024")
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=None)
def load_template(card_type: str) -> dict:
    """fvi/templates/<card type>.json, read once per process: the schema and the card renderer share it."""
    return json.loads((TEMPLATE_DIR / f"{card_type}.json").read_text(encoding="utf-8"))


def _front_layout(card_type: str) -> dict[str, int]:
    """The fields a card type prints on its front, as its template lays them out -> how many lines each takes."""
    template = load_template(card_type)
    lines = {f["field"]: len(f["lines"]) for f in template["fields"]}
    unknown = set(lines) - set(FIELDS)
    if unknown or template["card_type"] != card_type:
        raise ValueError(f"template {card_type}.json: card_type {template['card_type']!r}, unknown fields {sorted(unknown)}")
    return lines


# card type -> field -> the lines its front prints the field on, at most (an address wraps to the second or not)
FRONT_LINES: dict[str, dict[str, int]] = {t: _front_layout(t) for t in CARD_TYPES}
# card type -> the fields on its front, in FIELDS order (the 2024 card prints origin, residence and expiry on
# its back). A field a card does not carry has ground truth "" and is listed in the ground truth's "absent_fields".
CARD_FIELDS: dict[str, tuple[str, ...]] = {t: tuple(f for f in FIELDS if f in FRONT_LINES[t]) for t in CARD_TYPES}
# The fields every card prints on one line (the ID, name, dates, sex, nationality; an address may wrap)
SINGLE_LINE_FIELDS: frozenset[str] = frozenset(f for f in FIELDS if all(lay.get(f, 1) == 1 for lay in FRONT_LINES.values()))

# Corner classes of the cropper, in the card's own orientation.
CORNERS: tuple[str, ...] = ("top_left", "top_right", "bottom_right", "bottom_left")

# LINE_META rows (an ensemble output): a text line's corners in reading order TL, TR, BR, BL (x, y in the photo's
# own pixels), its detector score. A row of zeros with score -1 is padding (no line found).
LINE_META_COLUMNS = 9

STATUS_OK = "ok"
STATUS_NO_CARD = "no_card"
# A step's error when its call to a network fails, e.g. while the server restarts: line_crops' to the detector
# (the second look at a small card), cropper's to the reader (a page read again turned over). Transient, so the
# gateway answers 503 and the client retries.
ERROR_DETECTOR_UNAVAILABLE = "detector_unavailable"
ERROR_READER_UNAVAILABLE = "reader_unavailable"
STEP_UNAVAILABLE_ERRORS: tuple[str, ...] = (ERROR_DETECTOR_UNAVAILABLE, ERROR_READER_UNAVAILABLE)


@dataclass
class FieldResult:
    value: str
    confidence: float
    lines: list[str] = field(default_factory=list)


@dataclass
class Warning:
    """A finding the caller should see: a validation rule a value breaks, or a capture problem."""

    code: str
    fields: list[str]  # the fields it concerns; empty for the whole capture
    message: str


@dataclass
class OcrResult:
    status: str
    card_type: str | None
    card_confidence: float
    corners: list[list[float]]  # TL, TR, BR, BL in input-image pixels
    fields: dict[str, FieldResult]
    line_count: int = 0
    warnings: list[Warning] = field(default_factory=list)
    card_type_confidence: float = 0.0  # the detector's probability of card_type
    # what the reader read on every line the detector found (LINE_META rows of a field, in row order), whether or
    # not a field took it: for annotation and the evaluation's reader figures; the gateway never returns it
    line_texts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @staticmethod
    def from_json(text: str | bytes) -> "OcrResult":
        d = json.loads(text)
        d["fields"] = {k: FieldResult(**v) for k, v in d["fields"].items()}
        d["warnings"] = [Warning(**w) for w in d.get("warnings", [])]
        return OcrResult(**d)
