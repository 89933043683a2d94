"""The shared core on its own: charset, identity rules, geometry, detector/reader pre/post-processing."""
from __future__ import annotations

import datetime as dt
import itertools
import math
import unicodedata

import cv2
import numpy as np
import pytest

from fvi import charset, cropper, detector, orthography, reader, word_frequency
from fvi.assemble import assemble, normalize_field
from fvi.geometry import CARD_CORNERS, CARD_H, CARD_W, Letterbox, letterbox, quad_is_plausible, warp_card
from fvi.schema import FIELDS, SINGLE_LINE_FIELDS, OcrResult
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


def test_an_id_number_read_short_is_read_again_from_a_wider_box():
    from fvi.pipeline import read_short_numbers_wider

    def output(text: str) -> np.ndarray:
        return _reader_output(_sure(text) + [{"": 0.999}] * (40 - 2 * len(text)))

    meta = np.array([[FIELDS.index("id_number"), 300, 100, 500, 130, 1.0], [FIELDS.index("full_name"), 300, 150, 600, 180, 1.0],
                     [FIELDS.index("date_of_expiry"), 300, 200, 420, 230, 1.0]], np.float32)
    texts = [("0120300456", 0.9), ("AN", 0.99), ("Không thời hạn", 0.97)]  # two digits of the ID cut off
    crops = []

    def read(batch: np.ndarray) -> np.ndarray:
        crops.append(batch)
        return np.stack([output("001203004567")])

    out = read_short_numbers_wider(texts, meta, np.full((504, 800), 200, np.uint8), read)
    assert len(crops) == 1 and len(crops[0]) == 1  # only the short number, in one reader call
    assert out[0][0] == "001203004567" and out[0][1] <= 0.9  # no surer than the first reading
    assert out[1:] == texts[1:]  # words, and an expiry that never ends, have no digits to miss
    assert read_short_numbers_wider(out, meta, np.zeros((504, 800), np.uint8), read) == out and len(crops) == 1


def test_an_unsure_line_is_read_again_from_other_cuts_of_its_box_and_the_views_vote():
    def output(steps: list[dict[str, float]]) -> np.ndarray:
        return _reader_output(steps + [{"": 0.999}] * (12 - len(steps)))

    doubtful = _sure("T") + [{"ầ": 0.6, "â": 0.4}, {"": 0.999}] + _sure("n")
    first = np.stack([output(doubtful), output(_sure("Nam")), output(_sure(""))])
    texts = reader.decode(first)
    assert texts[0][0] == "Tần" and texts[0][1] < reader.REREAD_BELOW <= texts[1][1]
    read_crops = []

    def read(crops: np.ndarray) -> np.ndarray:  # the other cuts of the unsure line: three read "Tân", one "Tần"
        read_crops.append(crops)
        return np.stack([output(_sure("Tân"))] * 3 + [output(doubtful)])

    card = np.full((CARD_H, CARD_W), 200, np.uint8)
    boxes = [np.array([100, 100, 300, 130], np.float32), np.array([100, 200, 200, 230], np.float32), None]
    again = reader.reread_unsure(texts, card, boxes, read)
    assert len(read_crops) == 1 and len(read_crops[0]) == 4  # one reader call, the unsure line's four views only
    assert again[1:] == texts[1:]  # a sure line and a padding row are left alone
    assert again[0][0] == "Tân"
    assert again[0][1] == pytest.approx(3 * 0.999 ** 12 / 5, abs=0.02)  # the view that disagreed counts nothing
    assert reader.reread_unsure(texts[1:], card, boxes[1:], read) == texts[1:] and len(read_crops) == 1
    many = [texts[0]] * 20  # a barely read card: only the least sure lines, as many as one reader batch holds
    read_crops.clear()
    reader.reread_unsure(many, card, [boxes[0]] * 20, read)
    assert len(read_crops[0]) == reader.MAX_REREAD_LINES * len(reader.other_views(boxes[0]))


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


