"""Post-processing that uses what a card guarantees, and capture-quality warnings."""
from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
import pytest

from fvi import quality, validate
from fvi.image_io import decode_image
from fvi.schema import FieldResult
from fvi.synth.dataset import generate
from fvi.synth.identity import IdentityFactory

TODAY = dt.date(2026, 11, 22)


def _codes(values: dict[str, str]) -> set[str]:
    return {w.code for w in validate.check(values, today=TODAY)}


def test_generated_identities_break_no_reading_rule():
    ids = IdentityFactory(77)
    for _ in range(200):
        codes = _codes(ids.make().fields())
        assert codes <= validate.CARD_FACTS, codes


@pytest.mark.parametrize("field, value, code", [
    ("id_number", "03820300456", "id_format"),
    ("id_number", "003203004567", "id_province_unknown"),
    ("id_number", "038203004567", "id_birth_year_mismatch"),  # born 1990 below
    ("id_number", "038290004567", "id_century_sex_mismatch"),  # 2 = man born in the 2000s
    ("date_of_birth", "31/02/1990", "date_invalid"),
    ("date_of_birth", "01/01/2990", "date_invalid"),
    ("sex", "Nan", "sex_invalid"),
    ("date_of_expiry", "02/03/2016", "expiry_rule"),
    ("date_of_expiry", "Khong thoi han", "date_invalid"),
    ("full_name", "", "field_missing"),
])
def test_a_broken_rule_is_reported(field, value, code):
    values = {"id_number": "038090004567", "full_name": "NGUYỄN VĂN AN", "date_of_birth": "02/03/1990",
              "sex": "Nam", "nationality": "Việt Nam", "place_of_origin": "Xã An Phú, Tỉnh Thanh Hóa",
              "place_of_residence": "Xã An Phú, Tỉnh Thanh Hóa", "date_of_expiry": "02/03/2030"}
    assert _codes(values) == set()
    values[field] = value
    assert code in _codes(values)


def test_findings_cap_confidence_but_card_facts_do_not():
    fields = {"id_number": FieldResult("038003004567", 0.99), "date_of_birth": FieldResult("02/03/1990", 0.98),
              "sex": FieldResult("Nam", 0.97), "date_of_expiry": FieldResult("02/03/2015", 0.96)}
    findings = validate.check({k: f.value for k, f in fields.items()}, today=TODAY)
    assert {w.code for w in findings} == {"id_birth_year_mismatch", "card_expired"}
    validate.apply(fields, findings)
    assert fields["id_number"].confidence == validate.FINDING_CONFIDENCE_CAP
    assert fields["date_of_birth"].confidence == validate.FINDING_CONFIDENCE_CAP
    assert fields["sex"].confidence == 0.97 and fields["date_of_expiry"].confidence == 0.96


def test_capture_problems_become_warnings():
    sample = next(generate(1, seed=5152))
    image = decode_image(sample.capture.jpeg)
    corners = np.array(sample.capture.corners, np.float32)
    card = quality.card_view(image, corners)

    def codes(img_shape, c, flat) -> set[str]:
        return {w.code for w in quality.warnings(quality.measure(img_shape, c, flat))}

    base = codes(image.shape, corners, card)
    assert base == set() or base == {"glare"}, base  # the generator adds glare spots at random
    assert "blur" in codes(image.shape, corners, cv2.GaussianBlur(card, (0, 0), 2.5))
    assert "low_light" in codes(image.shape, corners, (card * 0.3).astype(np.uint8))
    shifted = corners - corners.min(axis=0) - 5  # a corner leaves the photo
    assert "cut_corner" in codes(image.shape, shifted, card)
    assert "small_card" in codes(image.shape, corners * 0.3, card)
    glare = card.copy()
    glare[100:300, 200:500] = 255
    assert "glare" in codes(image.shape, corners, glare)
    # every one asks for another photo (the evaluation's capture verdict counts on that)
    worst = dict(card_long_side_px=50.0, corner_margin_px=-1.0, sharpness=0.0, glare_fraction=1.0, brightness=0.0)
    assert {w.code for w in quality.warnings(np.array([worst[m] for m in quality.MEASURES]))} == quality.RETAKE_CODES


