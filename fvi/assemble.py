"""Linked lines → structured fields: join wrapped lines, normalise, score, check against the card rules."""
from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Callable

import numpy as np
from rapidfuzz.distance import Levenshtein

from fvi import linker, quality, validate
from fvi.charset import normalize
from fvi.schema import CARD_FIELDS, FIELDS, SINGLE_LINE_FIELDS, STATUS_NO_CARD, STATUS_OK, FieldResult, OcrResult, Warning


ADDRESS_FIELDS = ("place_of_origin", "place_of_residence")


def snap(value: str, choices: tuple[str, ...], max_ratio: float = 0.25) -> str:
    """The closest of a closed list (provinces, "Không thời hạn") when the reading is a few edits off it.

    What the card guarantees fixes what the reader misses: a province name is one of 63, and a
    diacritic the reader confused (Nghg An, Đắk Nũng) is one edit away from the only candidate.
    """
    distances = [Levenshtein.distance(value, c) for c in choices]
    nearest = min(distances)
    # between equally near choices, the one with the same letters under the marks: "Quảng Binh" lost a
    # diacritic (Bình), it did not turn a letter into another (Ninh)
    plain = base_letters(value)
    best = min((c for c, d in zip(choices, distances) if d == nearest),
               key=lambda c: Levenshtein.distance(plain, base_letters(c)))
    return best if nearest <= max(1, round(max_ratio * len(best))) else value


def base_letters(text: str) -> str:
    """"Đông Hòa" → "Dong Hoa": the letters without their tone and vowel marks."""
    stripped = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    return stripped.replace("đ", "d").replace("Đ", "D")


_PROVINCE_NAMES: tuple[str, ...] = tuple(validate.PROVINCES.values())


def snap_province(last: str) -> str:
    """An address's last part → its province phrase, also when the comma before it was not read
    ("Huyện Châu Hưng Tỉnh Quờng Bình" → "Huyện Châu Hưng, Tỉnh Quảng Bình")."""
    # a province as the card prints it: with its unit ("Tỉnh Bắc Ninh", as the 2016 card does) or bare ("Bắc Ninh",
    # as chip cards mostly do); a reading is snapped to its own form, never given a unit it did not show
    with_unit = base_letters(last).lower().startswith(("tinh ", "thanh pho ", "tp"))
    snapped = snap(last, validate.PROVINCE_PHRASES if with_unit else _PROVINCE_NAMES)
    if snapped in validate.PROVINCE_PHRASES or snapped in _PROVINCE_NAMES:
        return snapped
    words = last.split(" ")
    for k in range(1, len(words) - 1):  # the province is the tail, after at least one word of the unit before
        tail = " ".join(words[k:])
        if not any(tail.startswith(unit) for unit in ("Tỉnh", "Thành phố", "TP")):
            continue
        snapped = snap(tail, validate.PROVINCE_PHRASES)
        if snapped in validate.PROVINCE_PHRASES:
            return f"{' '.join(words[:k])}, {snapped}"
    return last


# A house number is digits and slashes; S, O and I inside one are the digits they look like ("S04" → "504")
_HOUSE_NUMBER = re.compile(r"(?<!\S)(?=[\dSOI/]*\d)[\dSOI]+(?:/[\dSOI]+)*(?!\S)")
_AS_DIGITS = str.maketrans("SOI", "501")


def house_number_digits(part: str) -> str:
    return _HOUSE_NUMBER.sub(lambda m: m.group().translate(_AS_DIGITS), part)


# Inside a street's name "số" is the word number, lower case ("Đường số 2", "phố số 78"); only a house number
# opening a part is "Số 47". S and s differ only in height, which a blurred line loses.
_STREET_NUMBER = re.compile(r"(?:(?<=Đường )|(?<=đường )|(?<=Phố )|(?<=phố ))Số(?= \d)")
# "Đường" read without its stroke ("Dường" is no name) or its tone before a street number ("đương số 6")
_STREET_WORD = re.compile(r"\b(?:([Dd])ường|([Đđ])ương(?= (?:[Ss]ố )?\d))\b")


def street_words(part: str) -> str:
    """"Dường Số 2" → "Đường số 2": the street words of an address as they are written."""
    part = _STREET_WORD.sub(lambda m: ("Đ" if (m.group(1) or m.group(2)) in "DĐ" else "đ") + "ường", part)
    return _STREET_NUMBER.sub("số", part)


