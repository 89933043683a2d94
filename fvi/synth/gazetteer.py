"""Vietnam's real communes, districts and provinces, named as the cards print them: for held-out values.

Training cards take their places from Faker's vi_VN lists (fvi.synth.identity) or invent them (invent_words);
a held-out test set takes them from the official register instead, as the vietnam-provinces package ships it
(version 0.6.0: the 63 provinces and their districts before the 2025 merger, the divisions the cards in
circulation were issued under; its province codes are those of the ID numbers). The data is read offline from
the package's JSON file.

Cards print the names bare: never Xã, Huyện, Quận or Tỉnh, and no Thành phố before a centrally-run city. Only
units whose type is part of the name keep it: Thành phố and Thị xã (district level), Thị trấn, and numbered wards
(Phường 5) (notes §1.6). Districts named by a number alone (Quận 3) would print as a bare number: left out.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from fvi.charset import normalize
from fvi.synth.syllables import old_tone_placement

GAZETTEER_PACKAGE = "vietnam-provinces==0.6.0"
TYPED_DISTRICT = re.compile(r"(Thành [Pp]hố|Thị xã) ")
TYPED_COMMUNE = re.compile(r"Thị trấn |Phường \d+$")
_PREFIX = re.compile(r"^(Tỉnh|Thành [Pp]hố|Huyện|Quận|Thị xã|Xã|Phường|Thị trấn) ")


@dataclass(frozen=True)
class Commune:
    """A commune (ward, town) with its district, as printed, and whether either is printed with its type."""

    name: str
    district: str
    typed_commune: bool
    typed_district: bool


def _printed(name: str, keep_type: bool) -> str:
    """A unit's name as the card prints it: its type dropped unless keep_type, tones where the cards put them."""
    name = normalize(name.replace("Thành Phố", "Thành phố"))
    if not keep_type:
        name = _PREFIX.sub("", name)
    return " ".join(old_tone_placement(w) for w in name.split(" "))


@lru_cache(maxsize=1)
def provinces() -> dict[str, tuple[str, tuple[Commune, ...]]]:
    """Province code (as ID numbers start, "001") -> (its bare name, its communes)."""
    try:
        import vietnam_provinces
    except ModuleNotFoundError:
        raise RuntimeError(f"the held-out place names come from {GAZETTEER_PACKAGE}: pip install it") from None
    data = json.loads(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH.read_text(encoding="utf-8"))
    out = {}
    for p in data:
        communes = []
        for d in p["districts"]:
            if re.fullmatch(r"Quận \d+", d["name"]):
                continue
            typed_district = bool(TYPED_DISTRICT.match(d["name"]))
            district = _printed(d["name"], typed_district)
            for c in d["wards"]:
                typed_commune = bool(TYPED_COMMUNE.match(c["name"]))
                communes.append(Commune(_printed(c["name"], typed_commune), district, typed_commune, typed_district))
        out[f"{p['code']:03d}"] = (_printed(p["name"], False), tuple(communes))
    return out
