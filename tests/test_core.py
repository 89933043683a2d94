"""The shared core on its own: charset, identity rules, geometry, text lines, labels, linking and assembly."""
from __future__ import annotations

import datetime as dt
import itertools
import math
import unicodedata

import cv2
import numpy as np
import pytest

from fvi import charset, labels, linker, orthography, reader, text_detector, word_frequency
from fvi.assemble import assemble, normalize_field
from fvi.geometry import CARD_CORNERS, quad_is_plausible, warp_card
from fvi.schema import FIELDS, OcrResult, load_template
from fvi.synth.identity import PROVINCES, IdentityFactory, century_sex_digit, expiry_for


def test_charset_has_every_vietnamese_letter_in_nfc():
    for word in ["NGUYỄN", "Đặng", "thường trú", "Quê quán", "Hưng Yên", "Ỷ", "ỵ", "ữ", "Ặ"]:
        assert charset.is_encodable(word), word
        assert all(unicodedata.is_normalized("NFC", c) for c in word)
    # decomposed input is normalised, not rejected
    assert charset.encode(unicodedata.normalize("NFD", "Nguyễn")) == charset.encode("Nguyễn")
    with pytest.raises(ValueError, match="outside the reader charset"):
        charset.encode("Straße")


def test_ctc_decoding_collapses_repeats_and_blanks():
    text = "Hà Nội 01"
    ids = charset.encode(text)
    seq = []
    for i in ids:  # each char twice, then a blank: what a CTC net emits
        seq += [i, i, charset.BLANK]
    probs = np.full((len(seq), charset.NUM_CLASSES), 1e-4, np.float32)
    probs[np.arange(len(seq)), seq] = 0.9
    decoded, conf, per_char = charset.ctc_greedy_decode(charset.top_classes(probs)[:, 0])
    assert decoded == text and len(per_char) == len(text)
    assert 0 < conf <= 0.9 ** len(text) + 1e-6


def _reader_output(steps: list[dict[str, float]]) -> np.ndarray:
    """(T, TOP_K, 2) reader output from each step's probabilities by character ("" is the blank)."""
    probs = np.full((len(steps), charset.NUM_CLASSES), 1e-6, np.float32)
    for t, step in enumerate(steps):
        for ch, q in step.items():
            probs[t, charset.BLANK if ch == "" else charset.CHARS.index(ch) + 1] = q
    return charset.top_classes(probs)


def _sure(text: str) -> list[dict[str, float]]:
    return [s for ch in text for s in ({ch: 0.999}, {"": 0.999})]


@pytest.mark.parametrize("word", ["Nguyễn", "HỮU", "Thủy", "Thuỷ", "Quyền", "giếng", "gìn", "Khuỷu", "Xoong", "Đắk", "Lắk",
                                  "Kạn", "Kon", "12A", "149"])
def test_words_vietnamese_spells_are_words(word):
    assert orthography.bad_words(word) == 0


@pytest.mark.parametrize("word", ["Nghiêa", "Câau", "Phạmm", "Đôồng", "Dhũng", "Tuyý", "Km", "BÙi", "Chiảâu", "4õ",
                                  "4hphố", "Pasteur", "ât", "Kinh" + "\u0301\u0300"])
def test_words_vietnamese_cannot_spell_are_counted(word):
    assert orthography.bad_words(word) == 1


def test_a_line_with_a_word_vietnamese_cannot_spell_takes_the_readers_second_guess():
    # the reader hesitates between "m" and a blank at the last step of "Phạm": greedy reads a second m
    steps = _sure("Ph") + [{"ạ": 0.6, "a": 0.35}, {"": 0.999}, {"m": 0.55, "n": 0.4}, {"": 0.999}, {"m": 0.5, "": 0.49}]
    top = _reader_output(steps + _sure(" Văn"))
    greedy, greedy_conf, _ = charset.ctc_greedy_decode(top[:, 0])
    assert greedy == "Phạmm Văn"  # the doubled m: no Vietnamese word ends in mm
    (text, conf), = reader.decode(top[None])
    assert text == "Phạm Văn"
    assert conf <= greedy_conf  # a corrected reading is never surer than the reader was