_STREET_KINDS = frozenset("đường phố hẻm ngõ ngách khu khóm ấp tổ".split())


def split_at_units(part: str) -> list[str]:
    """"Xã An Bình Thành phố Hưng Anh" → ["Xã An Bình", "Thành phố Hưng Anh"]: a comma the reader lost. A capitalised
    administrative unit after two words of a part, followed by a capitalised name, begins the next part; not one
    word in, after a street word or after no more than a house number, where it is a name ("Phường Xã Đàn",
    "Phố Huyện Lệ", "Số 2 Phường Đình")."""
    words, parts, start = part.split(" "), [], 0
    for i in range(2, len(words)):
        named = any(w.isalpha() and w.casefold() != "số" for w in words[start:i])
        if i - start < 2 or not named or not words[i][:1].isupper() or words[i - 1].casefold() in _STREET_KINDS:
            continue
        for unit in validate.ADMIN_UNITS:
            n = unit.count(" ") + 1
            after = words[i + n : i + n + 1]
            if " ".join(words[i : i + n]).casefold() == unit.casefold() and after and after[0][:1].isupper():
                parts.append(" ".join(words[start:i]))
                start = i
                break
    return parts + [" ".join(words[start:])]


def admin_unit_case(part: str) -> str:
    """"Thành Phố Vinh" → "Thành phố Vinh": a unit's case is the registry's; P and p differ only in height."""
    for unit in validate.ADMIN_UNITS:
        if part[: len(unit)].casefold() == unit.casefold() and part[len(unit) : len(unit) + 1] in ("", " "):
            return unit + part[len(unit) :]
    return part


def normalize_field(name: str, value: str) -> str:
    value = normalize(value)
    if name == "id_number":
        return re.sub(r"\D", "", value)
    if name in ("date_of_birth", "date_of_expiry"):
        digits = re.sub(r"\D", "", value)
        if len(digits) == 8:
            return f"{digits[:2]}/{digits[2:4]}/{digits[4:]}"
        # a misread letter of "Không thời hạn" may look like a digit (h -> 5); no date is a few edits from it, and
        # an expiry of letters (fewer than 4 digits: no date) is it when half its letters are ("Quáng Hời Lạn")
        ratio = 0.5 if len(digits) < 4 else 0.25
        return snap(value, (validate.NO_EXPIRY,), max_ratio=ratio) if name == "date_of_expiry" else value
    if name == "full_name":
        return value.upper()
    if name in ADDRESS_FIELDS and value:
        parts = [admin_unit_case(street_words(house_number_digits(unit))) for p in value.split(",")
                 for unit in split_at_units(p.strip())]
        parts[-1] = snap_province(parts[-1])
        return ", ".join(p for p in parts if p)
    if name == "sex":
        key = value.casefold()
        return {"nam": "Nam", "nữ": "Nữ", "nu": "Nữ"}.get(key) or snap(value, validate.SEXES, max_ratio=0.34)
    if name == "nationality" and value:
        # these cards are issued to citizens only: a reading sharing half its letters with "Việt Nam" is it
        return snap(value, (validate.NATIONALITY,), max_ratio=0.5)
    return value


def sex_from_id(fields: dict[str, FieldResult]) -> list[Warning]:
    """A sex line that did not read exactly Nam or Nữ, or read it unsurely against the ID number, takes the sex
    the ID number encodes (in place).

    The sex is two or three letters, the most misread line on a card; the ID number is twelve digits read
    with their neighbours' context. Its confidence is capped as a finding's, and a warning says where the
    value came from. A line that read Nam or Nữ at FINDING_CONFIDENCE_CAP or more, or at least as surely as
    the ID, is kept even against it (the id_century_sex_mismatch finding reports that).
    """
    sex, idn = fields.get("sex"), fields.get("id_number")
    if sex is None or idn is None:
        return []
    implied = validate.sex_of_id(idn.value)
    read = normalize(" ".join(sex.lines))
    if implied is None or read == implied:
        return []
    if read in validate.SEXES:
        if sex.confidence >= min(idn.confidence, validate.FINDING_CONFIDENCE_CAP):
            return []
        why = f"the sex line read {read} less surely than the ID number"
    else:
        why = "the sex line did not read Nam or Nữ"
    fields["sex"] = FieldResult(implied, round(min(idn.confidence, validate.FINDING_CONFIDENCE_CAP), 4), sex.lines)
    return [Warning("sex_from_id", ["sex"], f"{why}; {implied} is what the ID number's 4th digit encodes")]


