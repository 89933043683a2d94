"""What a card guarantees, checked on the fields read from it.

A Vietnamese personal ID number encodes the birth province, the century and sex, and the birth
year; dates must exist; a chip card expires on the 25th, 40th or 60th birthday or never. A finding
does not change a value here (the reader may be right and the card odd): it becomes a warning and caps
the confidence of the fields involved, so a caller that trusts high confidence is not misled. Only
fvi.assemble changes values on these rules, to another reading the reader itself gave.
"""
from __future__ import annotations

import datetime as dt
import re

from fvi.schema import FieldResult, Warning

# Confidence of a field involved in a finding is capped here: below any sane auto-accept threshold.
FINDING_CONFIDENCE_CAP = 0.5
NO_EXPIRY = "Không thời hạn"
SEXES = ("Nam", "Nữ")
# Citizen identity cards are issued to Vietnamese citizens only: the nationality line reads this.
NATIONALITY = "Việt Nam"
EXPIRY_AGES = (25, 40, 60)
ID_DIGITS = 12
_ID_FORMAT = re.compile(rf"\d{{{ID_DIGITS}}}")
# First three digits of the personal ID number: province of birth registration (63 provinces, pre-2025).
PROVINCES: dict[str, str] = {
    "001": "Hà Nội", "002": "Hà Giang", "004": "Cao Bằng", "006": "Bắc Kạn", "008": "Tuyên Quang",
    "010": "Lào Cai", "011": "Điện Biên", "012": "Lai Châu", "014": "Sơn La", "015": "Yên Bái",
    "017": "Hòa Bình", "019": "Thái Nguyên", "020": "Lạng Sơn", "022": "Quảng Ninh", "024": "Bắc Giang",
    "025": "Phú Thọ", "026": "Vĩnh Phúc", "027": "Bắc Ninh", "030": "Hải Dương", "031": "Hải Phòng",
    "033": "Hưng Yên", "034": "Thái Bình", "035": "Hà Nam", "036": "Nam Định", "037": "Ninh Bình",
    "038": "Thanh Hóa", "040": "Nghệ An", "042": "Hà Tĩnh", "044": "Quảng Bình", "045": "Quảng Trị",
    "046": "Thừa Thiên Huế", "048": "Đà Nẵng", "049": "Quảng Nam", "051": "Quảng Ngãi", "052": "Bình Định",
    "054": "Phú Yên", "056": "Khánh Hòa", "058": "Ninh Thuận", "060": "Bình Thuận", "062": "Kon Tum",
    "064": "Gia Lai", "066": "Đắk Lắk", "067": "Đắk Nông", "068": "Lâm Đồng", "070": "Bình Phước",
    "072": "Tây Ninh", "074": "Bình Dương", "075": "Đồng Nai", "077": "Bà Rịa - Vũng Tàu", "079": "Hồ Chí Minh",
    "080": "Long An", "082": "Tiền Giang", "083": "Bến Tre", "084": "Trà Vinh", "086": "Vĩnh Long",
    "087": "Đồng Tháp", "089": "An Giang", "091": "Kiên Giang", "092": "Cần Thơ", "093": "Hậu Giang",
    "094": "Sóc Trăng", "095": "Bạc Liêu", "096": "Cà Mau",
}
PROVINCE_CODES = frozenset(PROVINCES)
# The administrative units an address part starts with, as the registry writes them (longest first).
ADMIN_UNITS = ("Thành phố", "Thị trấn", "Thị xã", "Phường", "Huyện", "Quận", "Tỉnh", "Xã")
CITY_PROVINCES = frozenset({"001", "031", "048", "079", "092"})


def province_phrase(code: str) -> str:
    """How an address on the card ends: "Tỉnh X", "Thành phố X" for the five cities, "TP. Hồ Chí Minh"."""
    if code == "079":
        return "TP. Hồ Chí Minh"
    return ("Thành phố " if code in CITY_PROVINCES else "Tỉnh ") + PROVINCES[code]


PROVINCE_PHRASES: tuple[str, ...] = tuple(province_phrase(c) for c in PROVINCES)


def parse_date(value: str) -> dt.date | None:
    m = re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", value)
    if not m:
        return None
    try:
        return dt.date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        return None


def format_date(date: dt.date) -> str:
    """dd/mm/yyyy, as cards print dates (every year in four digits, which strftime does not promise)."""
    return f"{date.day:02d}/{date.month:02d}/{date.year:04d}"