def test_a_word_of_another_language_is_kept_when_the_reader_has_no_other_guess():
    top = _reader_output(_sure("Pasteur"))
    assert reader.decode(top[None])[0][0] == "Pasteur"


def test_a_texts_likelihood_sums_every_ctc_alignment_and_scores_what_the_beam_never_reached():
    steps = [{"1": 0.7, "7": 0.2, "": 0.1}, {"": 0.6, "1": 0.4}, {"1": 0.5, "": 0.5}, {"2": 0.9, "": 0.1}]
    top = _reader_output(steps)
    probs = {(t, ch): q for t, step in enumerate(steps) for ch, q in step.items()}

    def brute_force(text: str) -> float:  # every path of blanks and the text's letters that collapses to it
        total = 0.0
        for path in itertools.product(["", *set(text)], repeat=len(steps)):
            collapsed = [ch for i, ch in enumerate(path) if ch and (i == 0 or path[i - 1] != ch)]
            if "".join(collapsed) == text:
                total += math.prod(probs.get((t, ch), 1e-6) for t, ch in enumerate(path))
        return math.log(total)

    for text in ("12", "112", "2", "712"):
        assert charset.ctc_log_prob(top, text) == pytest.approx(brute_force(text), abs=1e-3), text
    assert charset.ctc_log_prob(top, "Straße") == -math.inf


def test_a_line_read_surely_that_spells_is_read_greedily():
    steps = _sure("Lê V") + [{"a": 0.95, "ă": 0.05}, {"": 0.999}] + _sure("n")  # "Văn" is far commoner, but both spell
    top = _reader_output(steps)
    assert reader.decode(top[None])[0] == charset.ctc_greedy_decode(top[:, 0])[:2]
    assert reader.decode(top[None])[0][0] == "Lê Van"


@pytest.mark.parametrize("doubt, read", [({"a": 0.55, "ă": 0.45}, "Lê Văn"), ({"a": 0.85, "ă": 0.15}, "Lê Van")])
def test_where_the_reader_hesitates_between_words_that_spell_the_commoner_word_wins_a_near_tie(doubt, read):
    top = _reader_output(_sure("Lê V") + [doubt, {"": 0.999}] + _sure("n"))
    greedy, greedy_conf, _ = charset.ctc_greedy_decode(top[:, 0])
    assert greedy == "Lê Van" and word_frequency.cost("Văn") < word_frequency.cost("Van")
    (text, conf), = reader.decode(top[None])
    assert text == read  # at 0.55 against 0.45 the commoner word wins; 0.85 against 0.15 outweighs it
    assert conf <= greedy_conf


def test_word_frequency_costs_rare_and_unknown_words_more_and_numbers_nothing():
    assert word_frequency.cost("Phường") < word_frequency.cost("Phượng") < word_frequency.cost("Xyzt")
    assert word_frequency.cost("12A 7/33") == 0.0
    assert word_frequency.cost("Văn Văn") == pytest.approx(2 * word_frequency.cost("văn"))


def test_identity_follows_id_number_rules():
    ids = IdentityFactory(123)
    for _ in range(50):
        p = ids.make()
        dob = dt.datetime.strptime(p.date_of_birth, "%d/%m/%Y").date()
        assert len(p.id_number) == 12 and p.id_number.isdigit()
        assert p.id_number[:3] in PROVINCES
        assert int(p.id_number[3]) == century_sex_digit(dob.year, p.sex)
        assert p.id_number[4:6] == f"{dob.year % 100:02d}"
        assert p.sex in ("Nam", "Nữ") and p.full_name == p.full_name.upper()
        assert all(charset.is_encodable(v) for v in p.fields().values())
    assert IdentityFactory(5).make() == IdentityFactory(5).make()


def test_expiry_rules():
    dob = dt.date(2000, 5, 17)
    assert expiry_for(dob, dt.date(2021, 6, 1)) == "17/05/2025"
    assert expiry_for(dob, dt.date(2023, 6, 1)) == "17/05/2040"  # 23: within 2 years of 25, runs to 40
    assert expiry_for(dt.date(1950, 1, 1), dt.date(2022, 1, 1)) == "Không thời hạn"


