"""Render domains: which fonts, layout, inks and values a synthetic card is drawn with.

TRAIN is the renderer every training set so far was made with: the templates as drawn (fvi/templates), five font
families, the same jitter. Its draws are unchanged, so its cards are byte-identical to earlier sets for a seed.

HELD_OUT is a domain no training data used, for evaluation: held-out font families (fvi.synth.fonts), values from
other sources (fvi.synth.identity.HeldOutIdentityFactory), and the typography, placement and inks of real cards as
the layout notes (shared/notes/real-card-layouts.md) measure them, randomised over the measured ranges: a rigid
offset of the pre-printed layer and of the personal data, each value placed against its own label, cap heights,
weights, ink colours, white balance, background phase and contrast. Positions stay relative to the template's own
labels (a value's gap and baseline drop from its label), so every card type works; a field a layout gives no
placement keeps the template's slot, jittered.

Fractions are of the card: x of its width W, y of its height H.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from fvi.synth.fonts import CATALOGUE, HELD_OUT_FAMILIES

Range = tuple[float, float]


@dataclass(frozen=True)
class Ink:
    """A printed colour as photos show it: a card's ink lies between the dark and the light end."""

    dark: tuple[int, int, int]
    light: tuple[int, int, int]


@dataclass(frozen=True)
class Placement:
    """Where one line of a value sits against its label on real cards.

    kind "right": x0 = label x1 + dx (same row); "below": x0 = label x0 + dx; "centred": the line's centre =
    label centre + dx; "under": centred on the line before it + dx, its baseline `drop` below that line's.
    drop: value baseline − label baseline (+ = lower)."""

    kind: str
    label: str  # the template's static text the value belongs to
    dx: Range
    drop: Range


@dataclass(frozen=True)
class CardLayout:
    """One card type as measured (notes §1-3, §5): the values' cap heights as fractions of H, their placements,
    the weights and inks. (The pre-printed text keeps the template's sizes: its spacing was set for them, and they
    are within a few percent of the measured ones.)"""

    id: Range
    name: Range
    value: Range
    expiry: Range
    placements: Mapping[str, tuple[Placement, ...]]  # field -> one per printed line; absent: the template's slot
    # how an address with two lines breaks: "first_part" (line 1 holds the first part only), "comma" (at a comma,
    # one or two parts on line 1), "comma_if_long" (one line when it fits, else at a comma)
    address_breaks: Mapping[str, str]
    preprint_offset: Range  # the usual rigid shift of the pre-printed layer, ± (W, H)
    preprint_offset_rare: Range  # the occasional larger one
    header_ink: Ink
    label_ink: Ink
    title_ink: Ink
    value_ink: Ink
    id_ink: Ink
    bilingual_labels: bool = True  # Vietnamese part bold, English part italic (else labels regular)
    serif_headers: bool = False  # headers in a Times-like serif (the 2016 card)
    id_bold: bool = True
    id_tracking: Range = (0.0, 0.0)  # extra advance per character, in em
    bold_values_share: float = 0.0  # cards whose values are all bold
    bold_name_share: float = 0.0  # cards whose name is bold (when the values are not)
    qr_modules: tuple[int, int] = (0, 0)  # the QR code's modules per side, drawn in this range; (0, 0): none
    grey_photo: bool = False