@pytest.mark.parametrize("field, read, expected", [
    ("place_of_residence", "Xã An Phú,Tỉnh Nghg An", "Xã An Phú, Tỉnh Nghệ An"),  # one confused diacritic
    ("place_of_origin", "Phường An Hải, Tỉnh Đắk Nũng", "Phường An Hải, Tỉnh Đắk Nông"),
    ("place_of_origin", "Phường An Khê, TP Hồ Chí Minh", "Phường An Khê, TP. Hồ Chí Minh"),
    ("place_of_origin", "Phường An Khê, Tỉnh Zzzzzzz", "Phường An Khê, Tỉnh Zzzzzzz"),  # too far: left as read
    ("place_of_residence", "Xã Bình Minh, Thành Phố Dương Dương, Tỉnh Bắc Kạn",  # a unit in the registry's case
     "Xã Bình Minh, Thành phố Dương Dương, Tỉnh Bắc Kạn"),
    ("place_of_residence", "Số 2 Phường Đình, thị xã Sơn Tây, Thành phố Hà Nội",  # a street named like a unit stays
     "Số 2 Phường Đình, Thị xã Sơn Tây, Thành phố Hà Nội"),
    ("place_of_residence", "Xã Hoàng Mai, Tỉnh Quảng Binh", "Xã Hoàng Mai, Tỉnh Quảng Bình"),  # a lost mark, not Ninh
    ("place_of_origin", "Xã An Hải, Huyện Châu Hưng Tỉnh Quờng Bình",  # the comma before the province not read
     "Xã An Hải, Huyện Châu Hưng, Tỉnh Quảng Bình"),
    ("place_of_residence", "S04 Quang Trung, Xã An Phú, Tỉnh Tây Ninh", "504 Quang Trung, Xã An Phú, Tỉnh Tây Ninh"),
    ("place_of_residence", "S/6O Hẻm 84, Xã An Phú, Tỉnh Tây Ninh", "5/60 Hẻm 84, Xã An Phú, Tỉnh Tây Ninh"),
    ("place_of_residence", "Số 12A Khu I, Xã SOS, Tỉnh Tây Ninh", "Số 12A Khu I, Xã SOS, Tỉnh Tây Ninh"),  # no digits: words
    # S and s differ in height only: "số" inside a street name is lower case; "Đường" has its stroke and tone
    ("place_of_residence", "Số 9 đường Số 80, Xã An Phú, Tỉnh Tây Ninh", "Số 9 đường số 80, Xã An Phú, Tỉnh Tây Ninh"),
    ("place_of_residence", "Số 5 Dường 50, Xã An Phú, Tỉnh Tây Ninh", "Số 5 Đường 50, Xã An Phú, Tỉnh Tây Ninh"),
    ("place_of_residence", "7 Khu 4 đương số 6, Xã An Phú, Tỉnh Tây Ninh", "7 Khu 4 đường số 6, Xã An Phú, Tỉnh Tây Ninh"),
    ("place_of_residence", "Số 3 Đường Dương 5, Xã Dương Minh Châu, Tỉnh Tây Ninh",
     "Số 3 Đường Dương 5, Xã Dương Minh Châu, Tỉnh Tây Ninh"),  # a name, not a misread street word
    # a lost comma: an administrative unit inside a part begins the next one, unless it is a name ("Phố Xã Đàn")
    ("place_of_origin", "Xã An Bình Thành phố Hưng Anh, Tỉnh Quảng Bình", "Xã An Bình, Thành phố Hưng Anh, Tỉnh Quảng Bình"),
    ("place_of_residence", "5 Phố Xã Đàn Phường Xã Đàn Quận Đống Đa, Thành phố Hà Nội",
     "5 Phố Xã Đàn, Phường Xã Đàn, Quận Đống Đa, Thành phố Hà Nội"),
    ("date_of_expiry", "Không thờ hạn", "Không thời hạn"),
    ("date_of_expiry", "Quáng Hời Lạn", "Không thời hạn"),  # letters, no date: half of them are enough
    ("date_of_expiry", "08/08/203", "08/08/203"),  # a date missing a digit stays for the card rules
    ("date_of_expiry", "0 1/08/2028", "01/08/2028"),
])
def test_what_the_card_guarantees_fixes_near_misses(field, read, expected):
    from fvi.assemble import normalize_field

    assert normalize_field(field, read) == expected