def test_letterbox_maps_points_both_ways():
    img = np.zeros((480, 640, 3), np.uint8)
    boxed, lb = letterbox(img, 256)
    assert boxed.shape == (256, 256, 3)
    pts = np.array([[0, 0], [640, 480], [320, 100]], np.float32)
    assert np.allclose(lb.to_image(lb.to_input(pts)), pts, atol=1e-3)
    assert np.allclose(Letterbox.from_array(lb.as_array()).as_array(), lb.as_array())


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


def test_cropper_decode_finds_peaks_with_subcell_precision():
    n = cropper.HEATMAP_SIZE
    ys, xs = np.mgrid[0:n, 0:n]
    truth = np.array([[40.3, 50.0], [200.0, 60.6], [210.2, 190.0], [30.0, 180.0]], np.float32)
    cells = cropper.corner_to_cell(truth)
    hm = np.stack([np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 2.0) for cx, cy in cells]).astype(np.float32)
    res = cropper.decode(hm, Letterbox(1.0, 0.0, 0.0), (256, 256))
    assert res.found and np.abs(res.corners - truth).max() < 1.0
    assert not cropper.decode(hm * 0.1, Letterbox(1.0, 0.0, 0.0), (256, 256)).found


def _look(scores, plausible=True):
    scores = np.array(scores, np.float32)
    return cropper.CornerResult(bool(scores.min() >= cropper.CORNER_THRESHOLD and plausible), np.zeros((4, 2), np.float32),
                                scores, float(scores.min()), plausible)


@pytest.mark.parametrize("first, second, finds", [
    (_look([0.9, 0.8, 0.7, 0.04]), _look([0.9, 0.8, 0.7, 0.06]), True),  # a finger over one corner
    (_look([0.9, 0.8, 0.7, 0.04]), _look([0.9, 0.8, 0.7, 0.02]), False),  # the zoomed look sees it no better
    (_look([0.9, 0.8, 0.7, 0.04]), _look([0.9, 0.8, 0.7, 0.5], plausible=False), False),
    (_look([0.9, 0.2, 0.7, 0.04]), _look([0.9, 0.8, 0.7, 0.06]), False),  # two weak corners: ...
    (_look([0.9, 0.2, 0.7, 0.04]), _look([0.9, 0.8, 0.7, 0.45]), True),  # ... unless the second look is sure
    (_look([0.5, 0.4, 0.6, 0.3], plausible=False), _look([0.8, 0.6, 0.7, 0.5]), True),  # one peak off the card
    (_look([0.9, 0.8, 0.7, 0.04], plausible=False), _look([0.9, 0.8, 0.7, 0.2]), False),  # implausible first, zoomed not sure
    (_look([0.1, 0.05, 0.08, 0.03]), _look([0.2, 0.1, 0.15, 0.11]), False),  # as on card-free photos
])
def test_the_second_look_finds_a_card_the_first_half_saw(first, second, finds):
    assert cropper.second_look_finds(first, second) is finds


@pytest.mark.parametrize("photo_shape, quad", [
    ((900, 1200), [[300, 200], [700, 260], [680, 500], [280, 450]]),  # a card in the middle
    ((3000, 4000), [[1000, 1000], [3000, 1100], [2900, 2300], [900, 2200]]),  # a 12 MP photo: shrunk
    ((480, 640), [[500, 300], [630, 330], [620, 470], [490, 440]]),  # a small card in a corner: black outside
])
def test_the_second_look_zooms_on_the_card_and_maps_back(photo_shape, quad):
    quad = np.array(quad, np.float32)
    photo = np.zeros(photo_shape + (3,), np.uint8)
    cv2.fillPoly(photo, [np.round(quad * 16).astype(np.int32)], (255, 255, 255), shift=4)
    view, lb = cropper.refine_view(photo, quad + 5)  # around a first look a little off
    assert view.shape == (3, cropper.INPUT_SIZE, cropper.INPUT_SIZE) and view.dtype == np.uint8
    in_view = lb.to_input(quad)
    assert np.allclose(lb.to_image(in_view), quad, atol=1e-3)
    span = in_view.max(0) - in_view.min(0)
    assert span.max() > 0.7 * cropper.INPUT_SIZE  # the card fills the view
    want = np.zeros((cropper.INPUT_SIZE,) * 2, np.uint8)
    cv2.fillPoly(want, [np.round(in_view * 16).astype(np.int32)], 1, shift=4)
    got = view[0] > 127
    assert (got & (want > 0)).sum() / (got | (want > 0)).sum() > 0.95  # the pixels are where the map says