# The fields the card's rules tie together (the ID number encodes the birth year, the expiry is a birthday), and
# how much less likely than the reader's first readings other readings may be and still be taken when they
# agree (log-probability; of each field's reading, and of the combination: two fields each nearly e^6 off would
# be e^12 off together). On the 400 tuning photos of
# fvi.reader.WORD_PENALTY, a margin of 3 left 2 expiry dates that 6 takes; 10 and 20 took nothing more.
RULE_FIELDS = ("id_number", "date_of_birth", "date_of_expiry")
AGREEMENT_MARGIN = 6.0
READINGS_PER_FIELD = 6


def _disagreements(values: dict[str, str]) -> int:
    """Reading findings on the rule fields (not a card fact such as expiry, nor a field not read at all)."""
    return sum(w.code not in validate.CARD_FACTS and w.code != "field_missing" and not set(w.fields).isdisjoint(RULE_FIELDS)
               for w in validate.check(values))


# How many digits a value of these fields has: the ID number's 12, a date's 8 (dd/mm/yyyy)
EXPECTED_DIGITS = {"id_number": validate.ID_DIGITS, "date_of_birth": 8, "date_of_expiry": 8}


def digit_count(name: str, text: str) -> tuple[int, int]:
    """(digits read, digits the field has; 0 for a field of words)."""
    return len(re.sub(r"\D", "", text)), EXPECTED_DIGITS.get(name, 0)


def candidate_values(name: str, value: str) -> list[str]:
    """A reading as the values it may stand for: an ID number or a date read with more digits than it has is each
    run of that many of them (a detected line may take in the "Số:" before the number, read as digits, or a mark
    beside it); the card rules choose."""
    digits, want = re.sub(r"\D", "", value), EXPECTED_DIGITS.get(name, 0)
    if not want or len(digits) <= want:
        return [value]
    return [normalize_field(name, digits[k : k + want]) for k in range(len(digits) - want + 1)]  # dates as dd/mm/yyyy


def implied_dates(options: dict[str, list[tuple[str, float]]]) -> dict[str, list[str]]:
    """What each date must be if the other rule fields' readings are right: an expiry is the 25th, 40th or 60th
    birthday or none (validate.expiries_of); a birth is that many years before the expiry (births_of), in the
    year the ID number encodes (birth_in_id_year)."""
    def read(name: str) -> list[str]:
        return [value for value, _ in options.get(name, [])]

    return {"date_of_expiry": [e for d in read("date_of_birth") for e in validate.expiries_of(d)],
            "date_of_birth": [b for e in read("date_of_expiry") for b in validate.births_of(e)]
            + [b for i in read("id_number") for d in read("date_of_birth") for b in validate.birth_in_id_year(d, i)]}