@dataclass(frozen=True)
class RenderDomain:
    """How cards are drawn. The defaults are TRAIN: the templates as drawn, the fonts and jitter of every training
    set so far; `layouts` switches on the measured rendering and every tunable after it."""

    name: str = "train"
    fonts: tuple[str, ...] = ("DejaVu Sans", "Noto Sans", "Liberation Sans", "FreeSans", "Roboto")  # one per card
    identities: str = "name_lists"  # or "held_out": fvi.synth.identity.HeldOutIdentityFactory
    layouts: Mapping[str, CardLayout] | None = None  # card type -> its measured layout; None: the template as drawn
    header_fonts: tuple[str, ...] = ()  # the serif a layout's serif headers are set in, one per card
    rare_offset_share: float = 0.0  # cards whose pre-printed layer sits the rare larger offset off
    data_offset: Range = (0.0, 0.0)  # rigid shift of the personal data (values, photo, QR), ± (W, H)
    field_jitter: float = 0.0  # each value line's own shift, ± this fraction of W (x) and H (y)
    cap_jitter: float = 0.0  # each cap height × (1 ± this)
    preprint_hscale: Range = (1.0, 1.0)  # horizontal scale of each pre-printed text
    white_balance: float = 0.0  # ± RGB units white moves by, per card
    warm_share: float = 0.0  # cards with a warm (red up, blue down) cast
    pattern_contrast: Range = (1.0, 1.0)  # the background print's contrast against its smooth tint
    pattern_offset: float = 0.0  # the background print shifted by up to this fraction of W each way
    right_margin: float = 0.03  # no value runs closer to the right edge than this (W); a longer one is squeezed

    @property
    def measured(self) -> bool:
        return self.layouts is not None

    def __hash__(self) -> int:  # its layouts are dicts; a domain is known by its name
        return hash(self.name)


TRAIN = RenderDomain()

NAVY = Ink((40, 45, 60), (75, 80, 135))
RED = Ink((175, 50, 40), (225, 90, 110))
NEAR_BLACK = Ink((0, 0, 0), (50, 40, 45))
SLATE = Ink((40, 49, 56), (107, 127, 165))
CORAL = Ink((130, 68, 70), (190, 115, 140))
DARK_GREY = Ink((30, 30, 30), (80, 85, 95))

# chip 2021: notes §1.3 and §5.3
_CHIP_RESIDENCE = "Nơi thường trú / Place of residence:"
CHIP_2021 = CardLayout(
    id=(0.056, 0.056), name=(0.041, 0.043), value=(0.035, 0.039), expiry=(0.030, 0.031),
    placements={
        "id_number": (Placement("right", "Số / No.:", (0.015, 0.027), (0.0, 0.017)),),
        "full_name": (Placement("below", "Họ và tên / Full name:", (-0.001, 0.009), (0.065, 0.074)),),
        "date_of_birth": (Placement("right", "Ngày sinh / Date of birth:", (0.025, 0.037), (0.004, 0.019)),),
        "sex": (Placement("right", "Giới tính / Sex:", (0.019, 0.030), (-0.007, 0.006)),),
        "nationality": (Placement("right", "Quốc tịch / Nationality:", (0.002, 0.018), (-0.006, 0.007)),),
        "place_of_origin": (Placement("below", "Quê quán / Place of origin:", (-0.002, 0.015), (0.048, 0.059)),),
        "place_of_residence": (Placement("right", _CHIP_RESIDENCE, (-0.004, 0.008), (0.013, 0.022)),
                               Placement("below", _CHIP_RESIDENCE, (-0.004, 0.008), (0.069, 0.080))),
        "date_of_expiry": (Placement("right", "Có giá trị đến:", (-0.002, 0.009), (0.015, 0.022)),),
    },
    address_breaks={"place_of_residence": "first_part"},
    preprint_offset=(0.003, 0.005), preprint_offset_rare=(0.012, 0.011),
    header_ink=NAVY, label_ink=NAVY, title_ink=RED, value_ink=NEAR_BLACK, id_ink=NEAR_BLACK,
    qr_modules=(57, 61),
)