def _card(**values: str) -> dict[str, FieldResult]:
    card = {"id_number": "038090004567", "date_of_birth": "16/08/1990", "sex": "Nam", "date_of_expiry": "16/08/2030"}
    return {k: FieldResult(v, 0.97, [v]) for k, v in (card | values).items()}


def test_a_misread_expiry_digit_takes_the_readers_reading_that_agrees_with_the_birth_date():
    from fvi.assemble import agree_with_card_rules

    fields = _card(date_of_expiry="14/08/2030")  # the 6 of the 16th read as a 4
    readings = {"date_of_expiry": [("14/08/2030", -0.4), ("16/08/2030", -1.9), ("14/08/2036", -2.5)]}
    warnings = agree_with_card_rules(fields, lambda name: readings.get(name, []))
    assert fields["date_of_expiry"].value == "16/08/2030"
    assert fields["date_of_expiry"].confidence == validate.FINDING_CONFIDENCE_CAP  # never auto-accepted
    assert [(w.code, w.fields) for w in warnings] == [("read_by_card_rules", ["date_of_expiry"])]
    assert fields["date_of_birth"].value == "16/08/1990" and fields["date_of_birth"].confidence == 0.97


def test_an_expiry_two_digits_off_is_the_birthday_its_line_supports():
    from fvi.assemble import agree_with_card_rules

    fields = _card(date_of_expiry="18/06/2030")  # day and month both misread: the beam search never reached 16/08
    readings = {"date_of_expiry": [("18/06/2030", -0.9), ("18/08/2030", -2.0)]}
    line = {"16/08/2030": -3.1, "16/08/2015": -30.0, "16/08/2050": -25.0, "Không thời hạn": -80.0}
    warnings = agree_with_card_rules(fields, lambda name: readings.get(name, []),
                                     lambda name, text: line.get(text, -99.0) if name == "date_of_expiry" else -99.0)
    assert fields["date_of_expiry"].value == "16/08/2030"  # 40th birthday; e^-2.2 of the reader's first reading
    assert [(w.code, w.fields) for w in warnings] == [("read_by_card_rules", ["date_of_expiry"])]
    fields = _card(date_of_expiry="18/06/2030")  # without the line's likelihood only the readings are there
    assert agree_with_card_rules(fields, lambda name: readings.get(name, [])) == []


def test_a_birth_year_misread_is_the_year_the_id_number_encodes_when_its_line_supports_it():
    from fvi.assemble import agree_with_card_rules

    fields = _card(date_of_birth="16/08/1996", date_of_expiry="")  # a 2016 card that never expires: no expiry date
    readings = {"date_of_birth": [("16/08/1996", -0.2), ("16/08/1998", -2.5)]}  # the beam never reached 1990
    line = {"16/08/1990": -3.0}
    agree_with_card_rules(fields, lambda name: readings.get(name, []),
                          lambda name, text: line.get(text, -99.0) if name == "date_of_birth" else -99.0)
    assert fields["date_of_birth"].value == "16/08/1990"  # the ID's 4th-6th digits: a man born in (19)90


def test_the_id_number_and_the_birth_year_are_read_together():
    from fvi.assemble import agree_with_card_rules

    fields = _card(id_number="038096004567")  # digits 5-6 say 1996: the 0 read as a 6
    readings = {"id_number": [("038096004567", -0.2), ("038090004567", -0.9)],
                "date_of_birth": [("16/08/1990", -0.1), ("16/08/1996", -3.0)]}
    agree_with_card_rules(fields, lambda name: readings.get(name, []))
    # both fixes make the card agree; the ID's second guess is the likelier one
    assert fields["id_number"].value == "038090004567" and fields["date_of_birth"].value == "16/08/1990"