def test_warp_card_inverts_a_known_homography():
    import cv2

    yy, xx = np.mgrid[0:504, 0:800]
    card = np.dstack([xx * 255 // 800, yy * 255 // 504, ((xx // 80 + yy // 80) % 2) * 200]).astype(np.uint8)

    corners = np.array([[100, 80], [700, 120], [680, 500], [90, 460]], np.float32)
    m = cv2.getPerspectiveTransform(CARD_CORNERS, corners)
    photo = cv2.warpPerspective(card, m, (800, 600))
    flat = warp_card(photo, corners)
    assert np.abs(flat[50:-50, 50:-50].astype(int) - card[50:-50, 50:-50].astype(int)).mean() < 8
    assert quad_is_plausible(corners, photo.shape)
    assert not quad_is_plausible(corners[[0, 2, 1, 3]], photo.shape)  # self-intersecting


def _printed(card_type: str, values: dict[str, list[str]], photo_from_card: np.ndarray,
             merge_rows: bool = False) -> list[linker.ReadLine]:
    """The lines a detector and a perfect reader would give for a card front: every printed label and value where
    the card type's template prints it, mapped into the photo by photo_from_card (3 x 3). merge_rows: a label and
    the value printed right of it on its row come as one line, as DB often finds them."""
    template = load_template(card_type)
    pieces = []  # (x0, y0, x1, y1 on the card, text)
    for s in template["static_text"]:
        w, h = 0.42 * s["size"] * len(s["text"]), 1.17 * s["size"]
        if "center" in s:
            x, y = s["center"][0] - w / 2, s["center"][1] - h / 2
        else:
            x, y = s["origin"]
        pieces.append([x, y, x + w, y + h, s["text"]])
    for f in template["fields"]:
        for line, text in zip(f["lines"], values.get(f["field"], [])):
            x, y = line["origin"]
            pieces.append([x, y, x + 0.55 * f["size"] * len(text), y + 1.17 * f["size"], text])
    if merge_rows:
        merged = []
        for p in sorted(pieces, key=lambda p: p[0]):
            row = next((m for m in merged if abs((m[1] + m[3]) / 2 - (p[1] + p[3]) / 2) < 8 and 0 <= p[0] - m[2] < 60), None)
            if row is None:
                merged.append(p)
            else:
                row[2], row[4] = p[2], row[4] + " " + p[4]
        pieces = merged
    lines = []
    for x0, y0, x1, y1, text in pieces:
        quad = cv2.perspectiveTransform(np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float32), photo_from_card)[0]
        lines.append(linker.ReadLine(quad, text, 0.99))
    return lines


CHIP_VALUES = {"id_number": ["001203004567"], "full_name": ["NGUYỄN VĂN AN"], "date_of_birth": ["01/02/2003"],
               "sex": ["Nam"], "nationality": ["Việt Nam"], "place_of_origin": ["Yên Phong, Bắc Ninh"],
               "place_of_residence": ["Xã An Phú,", "Tỉnh Bắc Ninh"], "date_of_expiry": ["01/02/2028"]}
# a card turned 12° and seen at a slant, 1.4 photo pixels per template pixel
SLANTED = (np.array([[1.4, 0, 300], [0, 1.4, 200], [0, 0, 1]])
           @ np.vstack([cv2.getRotationMatrix2D((500, 315), 12, 1.0), [0, 0, 1]])
           @ np.array([[1, 0.05, 0], [0.02, 1, 0], [2e-5, 1e-5, 1]]))


def _linked_result(lines: list[linker.ReadLine]) -> OcrResult:
    linked = linker.link(lines)
    corners = linker.card_corners(linked.anchors, linked.card_type)
    return assemble(lines, linked, corners, 1.0, np.array([700, 200, 500, 0, 150], np.float32))


@pytest.mark.parametrize("merge_rows", [False, True])
def test_each_value_is_the_text_its_label_introduces_wherever_the_card_lies(merge_rows):
    lines = _printed("cccd_chip_2021", CHIP_VALUES, SLANTED, merge_rows)
    rng = np.random.default_rng(1)
    lines = [lines[i] for i in rng.permutation(len(lines))]  # the detector's order is no reading order
    res = _linked_result(lines)
    assert res.status == "ok" and res.card_type == "cccd_chip_2021"
    assert {k: f.value for k, f in res.fields.items()} == {
        **{k: " ".join(v) for k, v in CHIP_VALUES.items()}, "place_of_residence": "Xã An Phú, Tỉnh Bắc Ninh"}
    assert res.fields["place_of_residence"].lines == ["Xã An Phú", "Tỉnh Bắc Ninh"]  # its two lines, in order
    assert len(res.line_texts) == len(lines)  # every line's reading, labels included


def test_the_cards_corners_are_placed_from_where_its_labels_were_read():
    lines = _printed("cccd_chip_2021", CHIP_VALUES, SLANTED)
    linked = linker.link(lines)
    assert linked.label_count >= 10 and len(linked.anchors) >= linker.LINK.sure_anchors
    corners = linker.card_corners(linked.anchors, "cccd_chip_2021")
    w, h = load_template("cccd_chip_2021")["size"]
    want = cv2.perspectiveTransform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), SLANTED)[0]
    assert np.abs(corners - want).max() < 0.01 * np.linalg.norm(want[2] - want[0])
    assert linker.card_corners(linked.anchors[:1], "cccd_chip_2021") is None  # one label places no card