# 2016: notes §2.2 and §5.4. Its values float: the name centred on its label's row, a wrapped line centred under
# the one before
CCCD_2016 = CardLayout(
    id=(0.046, 0.046), name=(0.037, 0.041), value=(0.037, 0.039), expiry=(0.031, 0.031),
    placements={
        "id_number": (Placement("right", "Số:", (0.015, 0.05), (-0.017, 0.009)),),
        "full_name": (Placement("centred", "Họ và tên:", (0.23, 0.31), (-0.01, 0.035)),),
        "date_of_birth": (Placement("right", "Ngày, tháng, năm sinh:", (0.002, 0.022), (-0.006, 0.006)),),
        "sex": (Placement("right", "Giới tính:", (0.008, 0.026), (-0.009, 0.009)),),
        "nationality": (Placement("right", "Quốc tịch:", (0.012, 0.034), (-0.007, 0.007)),),
        "place_of_origin": (Placement("right", "Quê quán:", (0.002, 0.08), (-0.006, 0.013)),
                            Placement("under", "Quê quán:", (-0.02, 0.02), (0.045, 0.06))),
        "place_of_residence": (Placement("right", "Nơi thường trú:", (0.012, 0.13), (-0.013, 0.035)),
                               Placement("under", "Nơi thường trú:", (-0.02, 0.02), (0.056, 0.076))),
        "date_of_expiry": (Placement("right", "Có giá trị đến:", (0.002, 0.025), (0.002, 0.046)),),
    },
    address_breaks={"place_of_origin": "comma_if_long", "place_of_residence": "comma"},
    preprint_offset=(0.01, 0.01), preprint_offset_rare=(0.02, 0.02),
    header_ink=DARK_GREY, label_ink=SLATE, title_ink=RED, value_ink=NEAR_BLACK, id_ink=CORAL,
    bilingual_labels=False, serif_headers=True, id_bold=False,
    # the measured digit pitch (0.033 W at a 0.046 H digit height) is about a quarter em more than the face's own
    id_tracking=(0.2, 0.3), bold_values_share=0.4, bold_name_share=0.35,  # name bold on about 60% with the all-bold
)

# 2024: notes §3.2 and §5.5. Every value on the line below its label; sex centred under its label at the right,
# nationality indented
CAN_CUOC_2024 = CardLayout(
    id=(0.046, 0.050), name=(0.033, 0.037), value=(0.030, 0.033), expiry=(0.030, 0.033),
    placements={
        "id_number": (Placement("below", "Số định danh cá nhân / Personal identification number:", (0.002, 0.009),
                                (0.081, 0.093)),),
        "full_name": (Placement("below", "Họ, chữ đệm và tên khai sinh / Full name:", (0.003, 0.009), (0.080, 0.091)),),
        "date_of_birth": (Placement("below", "Ngày, tháng, năm sinh / Date of birth:", (0.001, 0.009), (0.055, 0.068)),),
        "sex": (Placement("centred", "Giới tính / Sex:", (0.011, 0.016), (0.052, 0.061)),),
        "nationality": (Placement("below", "Quốc tịch / Nationality:", (0.056, 0.061), (0.050, 0.063)),),
    },
    address_breaks={},
    preprint_offset=(0.003, 0.005), preprint_offset_rare=(0.006, 0.011),
    header_ink=NAVY, label_ink=NAVY, title_ink=RED, value_ink=NEAR_BLACK, id_ink=NEAR_BLACK,
    grey_photo=True,
)

MEASURED_LAYOUTS: dict[str, CardLayout] = {"cccd_chip_2021": CHIP_2021, "cccd_2016": CCCD_2016,
                                           "can_cuoc_2024": CAN_CUOC_2024}
# the held-out families cards are set in (the cards' faces are Arial-like) and those the 2016 serif headers take
_HELD_OUT_TEXT = tuple(n for n in HELD_OUT_FAMILIES if CATALOGUE[n].kind in ("sans", "condensed"))
_HELD_OUT_SERIF = tuple(n for n in HELD_OUT_FAMILIES if CATALOGUE[n].kind == "serif")

HELD_OUT = RenderDomain(
    name="held_out", fonts=_HELD_OUT_TEXT, identities="held_out", layouts=MEASURED_LAYOUTS,
    header_fonts=_HELD_OUT_SERIF, rare_offset_share=0.15, data_offset=(0.005, 0.007), field_jitter=0.004,
    cap_jitter=0.05, preprint_hscale=(0.90, 1.0), white_balance=30.0, warm_share=0.35, pattern_contrast=(0.6, 1.0),
    pattern_offset=0.05,
)

DOMAINS: dict[str, RenderDomain] = {d.name: d for d in (TRAIN, HELD_OUT)}
# the words the English parts of the labels and headers are set apart by (italic where the face has one)
LABEL_SEPARATOR = " / "
# headers underlined over their width on every card type
UNDERLINED = ("Độc lập - Tự do - Hạnh phúc", "Independence - Freedom - Happiness")


def domain(name: str) -> RenderDomain:
    """A domain by its name (the --domain options)."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"render domain {name!r}: expected one of {', '.join(DOMAINS)}") from None

