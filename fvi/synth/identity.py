"""Plausible identities: Faker's vi_VN locale plus the rules a real 12-digit ID number follows."""
from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from faker import Faker

from fvi.charset import is_encodable, normalize
from fvi.orthography import is_syllable
from fvi.synth.syllables import old_tone_placement, syllable
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

    def _origin(self, code: str) -> str:
        return self._place(code, with_street=False)

    def _residence(self, code: str, with_street: bool) -> str:
        return self._place(code, with_street)

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
                place_of_origin=self._origin(origin_code),
                place_of_residence=self._residence(residence_code, with_street=rng.random() < 0.8),
                date_of_expiry=expiry_for(dob, issued),
            )
            values = {k: normalize(v) for k, v in ident.fields().items()}
            if all(is_encodable(v) for v in values.values()):
                return Identity(**values)


@dataclass(frozen=True)
class HeldOutSources:
    """How held-out values are drawn, in the conventions real cards print (notes §1.6 and §10)."""

    top_words: int = 20000  # wordfreq's most frequent Vietnamese words, of which the syllables name people and streets
    four_word_names: float = 0.15  # names of 4 words (2 of 15 chip cards), else 3
    thi: float = 0.4  # women whose middle name is Thị
    van: float = 0.3  # men whose middle name is Văn
    two_level: float = 0.2  # addresses with no district: commune, province
    typed_units: float = 1 / 3  # addresses with a Thành phố, Thị xã, Thị trấn or Phường <n>
    province_only_origin: float = 0.05  # a place of origin of the province alone (2016 cards)
    bare_hamlet: float = 0.25  # residences opening with a bare hamlet name; the others with a unit or a house
    # the first part of a residence and how often each kind opens it (11 chip cards)
    units: tuple[tuple[str, float], ...] = (("house", 3), ("Thôn", 3), ("Tổ", 2), ("Ấp", 1), ("Khóm", 1), ("TDP", 1),
                                            ("KV", 1))
    street_word: float = 0.3  # streets written with "Đường"
    lane: float = 0.3  # houses in a lane (Ngõ, Ngách, Hẻm)


HELD_OUT_SOURCES = HeldOutSources()


@lru_cache(maxsize=4)
def held_out_words(top: int = HELD_OUT_SOURCES.top_words) -> tuple[str, ...]:
    """The syllables among wordfreq's `top` most frequent Vietnamese words (general text, not a name list) that the
    reader can spell, tones placed as the cards place them (hòa, thủy)."""
    import wordfreq

    words = (old_tone_placement(w) for w in wordfreq.top_n_list("vi", top)
             if len(w) > 1 and w.isalpha() and w.islower() and is_encodable(w) and is_syllable(w))
    return tuple(dict.fromkeys(words))


class HeldOutIdentityFactory(IdentityFactory):
    """Identities whose values no training set drew on, for a held-out test: people named with Vietnamese words
    of a general word list (wordfreq) instead of Faker's name lists, and real communes, districts and provinces
    (fvi.synth.gazetteer) printed as real cards print them: bare names, the unit types Thành phố, Thị xã, Thị trấn
    and Phường <n> in about a third, sometimes no district. The ID number, dates and sex follow the real rules as
    IdentityFactory draws them; the ground truth is what is printed."""

    def __init__(self, seed: int, sources: HeldOutSources = HELD_OUT_SOURCES) -> None:
        from fvi.synth.gazetteer import provinces

        super().__init__(seed)
        self.sources = sources
        self.draw = np.random.default_rng((seed, 1))
        self.vocabulary = held_out_words(sources.top_words)
        self.provinces = provinces()

    def _word(self, title: bool = True) -> str:
        w = self.vocabulary[int(self.draw.integers(len(self.vocabulary)))]
        return w[:1].upper() + w[1:] if title else w

    def _name(self, sex: str) -> str:
        r, src = self.draw, self.sources
        words = [self._word() for _ in range(4 if r.random() < src.four_word_names else 3)]
        if r.random() < (src.thi if sex == "Nữ" else src.van):
            words[1] = "Thị" if sex == "Nữ" else "Văn"
        return " ".join(words).upper()

    def _divisions(self, code: str) -> list[str]:
        """Commune, district (left out in a share) and province, a typed unit among them in a share."""
        r, src = self.draw, self.sources
        province, communes = self.provinces[code]
        two_level, typed = r.random() < src.two_level, r.random() < src.typed_units
        pool = [c for c in communes if (c.typed_commune or (c.typed_district and not two_level)) == typed] or communes
        c = pool[int(r.integers(len(pool)))]
        return [c.name, province] if two_level else [c.name, c.district, province]

    def _origin(self, code: str) -> str:
        if self.draw.random() < self.sources.province_only_origin:
            return self.provinces[code][0]
        return ", ".join(self._divisions(code))

    def _residence(self, code: str, with_street: bool) -> str:
        """Always four parts (three without a district): a sub-commune unit, a house or a bare hamlet first."""
        return ", ".join([self._first_part()] + self._divisions(code))

    def _first_part(self) -> str:
        r, src = self.draw, self.sources
        if r.random() < src.bare_hamlet:
            return f"{self._word()} {self._word()}"
        kinds, weights = zip(*src.units)
        kind = kinds[int(r.choice(len(kinds), p=np.array(weights) / sum(weights)))]
        number = str(int(r.integers(1, 30)))
        if kind in ("Thôn", "Ấp"):
            return f"{kind} {number if r.random() < 0.3 else self._word()}"
        if kind != "house":
            return f"{kind} {number}"
        house = [f"{int(r.integers(1, 400))}", f"Số {int(r.integers(1, 400))}",
                 f"{int(r.integers(1, 400))}/{int(r.integers(1, 60))}"][int(r.integers(3))]
        if r.random() < src.lane:
            house += f" {('Ngõ', 'Ngách', 'Hẻm')[int(r.integers(3))]} {int(r.integers(1, 200))}"
        street = " ".join(self._word() for _ in range(int(r.integers(2, 4))))
        return f"{house} {'Đường ' if r.random() < src.street_word else ''}{street}"