def test_a_label_is_found_on_its_base_letters_inside_a_line_read_without_marks():
    found = labels.find_labels("Ho va ten / Full name: NGUYEN VAN AN")
    assert [m.label.field for m in found] == ["full_name"]
    assert linker.clean("Ho va ten / Full name: NGUYEN VAN AN"[found[0].end:]) == "NGUYEN VAN AN"
    assert labels.find_labels("NGUYỄN VĂN AN") == []


def test_the_card_type_is_told_by_the_labels_it_prints():
    values = {k: v for k, v in CHIP_VALUES.items() if k in ("id_number", "full_name", "date_of_birth", "sex", "nationality")}
    res = _linked_result(_printed("can_cuoc_2024", values, SLANTED))
    assert res.card_type == "can_cuoc_2024" and res.fields["id_number"].value == "001203004567"
    for name in ("place_of_origin", "place_of_residence", "date_of_expiry"):  # printed on the back: empty, never missing
        assert res.fields[name].value == "" and res.fields[name].confidence == res.card_type_confidence
        assert not any(name in w.fields for w in res.warnings if w.code == "field_missing")


def test_a_card_none_of_whose_labels_was_read_is_still_read_by_the_shape_of_its_values():
    """Print too small for its labels: the ID by its digits, the earlier date the birth, the later the expiry, Nam
    or Nữ the sex, Việt Nam the nationality; the card placed by its text's extent, with a low confidence."""
    values = [l for l in _printed("cccd_chip_2021", CHIP_VALUES | {"date_of_expiry": ["01/02/2028"]}, SLANTED)
              if not labels.find_labels(l.text)]
    linked = linker.link(values)
    assert linked.anchors == [] and linker.card_corners(linked.anchors, linked.card_type) is None
    corners = linker.text_extent_corners(values, linked)
    res = assemble(values, linked, corners, 0.0, np.array([700, 200, 500, 0, 150], np.float32))
    assert {k: res.fields[k].value for k in ("id_number", "date_of_birth", "date_of_expiry", "sex", "nationality")} == {
        "id_number": "001203004567", "date_of_birth": "01/02/2003", "date_of_expiry": "01/02/2028", "sex": "Nam",
        "nationality": "Việt Nam"}
    w, h = load_template("cccd_chip_2021")["size"]
    card = cv2.perspectiveTransform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), SLANTED)[0]
    inside = [cv2.pointPolygonTest(card.reshape(-1, 1, 2), tuple(map(float, c)), True) for c in corners]
    assert min(inside) > -0.15 * np.linalg.norm(card[2] - card[0])  # about where the card is
    only_dates = [l for l in values if "/" in l.text]  # no ID number: nothing says this is a card
    assert linker.text_extent_corners(only_dates, linker.link(only_dates)) is None


