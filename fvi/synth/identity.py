"""Plausible identities: Faker's vi_VN locale plus the rules a real 12-digit ID number follows."""
from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass

import numpy as np
from faker import Faker

from fvi.charset import is_encodable, normalize
from fvi.synth.syllables import syllable
from fvi.validate import EXPIRY_AGES, NO_EXPIRY, PROVINCES, century_sex_digit, province_phrase

@dataclass
class Identity:
    id_number: str
    full_name: str
    date_of_birth: str
    sex: str
    nationality: str
    place_of_origin: str
    place_of_residence: str
    date_of_expiry: str

    def fields(self) -> dict[str, str]:
        return dict(self.__dict__)


def make_id_number(province_code: str, dob: dt.date, sex: str, rng: random.Random) -> str:
    return f"{province_code}{century_sex_digit(dob.year, sex)}{dob.year % 100:02d}{rng.randrange(10**6):06d}"


def expiry_for(dob: dt.date, issued: dt.date) -> str:
    """Cards are renewed at 25, 40 and 60; one issued within two years of a milestone runs to the next,
    and one issued at 58 or older never expires."""
    age_at_issue = (issued - dob).days / 365.25
    for milestone in EXPIRY_AGES:
        if age_at_issue < milestone - 2:
            try:
                return dob.replace(year=dob.year + milestone).strftime("%d/%m/%Y")
            except ValueError:  # born 29 February
                return dob.replace(year=dob.year + milestone, day=28).strftime("%d/%m/%Y")
    return NO_EXPIRY


# the words that say what a part of an address is; the names between them are what invent_words replaces
STRUCTURE_WORDS = frozenset("Số số Hẻm Ngõ Ngách Khu Khóm Ấp Tổ Phố phố Đường đường Xã xã Phường Thị trấn Huyện Quận "
                            "Thành".split())
_WORD = re.compile(r"[^\W\d_]+")


def invent_words(text: str, rng: np.random.Generator, keep: frozenset[str] = STRUCTURE_WORDS) -> str:
    """Each name in the text → a random syllable in the same case ("Số 9 Đường Đinh Bộ Lĩnh" → "Số 9 Đường
    Khuổi Gặp Tiềm"): a card's layout and structure with none of the name lists' words."""
    def invent(m: re.Match) -> str:
        word = m.group()
        if word in keep:
            return word
        new = syllable(rng)
        if len(word) > 1 and word.isupper():
            return new.upper()
        return new[:1].upper() + new[1:] if word[0].isupper() else new
    return _WORD.sub(invent, text)


def _district(fake: Faker, rng: random.Random) -> str:
    kind = rng.choice(["Huyện", "Quận", "Thị xã", "Thành phố"])
    given = fake.first_name_male if rng.random() < 0.5 else fake.first_name_female
    return f"{kind} {fake.last_name()} {given()}" if rng.random() < 0.3 else f"{kind} {given()} {fake.first_name_male()}"


def _commune(fake: Faker, rng: random.Random) -> str:
    name = fake.commune()
    name = name[0].upper() + name[1:]
    return name


class IdentityFactory:
    """Deterministic for a seed: same seed, same sequence of identities.

    invented_words: names, streets, communes and districts made of random syllables (invent_words), so a
    reader trained on them learns letters and marks rather than which names the lists hold.
    """

    def __init__(self, seed: int, invented_words: bool = False) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("vi_VN")
        self.fake.seed_instance(seed)
        self.invent = np.random.default_rng(seed) if invented_words else None

    def _words(self, text: str, keep: frozenset[str] = STRUCTURE_WORDS) -> str:
        return text if self.invent is None else invent_words(text, self.invent, keep)

    def _name(self, sex: str) -> str:
        f, rng = self.fake, self.rng
        first = f.first_name_male() if sex == "Nam" else f.first_name_female()
        middle = [m for m in (f.middle_name() for _ in range(rng.choice([0, 1, 1, 1, 2]))) if m not in ("Thị", "Văn")]
        if sex == "Nữ" and rng.random() < 0.4:
            middle = ["Thị"] + middle[:1]
        elif sex == "Nam" and rng.random() < 0.3:
            middle = ["Văn"] + middle[:1]
        return self._words(" ".join([f.last_name(), *middle, first]), keep=frozenset()).upper()

    def _place(self, code: str, with_street: bool) -> str:
        parts = [self._words(_commune(self.fake, self.rng)), self._words(_district(self.fake, self.rng)), province_phrase(code)]
        if with_street:
            parts.insert(0, self._words(self.fake.street_address()))
        return ", ".join(parts)

    def make(self) -> Identity:
        rng = self.rng
        while True:
            sex = rng.choice(["Nam", "Nữ"])
            dob = dt.date(1946, 1, 1) + dt.timedelta(days=rng.randrange((dt.date(2010, 12, 31) - dt.date(1946, 1, 1)).days))
            issued = max(dob.replace(year=dob.year + 14) if not (dob.month == 2 and dob.day == 29) else dob.replace(year=dob.year + 14, day=28),
                         dt.date(2021, 1, 1)) + dt.timedelta(days=rng.randrange(3 * 365))
            origin_code = rng.choice(list(PROVINCES))
            residence_code = origin_code if rng.random() < 0.5 else rng.choice(list(PROVINCES))
            ident = Identity(
                id_number=make_id_number(origin_code, dob, sex, rng),
                full_name=self._name(sex),
                date_of_birth=dob.strftime("%d/%m/%Y"),
                sex=sex,
                nationality="Việt Nam",
                place_of_origin=self._place(origin_code, with_street=False),
                place_of_residence=self._place(residence_code, with_street=rng.random() < 0.8),
                date_of_expiry=expiry_for(dob, issued),
            )
            values = {k: normalize(v) for k, v in ident.fields().items()}
            if all(is_encodable(v) for v in values.values()):
                return Identity(**values)