def agree_with_card_rules(fields: dict[str, FieldResult], readings: Callable[[str], list[tuple[str, float]]],
                          likelihood: Callable[[str, str], float] | None = None) -> list[Warning]:
    """When the ID number and the dates break the rules that tie them, take the likeliest combination of the
    reader's own readings (`readings(field)`: texts with their log-probabilities, likeliest first) that breaks
    none of them (in place). None, not fewer: an unreadable date would hide the rules that need it.

    A date's digit is the likeliest misread on a card, and the two dates and the ID number each vouch for the
    others: on a card the reader's second guess for one digit is often the one that agrees. The beam search
    may not reach that guess when two digits are off; so, given `likelihood(field, text)` (the log-probability
    of a text under that field's line), each date is also scored as the other date's readings imply it. A value
    taken this way is capped as a finding's and named in a warning, so no caller auto-accepts it.
    """
    values = {k: f.value for k, f in fields.items()}
    if not _disagreements(values):
        return []
    options: dict[str, list[tuple[str, float]]] = {}
    best: dict[str, float] = {}
    for name in (n for n in RULE_FIELDS if n in fields):
        found = readings(name)
        best[name] = found[0][1] if found else 0.0
        kept = dict.fromkeys([values[name], *candidate_values(name, values[name])], 0.0)  # value -> log-prob, first kept
        for text, lp in found:
            for value in candidate_values(name, normalize_field(name, text)):
                if lp >= best[name] - AGREEMENT_MARGIN:
                    kept.setdefault(value, lp - best[name])
        options[name] = list(kept.items())[:READINGS_PER_FIELD]
    for name, dates in (implied_dates(options) if likelihood else {}).items():
        if name not in options:
            continue
        taken = {value for value, _ in options[name]}
        for date in dict.fromkeys(d for d in dates if d not in taken):
            lp = likelihood(name, date) - best[name]
            if lp >= -AGREEMENT_MARGIN:
                options[name].append((date, lp))
    choice, likeliest = None, -np.inf
    for combo in itertools.product(*options.values()):
        lp = sum(p for _, p in combo)
        if lp > likeliest and lp >= -AGREEMENT_MARGIN:  # the margin bounds the combination, not only each reading
            trial = values | {name: v for name, (v, _) in zip(options, combo)}
            if not _disagreements(trial):
                choice, likeliest = trial, lp
    if choice is None:
        return []
    changed = [name for name in options if choice[name] != values[name]]
    for name in changed:
        f = fields[name]
        fields[name] = FieldResult(choice[name], round(min(f.confidence, validate.FINDING_CONFIDENCE_CAP), 4), f.lines)
    return [Warning("read_by_card_rules", changed,
                    "the reader's first reading broke a rule tying the ID number and the dates; this is its likeliest "
                    "other reading that agrees with all of them")]


def assemble(lines: list[linker.ReadLine], linked: linker.Linked | None, corners: np.ndarray, card_confidence: float,
             quality_measures: np.ndarray, readings: Callable[[int], list[tuple[str, float]]] | None = None,
             likelihood: Callable[[int, str], float] | None = None) -> OcrResult:
    """Linked lines (fvi.linker; None: no card) → the result. readings(i): the reader's readings of line i with
    their log-probabilities, likeliest first; likelihood(i, text): the log-probability of a text under line i
    (both for agree_with_card_rules; None: not used).

    Every field of FIELDS is reported. One the card type does not print on its front (the 2024 card's origin,
    residence and expiry) is "" with the type's confidence. A field's confidence is the lowest of its lines'.
    """
    corner_list = [[round(float(x), 2), round(float(y), 2)] for x, y in np.asarray(corners).reshape(4, 2)]
    if linked is None:
        return OcrResult(STATUS_NO_CARD, None, round(card_confidence, 4), corner_list, {}, len(lines),
                         line_texts=[l.text for l in lines])
    type_name, type_confidence = linked.card_type, linked.type_confidence
    on_front = CARD_FIELDS[type_name]
    fields: dict[str, FieldResult] = {}
    for name in FIELDS:
        parts = linked.parts[name]
        if name not in on_front:
            fields[name] = FieldResult("", round(type_confidence, 4), [])
        elif not parts:
            fields[name] = FieldResult("", 0.0, [])
        else:
            texts = [linker.clean(lines[p.line].text[p.start : p.end]) for p in parts]
            conf = min(lines[p.line].confidence for p in parts)
            fields[name] = FieldResult(normalize_field(name, " ".join(texts)), round(float(conf), 4), texts)
    single = {name: linked.parts[name][0] for name in SINGLE_LINE_FIELDS if len(linked.parts[name]) == 1}

    def field_readings(name: str) -> list[tuple[str, float]]:
        if name not in single or readings is None:
            return []
        p = single[name]
        return [(v, lp) for text, lp in readings(p.line) if (v := linker.value_in(text, lines[p.line], p)) is not None]

    def field_likelihood(name: str, text: str) -> float:
        if name not in single:
            return -np.inf
        p = single[name]
        line = lines[p.line].text
        return likelihood(p.line, line[: p.start] + (" " if p.start else "") + text + line[p.end :])

    findings = agree_with_card_rules(fields, field_readings, field_likelihood if likelihood else None) if readings else []
    findings += sex_from_id(fields) if "sex" in on_front else []
    findings += validate.check({k: fields[k].value for k in on_front})
    validate.apply(fields, findings)
    return OcrResult(STATUS_OK, type_name, round(card_confidence, 4), corner_list, fields, len(lines),
                     quality.warnings(quality_measures) + findings, round(type_confidence, 4), [l.text for l in lines])