def test_an_id_number_whose_label_was_not_read_is_known_by_its_digits():
    lines = [l for l in _printed("cccd_chip_2021", CHIP_VALUES, SLANTED) if not l.text.startswith("Số")]
    assert _linked_result(lines).fields["id_number"].value == "001203004567"


@pytest.mark.parametrize("sex_line, id_number, sex, confidence, code, line_confidence", [
    ("NGh", "038191004567", "Nữ", 0.5, "sex_from_id", 0.96),  # unreadable: the ID's 4th digit (1, odd) says woman
    ("NIm", "038191004567", "Nữ", 0.5, "sex_from_id", 0.96),  # one edit from Nam, yet not what the line must read
    ("Nam", "038191004567", "Nam", 0.5, "id_century_sex_mismatch", 0.96),  # read cleanly: kept, the conflict reported
    ("Nam", "038191004567", "Nam", 0.5, "id_century_sex_mismatch", 0.5),  # as surely as a finding allows: kept too
    ("Nam", "038191004567", "Nữ", 0.5, "sex_from_id", 0.3),  # read unsurely against the ID: the ID decides
    ("NGh", "03819100456", "NGh", 0.5, "sex_invalid", 0.96),  # no well-formed ID to go by
    ("Nữ", "038191004567", "Nữ", 0.96, None, 0.96),
])
def test_a_misread_sex_line_takes_the_sex_the_id_number_encodes(sex_line, id_number, sex, confidence, code,
                                                                  line_confidence):
    values = CHIP_VALUES | {"id_number": [id_number], "date_of_birth": ["01/02/1991"], "sex": [sex_line],
                            "date_of_expiry": ["01/02/2031"]}
    lines = _printed("cccd_chip_2021", values, SLANTED)
    for l in lines:
        l.confidence = line_confidence if l.text == sex_line else 0.96
    res = _linked_result(lines)
    assert (res.fields["sex"].value, res.fields["sex"].confidence) == (sex, confidence)
    assert res.fields["sex"].lines == [sex_line]
    codes = {w.code for w in res.warnings if "sex" in w.fields}
    assert codes == ({code} if code else set()), codes


def test_values_are_normalised_to_what_the_card_guarantees():
    assert normalize_field("date_of_birth", "0 1/02 /1990") == "01/02/1990"
    assert normalize_field("id_number", "0 01 2 03004567") == "001203004567"
    assert [normalize_field("date_of_expiry", v) for v in ("Qông thời 5ạn", "Không thời Tn7", "22/05/204")] == [
        "Không thời hạn", "Không thời hạn", "22/05/204"]
    # what the card guarantees: sex is Nam or Nữ, the nationality of a citizen's card is Việt Nam
    assert [normalize_field("sex", v) for v in ("Nừ", "nam", "Nan", "X")] == ["Nữ", "Nam", "Nam", "X"]
    assert [normalize_field("nationality", v) for v in ("Viêt Nam", "Việt Nan", "Vhệ Nóm", "Lào")] == [
        "Việt Nam", "Việt Nam", "Việt Nam", "Lào"]


def test_assembly_answers_whatever_the_reader_read():
    """Misreads are arbitrary: dates like 00/00/9999 or 29/02/0001, 14-digit IDs, stray punctuation, labels where
    no label is. Whatever they are, linking and assembly answer with findings, never an exception (the serving
    path runs them on every photo)."""
    rng = np.random.default_rng(7)
    pieces = ["00/00/9999", "29/02/0001", "31/12/9990", "01/01/1900", "Không thời hạn", "03212345678901", "Nam",
              "Nữ", "Số 2 Dường Số 5 Xã Đàn Huyện", ",", "/", " ", "Việt Nam", "Tỉnh", "9", "S0I", "Họ và tên:",
              "Quê quán / Place of origin: Số / No.:", "Ngày sinh / Date of birth:", "CĂN CƯỚC"]
    letters = [*charset.CHARS[:80], *"0123456789/,. "]
    for trial in range(300):
        n = int(rng.integers(1, 14))
        lines = []
        for i in range(n):
            text = str(rng.choice(pieces)) if rng.random() < 0.5 else charset.normalize(
                "".join(rng.choice(letters, int(rng.integers(0, 20)))))
            x, y, w = rng.uniform(0, 800), rng.uniform(0, 600), rng.uniform(0, 400)
            quad = np.array([[x, y], [x + w, y], [x + w, y + 30], [x, y + 30]], np.float32) @ rng.normal(1, 0.1, (2, 2))
            lines.append(linker.ReadLine(quad.astype(np.float32), text, float(rng.uniform(0, 1))))
        outputs = [_reader_output(_sure(l.text)) for l in lines]
        linked = linker.link(lines)
        corners = linker.card_corners(linked.anchors, linked.card_type)
        res = assemble(lines, linked, np.zeros((4, 2)) if corners is None else corners, 0.9, np.zeros(5, np.float32),
                       lambda i: charset.ctc_beam_search(outputs[i]), lambda i, text: charset.ctc_log_prob(outputs[i], text))
        assert set(res.fields) == set(FIELDS), trial
        assert len(res.line_texts) == n, trial