def test_a_date_read_with_an_extra_digit_is_the_run_of_eight_the_card_rules_accept():
    from fvi.assemble import agree_with_card_rules

    fields = _card(date_of_birth="1/16/08/1990")  # a mark before the date read as "1/"
    assert agree_with_card_rules(fields, lambda name: []) and fields["date_of_birth"].value == "16/08/1990"


@pytest.mark.parametrize("read", ["32038090004567", "03809000456712"])
def test_an_id_number_read_with_extra_digits_is_the_run_of_twelve_the_card_rules_accept(read):
    from fvi.assemble import agree_with_card_rules

    fields = _card(id_number=read)  # "Số:" before the number, or a mark after it, read as digits
    warnings = agree_with_card_rules(fields, lambda name: [(read, -0.3)] if name == "id_number" else [])
    assert fields["id_number"].value == "038090004567"
    assert fields["id_number"].confidence == validate.FINDING_CONFIDENCE_CAP
    assert [(w.code, w.fields) for w in warnings] == [("read_by_card_rules", ["id_number"])]


def test_readings_that_agree_are_left_alone_and_far_fetched_ones_are_not_taken():
    from fvi.assemble import AGREEMENT_MARGIN, agree_with_card_rules

    def never(name):
        raise AssertionError("a card that agrees needs no other readings")

    assert agree_with_card_rules(_card(), never) == []
    fields = _card(date_of_expiry="14/08/2030")
    readings = {"date_of_expiry": [("14/08/2030", -0.4), ("16/08/2030", -0.4 - AGREEMENT_MARGIN - 1)]}
    assert agree_with_card_rules(fields, lambda name: readings.get(name, [])) == []
    assert fields["date_of_expiry"].value == "14/08/2030"  # its expiry_rule finding will still say so
    # each date's other reading is within the margin, but both at once are e^7 less likely than what was read
    fields = _card(date_of_birth="18/08/1990", date_of_expiry="16/06/2030")
    readings = {"date_of_birth": [("18/08/1990", -0.1), ("16/08/1990", -3.6)],
                "date_of_expiry": [("16/06/2030", -0.1), ("16/08/2030", -3.6)]}
    assert AGREEMENT_MARGIN < 7 and agree_with_card_rules(fields, lambda name: readings.get(name, [])) == []
    assert (fields["date_of_birth"].value, fields["date_of_expiry"].value) == ("18/08/1990", "16/06/2030")


@pytest.mark.parametrize("dob, expiry", [("01/01/9990", "31/12/0001"), ("29/02/9999", "00/00/0000"), ("3/1957", "9 thời hạn"),
                                         ("31/12/0001", "29/02/9960")])
def test_dates_at_the_calendars_edges_do_not_crash_the_card_rules(dob, expiry):
    from fvi.assemble import agree_with_card_rules

    fields = _card(date_of_birth=dob, date_of_expiry=expiry)  # what a misread year can be
    readings = {"date_of_birth": [(dob, -0.1)], "date_of_expiry": [(expiry, -0.1)]}
    warnings = agree_with_card_rules(fields, lambda name: readings.get(name, []), lambda name, text: -1.0)
    assert all(w.code == "read_by_card_rules" for w in warnings)


@pytest.mark.parametrize("year", [1900, 1957, 1999, 2000, 2024, 2099])
@pytest.mark.parametrize("sex", validate.SEXES)
def test_the_birth_year_an_id_number_encodes_is_the_one_it_was_made_from(year, sex):
    id_number = f"001{validate.century_sex_digit(year, sex)}{year % 100:02d}123456"
    assert validate.birth_year_of_id(id_number) == year
    assert validate.birth_in_id_year(f"05/03/{year - 7}", id_number) == [f"05/03/{year}"]