def century_sex_digit(birth_year: int, sex: str) -> int:
    """0/1 for a man/woman born in the 1900s, 2/3 in the 2000s, and so on by century."""
    return ((birth_year // 100) - 19) * 2 + (0 if sex == "Nam" else 1)


def birth_year_of_id(id_number: str) -> int:
    """The birth year a 12-digit ID number encodes: the century from its 4th digit (century_sex_digit's
    inverse), the year from the 5th and 6th."""
    return (19 + int(id_number[3]) // 2) * 100 + int(id_number[4:6])


def sex_of_id(id_number: str) -> str | None:
    """The sex a well-formed ID number encodes (its fourth digit: even for a man, odd for a woman, whatever
    the century), or None when it is no 12-digit number with a known province code."""
    if not _ID_FORMAT.fullmatch(id_number) or id_number[:3] not in PROVINCE_CODES:
        return None
    return SEXES[int(id_number[3]) % 2]


def _birthday(dob: dt.date, age: int) -> dt.date:
    try:
        return dob.replace(year=dob.year + age)
    except ValueError:  # born 29 February
        return dob.replace(year=dob.year + age, day=28)


def _years_apart(date: dt.date, ages: tuple[int, ...]) -> list[str]:
    """`date` moved by each of `ages` years, those the calendar holds (a misread year may be 9948)."""
    return [format_date(_birthday(date, age)) for age in ages if dt.MINYEAR <= date.year + age <= dt.MAXYEAR]


def expiries_of(date_of_birth: str) -> list[str]:
    """The expiry dates a card of someone born then may carry: the 25th, 40th or 60th birthday, or none."""
    dob = parse_date(date_of_birth)
    return [] if dob is None else _years_apart(dob, EXPIRY_AGES) + [NO_EXPIRY]


def births_of(date_of_expiry: str) -> list[str]:
    """The birth dates a card expiring then may belong to: 25, 40 or 60 years before."""
    expiry = parse_date(date_of_expiry)
    return [] if expiry is None else _years_apart(expiry, tuple(-age for age in EXPIRY_AGES))


def birth_in_id_year(date_of_birth: str, id_number: str) -> list[str]:
    """The birth date in the year the ID number encodes (the century from its 4th digit, the year from the 5th
    and 6th), or none when either is unreadable."""
    dob = parse_date(date_of_birth)
    if dob is None or not _ID_FORMAT.fullmatch(id_number):
        return []
    try:
        return [format_date(dob.replace(year=birth_year_of_id(id_number)))]
    except ValueError:  # 29 February in a year without one
        return []


def check(values: dict[str, str], today: dt.date | None = None) -> list[Warning]:
    """Findings on normalised field values; an empty field is reported once and not checked further."""
    today = today or dt.date.today()
    found: list[Warning] = []

    def add(code: str, fields: tuple[str, ...], message: str) -> None:
        found.append(Warning(code, list(fields), message))

    for name, value in values.items():
        if not value:
            add("field_missing", (name,), f"{name} was not read")
    idn, sex = values.get("id_number", ""), values.get("sex", "")
    dob_text, exp_text = values.get("date_of_birth", ""), values.get("date_of_expiry", "")
    dob = parse_date(dob_text)

    if sex and sex not in SEXES:
        add("sex_invalid", ("sex",), "sex must read Nam or Nữ")
    if dob_text and (dob is None or not dt.date(1900, 1, 1) <= dob <= today):
        add("date_invalid", ("date_of_birth",), "the date of birth is not a valid past date (dd/mm/yyyy)")
        dob = None
    if idn:
        if not _ID_FORMAT.fullmatch(idn):
            add("id_format", ("id_number",), f"the ID number must have {ID_DIGITS} digits")
        else:
            if idn[:3] not in PROVINCE_CODES:
                add("id_province_unknown", ("id_number",), "the ID number's first three digits are no province code")
            if dob is not None and idn[4:6] != f"{dob.year % 100:02d}":
                add("id_birth_year_mismatch", ("id_number", "date_of_birth"),
                    "digits 5-6 of the ID number do not match the year of birth")
            if dob is not None and sex in SEXES and int(idn[3]) != century_sex_digit(dob.year, sex):
                add("id_century_sex_mismatch", ("id_number", "date_of_birth", "sex"),
                    "digit 4 of the ID number does not match the century of birth and the sex")
    if exp_text and exp_text != NO_EXPIRY:
        exp = parse_date(exp_text)
        if exp is None:
            add("date_invalid", ("date_of_expiry",), f"the expiry date is neither dd/mm/yyyy nor '{NO_EXPIRY}'")
        elif dob is not None and exp not in {_birthday(dob, age) for age in EXPIRY_AGES}:
            add("expiry_rule", ("date_of_expiry", "date_of_birth"),
                "a card expires on the 25th, 40th or 60th birthday; this expiry date is none of them")
        elif exp < today:
            add("card_expired", ("date_of_expiry",), "the card has expired")
    return found


# Findings about the card rather than the reading: they do not lower confidence.
CARD_FACTS = frozenset({"card_expired"})


def apply(fields: dict[str, FieldResult], findings: list[Warning]) -> None:
    """Cap the confidence of every field a reading finding names (in place)."""
    for w in findings:
        if w.code in CARD_FACTS:
            continue
        for name in w.fields:
            if name in fields:
                fields[name].confidence = min(fields[name].confidence, FINDING_CONFIDENCE_CAP)