def test_text_lines_come_back_from_the_detectors_map_in_photo_pixels_and_reading_order():
    """DB's map marks each line shrunk; decoding grows it back (unclip) and scales it to the photo. A page turned
    a quarter gives lines whose reading order follows the text, not the image axes."""
    prob = np.zeros((320, 480), np.float32)
    prob[100:112, 40:300] = 0.9  # a line, shrunk as DB marks it
    prob[200:216, 60:200] = 0.8
    lines = text_detector.decode(prob, np.array([2.0, 2.0], np.float32))
    assert len(lines) == 2
    for line, (x0, y0, x1, y1) in zip(sorted(lines, key=lambda l: l.quad[:, 1].mean()), [(40, 100, 300, 112), (60, 200, 200, 216)]):
        q = line.quad / 2
        assert q[:, 0].min() < x0 <= x1 < q[:, 0].max() and q[:, 1].min() < y0 <= y1 < q[:, 1].max()
        assert q[:, 0].max() - q[:, 0].min() < (x1 - x0) + 4 * (y1 - y0)  # grown back by about its height, no more
        assert text_detector.PARAMS.box_threshold < line.score <= prob[y0:y1, x0:x1].max()
    upright = text_detector.orient(lines[0].quad, 0.0)
    assert upright[1, 0] > upright[0, 0] and upright[3, 1] > upright[0, 1]  # TL → TR runs along +x
    quarter = text_detector.orient(lines[0].quad, np.pi / 2)  # text running down the photo
    assert quarter[1, 1] > quarter[0, 1]


def test_a_reader_crop_of_a_slanted_line_is_the_line_made_level():
    gray = np.full((400, 600), 220, np.uint8)
    quad = np.array([[100, 150], [400, 100], [405, 130], [105, 180]], np.float32)  # a dark line at a slant
    cv2.fillPoly(gray, [quad.astype(np.int32)], 20)
    crop = reader.cut_quad(gray, quad)
    assert crop.shape[0] == reader.INPUT_H and crop.dtype == np.uint8
    dark = crop < crop.mean()
    rows = dark.mean(axis=1)
    assert rows[reader.INPUT_H // 2] > 0.8  # the line runs through the middle of the crop, end to end
    assert rows[0] < 0.2 and rows[-1] < 0.2


def test_a_large_photo_is_read_like_its_smaller_self_with_corners_in_its_own_pixels():
    from fvi.image_io import encode_jpeg
    from fvi.pipeline import WORK_MAX_SIDE, ReferencePipeline
    from fvi.synth.dataset import generate

    sample = next(s for s in generate(12, seed=4250) if not s.capture.conditions["blur"])
    big = cv2.resize(sample.capture.image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > WORK_MAX_SIDE
    pipe = ReferencePipeline()
    small_res, big_res = pipe(sample.capture.jpeg), pipe(encode_jpeg(big, 92))
    assert small_res.status == big_res.status == "ok"
    err = np.abs(np.array(big_res.corners) / 3 - np.array(small_res.corners)).max()
    assert err < 0.01 * max(sample.capture.image.shape), err
    assert big_res.fields["id_number"].value == small_res.fields["id_number"].value