def test_an_unsure_second_look_is_placed_by_its_turned_views_and_decided_by_its_own_peaks():
    """A stand-in cropper that knows where the card's corners are in a view however it is turned, except that
    unturned it puts the top-right corner on a background edge, unsurely: the turned views, turned back, outvote
    that corner; the card's corners peak as the unturned view saw them (the threshold was calibrated on that)."""
    from fvi.image_io import Photo
    from fvi.pipeline import second_look

    photo = Photo(np.zeros((600, 800, 3), np.uint8), (800, 600))
    photo.image[120:260, 180:400] = 255  # a patch off the centre of the view: any turn moves it
    quad = np.array([[200, 150], [600, 170], [590, 420], [190, 400]], np.float32)
    first = cropper.corner_result(quad + 6, np.full(4, 0.9, np.float32), (600, 800))  # a first look a little off
    view, lb = cropper.refine_view(photo.image, first.corners)
    wrong_top_right = quad[1] + [25, -20]

    def cropper_that_sees(views: np.ndarray) -> np.ndarray:
        out = []
        for v in views:
            turns = next(t for t in range(4) if np.array_equal(v, np.rot90(view, t, axes=(1, 2))))
            corners = quad.copy()
            if turns == 0:
                corners[1] = wrong_top_right
            heatmaps = np.zeros((4, cropper.HEATMAP_SIZE, cropper.HEATMAP_SIZE), np.float32)
            for k, (x, y) in enumerate(lb.to_input(corners)):
                heatmaps[k, int(y) // cropper.STRIDE, int(x) // cropper.STRIDE] = 0.5 if turns == 0 and k == 1 else 1.0
            out.append(np.rot90(heatmaps, turns, axes=(1, 2)))  # where the turned view has them
        return np.stack(out)

    assert cropper.quarter_turns(view).shape == (3,) + view.shape
    seen = second_look(photo, first, cropper_that_sees)
    cell = cropper.STRIDE / lb.scale  # a heatmap cell, in the photo's pixels
    assert np.abs(seen.corners - quad).max() <= cell
    assert seen.found and seen.scores.tolist() == [1.0, 0.5, 1.0, 1.0] and seen.confidence == 0.5


def test_detector_targets_decode_back_to_line_boxes():
    boxes = [(0, np.array([400, 186, 640, 230], np.float32)), (6, np.array([668, 496, 960, 530], np.float32)),
             (6, np.array([272, 542, 800, 576], np.float32) * [1, 504 / 630, 1, 504 / 630])]
    boxes = [(k, b * np.array([0.8, 0.8, 0.8, 0.8], np.float32)) for k, b in boxes]
    lines = detector.decode(detector.render_targets(boxes))
    assert [l.field for l in lines] == [FIELDS[0], FIELDS[6], FIELDS[6]]
    from fvi.geometry import box_iou

    for line, (_, box) in zip(lines, sorted(boxes, key=lambda kb: (kb[0], kb[1][1]))):
        assert box_iou(line.box, box) > 0.6


def test_line_height_is_read_to_a_fraction_of_a_map_cell():
    """A line box's top and bottom come back within a pixel wherever the line falls across the 6.3-pixel
    map cells: whole cells would make it up to a third of the line too tall or too short for the reader."""
    cell = CARD_H / detector.MAP_H
    for offset in np.linspace(0, cell, 9):
        for height in (17.0, 22.0, 27.0):
            box = np.array([120, 200 + offset, 420, 200 + offset + height], np.float32)
            [line] = detector.decode(detector.render_targets([(1, box)]))
            assert np.abs(line.box[[1, 3]] - box[[1, 3]]).max() < 1.0, (offset, height, line.box)


def test_reader_crop_is_fixed_size_and_normalised():
    card = np.full((504, 800, 3), 200, np.uint8)
    card[200:230, 300:500] = 20
    crop = reader.crop_line(card, np.array([300, 200, 500, 230], np.float32))
    assert crop.shape == (1, reader.INPUT_H, reader.INPUT_W)
    assert abs(float(crop[0, :, :200].mean())) < 1.0


def test_assemble_joins_wrapped_lines_and_normalises():
    meta = np.array([[6, 500, 300, 700, 330, 0.9], [6, 200, 340, 700, 370, 0.95], [0, 300, 100, 500, 130, 1.0],
                     [-1, 0, 0, 0, 0, 0]], np.float32)
    texts = [("Xã An Phú,", 0.99), ("Tỉnh Bắc Ninh", 0.9), ("0 01 2 03004567", 0.98), ("", 0.0)]
    res = assemble(texts, meta, np.zeros((4, 2)), 0.9, True, np.array([700, 50, 500, 0, 150], np.float32),
                   np.array([0.97, 0.02, 0.01], np.float32))
    assert (res.card_type, res.card_type_confidence) == ("cccd_chip_2021", pytest.approx(0.97))
    assert res.fields["place_of_residence"].value == "Xã An Phú, Tỉnh Bắc Ninh"
    assert res.fields["place_of_residence"].confidence == pytest.approx(0.9 * 0.95, abs=1e-4)
    assert res.fields["id_number"].value == "001203004567"
    assert res.fields["full_name"].value == "" and res.fields["full_name"].confidence == 0.0
    assert OcrResult.from_json(res.to_json()) == res
    assert normalize_field("date_of_birth", "0 1/02 /1990") == "01/02/1990"
    assert [normalize_field("date_of_expiry", v) for v in ("Qông thời 5ạn", "Không thời Tn7", "22/05/204")] == [
        "Không thời hạn", "Không thời hạn", "22/05/204"]
    # what the card guarantees: sex is Nam or Nữ, the nationality of a citizen's card is Việt Nam
    assert [normalize_field("sex", v) for v in ("Nừ", "nam", "Nan", "X")] == ["Nữ", "Nam", "Nam", "X"]
    assert [normalize_field("nationality", v) for v in ("Viêt Nam", "Việt Nan", "Vhệ Nóm", "Lào")] == [
        "Việt Nam", "Việt Nam", "Việt Nam", "Lào"]


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
    meta = np.array([[0, 300, 100, 500, 130, 1.0], [2, 300, 150, 420, 180, 1.0], [3, 300, 200, 340, 230, 1.0]], np.float32)
    texts = [(id_number, 0.98), ("01/02/1991", 0.99), (sex_line, line_confidence)]
    res = assemble(texts, meta, np.zeros((4, 2)), 0.9, True, np.zeros(5, np.float32), np.array([0.97, 0.02, 0.01], np.float32))
    assert (res.fields["sex"].value, res.fields["sex"].confidence) == (sex, confidence)
    assert res.fields["sex"].lines == [sex_line]
    codes = {w.code for w in res.warnings if "sex" in w.fields}
    assert codes == ({code} if code else set()), codes


def test_a_field_keeps_its_surest_lines_up_to_as_many_as_the_card_prints_it_on():
    # the detector also took a smudge under the ID for an ID line, and the sex line between the residence's two
    # lines for a third one (a chip card prints residence on two lines, the ID on one)
    meta = np.array([[0, 300, 100, 500, 130, 1.0], [0, 320, 135, 360, 160, 0.6],
                     [6, 500, 300, 700, 330, 0.9], [6, 300, 320, 340, 338, 0.7], [6, 200, 340, 700, 370, 0.95]],
                    np.float32)
    texts = [("001203004567", 0.98), ("1ým", 0.4), ("Xã An Phú,", 0.99), ("Nữ", 0.9), ("Tỉnh Bắc Ninh", 0.9)]
    res = assemble(texts, meta, np.zeros((4, 2)), 0.9, True, np.zeros(5, np.float32), np.array([0.97, 0.02, 0.01], np.float32))
    assert (res.fields["id_number"].value, res.fields["id_number"].lines) == ("001203004567", ["001203004567"])
    assert res.fields["id_number"].confidence == pytest.approx(0.98)
    assert res.fields["place_of_residence"].value == "Xã An Phú, Tỉnh Bắc Ninh"
    assert res.fields["place_of_residence"].lines == ["Xã An Phú,", "Tỉnh Bắc Ninh"]
    assert res.line_texts == [text for text, _ in texts]  # every detected line's reading, taken or not, in row order
    assert SINGLE_LINE_FIELDS == {"id_number", "full_name", "date_of_birth", "sex", "nationality", "date_of_expiry"}


def test_assembly_answers_whatever_the_reader_read():
    """Misreads are arbitrary: dates like 00/00/9999 or 29/02/0001, 14-digit IDs, stray punctuation. Whatever
    they are, assembly answers with findings, never an exception (the serving path runs it on every photo)."""
    rng = np.random.default_rng(7)
    pieces = ["00/00/9999", "29/02/0001", "31/12/9990", "01/01/1900", "Không thời hạn", "03212345678901", "Nam",
              "Nữ", "Số 2 Dường Số 5 Xã Đàn Huyện", ",", "/", " ", "Việt Nam", "Tỉnh", "9", "S0I"]
    letters = [*charset.CHARS[:80], *"0123456789/,. "]
    for trial in range(300):
        n = int(rng.integers(1, 12))
        texts = []
        for _ in range(n):
            if rng.random() < 0.5:
                texts.append(str(rng.choice(pieces)))
            else:
                texts.append(charset.normalize("".join(rng.choice(letters, int(rng.integers(0, 20))))))
        meta = np.array([[int(rng.integers(-1, len(FIELDS))), 300, 40 * i, 600, 40 * i + 30, rng.uniform(0.3, 1)]
                         for i in range(n)], np.float32)
        outputs = [_reader_output(_sure(t)) for t in texts]
        res = assemble([(t, float(rng.uniform(0, 1))) for t in texts], meta, np.zeros((4, 2)), 0.9, True,
                       np.zeros(5, np.float32), rng.dirichlet(np.ones(3)).astype(np.float32),
                       lambda i: charset.ctc_beam_search(outputs[i]),
                       lambda i, text: charset.ctc_log_prob(outputs[i], text))
        assert set(res.fields) == set(FIELDS), trial
        assert len(res.line_texts) == int((meta[:, 0] >= 0).sum()), trial


def test_a_2024_card_reports_its_back_side_fields_empty_and_never_missing():
    front = [("001203004567", 0.99), ("NGUYỄN VĂN AN", 0.98), ("01/02/2003", 0.99), ("Nam", 0.99), ("Việt Nam", 0.99)]
    meta = np.array([[FIELDS.index(f), 300, 100 + 40 * i, 500, 130 + 40 * i, 1.0]
                     for i, f in enumerate(("id_number", "full_name", "date_of_birth", "sex", "nationality"))]
                    + [[6, 200, 340, 700, 370, 0.95]], np.float32)
    texts = front + [("stray line the detector gave residence", 0.9)]
    type_2024 = np.array([0.01, 0.04, 0.95], np.float32)
    res = assemble(texts, meta, np.zeros((4, 2)), 0.9, True, np.zeros(5, np.float32), type_2024)
    assert res.card_type == "can_cuoc_2024"
    for name in ("place_of_origin", "place_of_residence", "date_of_expiry"):
        assert res.fields[name].value == "" and res.fields[name].confidence == pytest.approx(0.95)
        assert not any(name in w.fields for w in res.warnings if w.code == "field_missing")
    # a card the reader could hardly read (its name unread): "not printed here" is no surer than what was read
    res = assemble(texts[:1] + texts[-1:], meta[[0, -1]], np.zeros((4, 2)), 0.9, True, np.zeros(5, np.float32), type_2024)
    assert any(w.code == "field_missing" and w.fields == ["full_name"] for w in res.warnings)
    assert all(res.fields[name].confidence == 0.0 for name in ("place_of_origin", "place_of_residence", "date_of_expiry"))
    with pytest.raises(ValueError, match="expected 3 values"):
        assemble(texts, meta, np.zeros((4, 2)), 0.9, True, np.zeros(5, np.float32), np.ones(2, np.float32))


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
