"""The evaluation of issue 3 (`make eval`) on a small held-out set, as a user runs it.

The e2e test runs the real tritonserver, the in-process pipeline and Tesseract on 8 synthetic
cards of each card type and 5 card-free photos and checks the report. Its floors sit well below what
today's models reach on synthetic cards (reports/eval.md) so they catch a broken model or graph
without flaking on a small sample.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import tesseract_peer
from bench.compare import NotComparable, compare, main as compare_main, mcnemar_p
from bench.evaluate import (ACCEPTED, RETAKE, TRAINED_NETS, VERDICT, Item, Outcome, capture_verdict, card_types_by_model,
                            common_card_types, corner_errors, ensure_test_set, evaluate, fields_right, interval,
                            line_counts, match_lines, score, slices, trained_card_types, wilson_interval, write_report)
from fvi import reader
from fvi.image_io import encode_jpeg
from fvi.pipeline import work_photo
from fvi.schema import CARD_FIELDS, CARD_TYPES, FIELDS, LINE_META_COLUMNS
from fvi.synth.dataset import generate

CARDS = 8  # per card type
NO_CARD_IMAGES = 5
TESSERACT_CARDS = 1
QUICK_CARD_TYPES = CARD_TYPES
# Overall over the three types, well below what the served pipeline reaches on these 24 cards (92% found, 88% ID,
# 88% card type, line recall 76% and precision 87% against every printed line): a broken model or graph falls
# under them, a small sample does not.
FLOORS = {"card_found": 0.6, "id_number": 0.5, "no_card_recognised": 0.8, "orientation_right": 0.9,
          "card_type_identified": 0.6, "line_recall": 0.6, "line_precision": 0.7}


@pytest.mark.e2e
def test_small_evaluation_writes_the_report_with_tesseract_rows(triton, tmp_path):
    assert tesseract_peer.available(), "Tesseract 5 with Vietnamese is missing: make setup installs tesseract-ocr tesseract-ocr-vie"
    report, items, outcomes = evaluate(CARDS, seed=4300, no_card_images=NO_CARD_IMAGES, tesseract_cards=TESSERACT_CARDS,
                                       triton_url=triton.grpc_url, data_root=tmp_path / "data", card_types=QUICK_CARD_TYPES)
    paths = write_report(report, items, outcomes, tmp_path / "reports", failures=3)

    assert report["card_types"] == list(QUICK_CARD_TYPES)
    assert report["untrained_card_types"] == [t for t in QUICK_CARD_TYPES if t not in trained_card_types()]
    served = report["systems"]["ensemble"]["overall"]
    assert (served["cards"], served["card_free_images"]) == (CARDS * len(QUICK_CARD_TYPES), NO_CARD_IMAGES)
    for figure, floor in FLOORS.items():
        assert served[figure] >= floor, f"served ensemble {figure}: {served[figure]:.0%}, expected at least {floor:.0%}"
    # corners come from the labels read (a homography to where the card type prints them): the far corners of a
    # card few of whose labels were read land several percent off (on these 24 cards, mean 7.9%)
    assert served["mean_corner_error_pct"] <= 15.0
    assert served["exact_match"]["date_of_birth"] >= 0.6
    assert report["agreement_ensemble_reference"] >= 0.9, "the ensemble and the in-process pipeline disagree"
    assert report["systems"]["reference"]["overall"]["id_number"] >= FLOORS["id_number"]

    assert {"tesseract_full", "tesseract_lines"} <= set(report["systems"])
    assert report["same_photos_as_tesseract"]["tesseract_lines"]["cards"] == TESSERACT_CARDS * len(QUICK_CARD_TYPES)
    assert report["systems"]["tesseract_full"]["overall"]["card_free_images"] == TESSERACT_CARDS

    photos = report["per_photo"]["ensemble"]
    assert len(photos) == len(items) and {k for p in photos.values() for k in p} <= {"card", "status", "right", "corners_within_3pct"}
    assert compare(report, report)["figures"]["whole_card"]["fixed"] == 0  # a run against itself changes nothing

    by_verdict = report["systems"]["ensemble"]["slices"][VERDICT]  # what the service told the user, photo by photo
    assert sum(b["cards"] for b in by_verdict.values()) == served["cards"]
    assert report["systems"]["reference"]["slices"][VERDICT].keys() == by_verdict.keys()  # the same photos for all

    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert ("Acting on the capture warnings" in markdown) == (ACCEPTED in by_verdict)
    assert "synthetic" in markdown and "Targets of issue 3" in markdown
    low, high = interval(served, "whole_card")
    assert low <= served["whole_card"] <= high and f"{low:.1%} – {high:.1%}" in markdown
    assert "Tesseract 5 vie, full photo" in markdown and "Tesseract 5 vie, our line crops" in markdown
    assert "rotation: 0-90°" in markdown and "jpeg quality: <60" in markdown
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["data"].startswith("synthetic")
    failures = sorted(paths["failures"].glob("*.jpg"))
    assert failures and len(failures) <= 3, "a 24-card run has failures to show (whole card is far from 100% today)"


def test_a_share_of_the_test_set_comes_with_the_range_another_test_set_could_give():
    low, high = wilson_interval(0.5, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)  # the textbook value
    low, high = wilson_interval(0.896, 1500)  # whole card, mild: 90% is inside, so the miss is not told apart
    assert 0.87 < low < 0.896 < 0.9 < high < 0.92
    assert wilson_interval(1.0, 300)[0] > 0.98
    low, high = wilson_interval(0.0, 300)  # none of 300: not "surely never"
    assert low == 0.0 < high < 0.02
    overall = {"cards": 1500, "card_free_images": 300, "whole_card": 0.896, "no_card_recognised": 1.0,
               "exact_match": {"id_number": 0.984}, "reader_cer": 0.0041}
    assert interval(overall, "exact_match.id_number")[1] < 0.995  # the ID number's miss is beyond the noise
    assert interval(overall, "no_card_recognised")[0] > 0.98
    assert interval(overall, "reader_cer") is None  # lines of one card fail together: no interval claimed


def _run(whole_right: list[bool], seed: int = 4300) -> dict:
    """A report as bench.evaluate writes it, cut down to what bench.compare reads: one card per entry."""
    all_right, expiry_wrong = "1" * len(FIELDS), "1" * (len(FIELDS) - 1) + "0"
    photos = {f"card_{i:03d}": {"card": True, "status": "ok", "right": all_right if ok else expiry_wrong,
                                "corners_within_3pct": True} for i, ok in enumerate(whole_right)}
    photos["free_000"] = {"card": False, "status": "no_card"}
    return {"seed": seed, "capture": "mild", "words": "name lists", "card_types": list(CARD_TYPES), "cards_per_type": 10,
            "per_photo": {"ensemble": photos}}


def test_two_runs_are_compared_photo_by_photo(tmp_path, capsys):
    before = _run([True] * 20 + [False] * 10)
    after = _run([True] * 20 + [True] * 8 + [False] * 2)  # 8 fixed, none broken
    figures = compare(before, after)["figures"]
    assert figures["whole_card"] == {"photos": 30, "before": 20, "after": 28, "fixed": 8, "broken": 0, "p": 2 / 2**8}
    assert figures["exact_match.date_of_expiry"]["fixed"] == 8 and figures["exact_match.id_number"]["p"] == 1.0
    assert figures["no_card_recognised"] == {"photos": 1, "before": 1, "after": 1, "fixed": 0, "broken": 0, "p": 1.0}
    # the same split of disagreements either way round is no change at all
    assert mcnemar_p(5, 5) == 1.0 and mcnemar_p(0, 0) == 1.0 and mcnemar_p(9, 1) < 0.05 < mcnemar_p(6, 2)

    with pytest.raises(NotComparable, match="different test sets .*seed"):
        compare(before, _run([True] * 30, seed=4301))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in before.items() if k != "per_photo"}), encoding="utf-8")
    new = tmp_path / "new.json"
    new.write_text(json.dumps(after), encoding="utf-8")
    assert compare_main([str(old), str(new)]) == 2
    assert "no per-photo outcomes" in capsys.readouterr().err
    old.write_text(json.dumps(before), encoding="utf-8")
    assert compare_main([str(old), str(new), "--out", str(tmp_path / "cmp.md")]) == 0
    assert "| whole_card | 30 | 66.7% | 93.3% | 8 | 0 |" in (tmp_path / "cmp.md").read_text(encoding="utf-8")


def test_corner_errors_tell_a_turned_card_from_a_right_one():
    truth = np.array([[100, 100], [500, 100], [500, 350], [100, 350]], np.float32)
    err, oriented = corner_errors(truth + 3, truth)
    assert oriented and err.max() < 0.03
    err, oriented = corner_errors(np.roll(truth, 1, axis=0), truth)  # same quad, read upside down by 90°
    assert not oriented and err.min() > 0.3


def test_tesseract_text_is_split_into_fields_by_the_card_labels():
    text = ("CĂN CƯỚC CÔNG DÂN\nSố / No.: 001087012345\nHọ và tên / Full name:\nNGUYỄN VĂN AN\n"
            "Ngày sinh / Date of birth: 12/04/1987\nGiới tính / Sex: Nam Quốc tịch / Nationality: Việt Nam\n"
            "Quê quán / Place of origin:\nXã An Hải, Tỉnh Điện Biên\n"
            "Nơi thường trú / Place of residence: Số 1 Phố Huế,\nPhường Long Bình, Tỉnh Bắc Kạn\n"
            "Có giá trị đến: 12/04/2027\nDate of expiry\n")
    raw, labels = tesseract_peer.extract_fields(text)
    assert labels >= 8
    assert raw == {"id_number": "001087012345", "full_name": "NGUYỄN VĂN AN", "date_of_birth": "12/04/1987",
                   "sex": "Nam", "nationality": "Việt Nam", "place_of_origin": "Xã An Hải, Tỉnh Điện Biên",
                   "place_of_residence": "Số 1 Phố Huế, Phường Long Bình, Tỉnh Bắc Kạn", "date_of_expiry": "12/04/2027"}
    assert tesseract_peer.extract_fields("a photo of a desk\nnothing printed here")[1] < tesseract_peer.MIN_LABELS_FOR_CARD


def test_a_photo_is_accepted_only_when_read_without_a_capture_warning():
    def answer(status: str = "ok", *codes: str) -> Outcome:
        return Outcome({"status": status, "warnings": [{"code": c, "fields": [], "message": ""} for c in codes]})

    assert capture_verdict(answer()) == ACCEPTED
    assert capture_verdict(answer("ok", "card_expired", "read_by_card_rules")) == ACCEPTED  # about the card, not the photo
    assert capture_verdict(answer("ok", "glare")) == RETAKE
    assert capture_verdict(answer("ok", "blur", "small_card")) == RETAKE
    assert capture_verdict(answer("no_card")) == RETAKE
    assert capture_verdict(Outcome(None, error="image_too_small")) == RETAKE  # refused


def test_every_card_falls_in_one_bucket_per_condition():
    truth = {"card_type": "cccd_chip_2021", "measured": {"brightness": 90.0},
             "conditions": {"rotation": 271.5, "card_fill": 0.5, "blur": 1.0, "glare": True, "jpeg_quality": 60}}
    assert slices(truth) == {"card type": "cccd_chip_2021", "rotation": "270-360°", "blur": "blurred (σ>0)",
                             "glare": "glare", "low light": "low (card < 120 grey)", "small card": "small (fill < 0.6)",
                             "blur and size": "blurred (σ ≥ 1), small", "jpeg quality": "60-80"}


def test_trained_types_are_what_every_model_card_records(tmp_path):
    """Only nets trained on our cards count (the reader; the DB detector is PP-OCRv4 as shipped, the cropper has no net)."""
    cards = {"reader": {"data": {"train": {"card_types": ["cccd_2016", "cccd_chip_2021"]}}}, "older": {}}
    for net, card in cards.items():
        (tmp_path / f"{net}.metrics.json").write_text(json.dumps(card))
    assert TRAINED_NETS == ("reader",)
    assert trained_card_types(tmp_path) == ("cccd_chip_2021", "cccd_2016")  # in CARD_TYPES order
    by_model = card_types_by_model(tmp_path, ("reader", "older"))
    assert by_model["older"] == ("cccd_chip_2021",)  # a card without data: chip 2021 only
    assert common_card_types(by_model) == ("cccd_chip_2021",)
    assert set(trained_card_types()) <= set(CARD_TYPES)


def _quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """An upright line's corners TL, TR, BR, BL."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _turned(quad: np.ndarray, degrees: float, centre=(500.0, 500.0)) -> np.ndarray:
    t = np.radians(degrees)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]], np.float32)
    return (quad - centre) @ r.T + centre


def test_a_label_and_its_value_found_as_one_line_are_both_found():
    label, value = _quad(100, 100, 250, 120), _quad(260, 100, 290, 120)  # font bands: the ink is inside
    joined = _quad(95, 103, 295, 118)  # DB's box round both, hugging the ink
    assert match_lines([joined], [label, value]) == {0: [0, 1]}
    assert match_lines([np.roll(joined, 2, axis=0)], [label, value]) == {0: [1, 0]}  # read the other way up
    assert match_lines([_quad(98, 103, 252, 118), _quad(258, 103, 292, 118)], [label, value]) == {0: [0], 1: [1]}


def test_a_line_split_in_two_or_inside_a_box_spanning_the_card_is_not_found():
    line, other = _quad(100, 200, 400, 220), _quad(100, 260, 300, 280)
    assert match_lines([_quad(98, 203, 240, 218), _quad(260, 203, 402, 218)], [line]) == {}  # not found whole
    assert match_lines([_quad(0, 0, 1000, 600)], [line, other]) == {}  # holds both, finds neither
    # beside a good box the one spanning the card holds nothing: the good one is found, the big one is not
    assert match_lines([_quad(0, 0, 1000, 600), _quad(98, 203, 402, 218)], [line, other]) == {1: [0]}


def test_lines_of_a_turned_card_are_matched_as_polygons():
    """At 40° the axis-aligned boxes of two neighbouring lines overlap more than the lines do: polygons tell them apart."""
    upper, lower = _turned(_quad(200, 400, 800, 430), 40), _turned(_quad(200, 440, 800, 470), 40)
    found_lower, found_upper = _turned(_quad(195, 443, 805, 467), 40), _turned(_quad(195, 403, 805, 427), 40)
    assert match_lines([found_lower, found_upper], [upper, lower]) == {0: [1], 1: [0]}
    between = _turned(_quad(195, 420, 805, 450), 40)  # half of each: holds neither
    assert match_lines([between], [upper, lower]) == {}


def _truth() -> dict:
    fields = {f: "" for f in FIELDS} | {"sex": "Nữ", "id_number": "001087012345"}
    return {"card_type": "cccd_2016", "corners": [[0, 0], [1000, 0], [1000, 630], [0, 630]], "fields": fields,
            "lines": [{"field": "id_number", "text": "001087012345", "polygon": _quad(300, 100, 500, 130).tolist()},
                      {"field": "sex", "text": "Nữ", "polygon": _quad(260, 200, 290, 220).tolist()}],
            "labels": [{"text": "Số:", "polygon": _quad(200, 100, 260, 130).tolist()},
                       {"text": "Giới tính:", "polygon": _quad(100, 200, 250, 220).tolist()}]}


def _served(texts: list[str], quads: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    """A served answer: RESULT with the lines' texts, and LINE_META with a padding row."""
    meta = np.array([[*q.reshape(-1), 0.9] for q in quads] + [[0] * 8 + [-1]], np.float32)
    assert meta.shape[1] == LINE_META_COLUMNS
    result = {"status": "ok", "card_type": "cccd_2016", "corners": None, "line_texts": texts,
              "fields": {"sex": {"value": "Nữ", "confidence": 0.99},
                         "id_number": {"value": "001087012345", "confidence": 0.99}}}
    return result, meta


def test_line_figures_count_labels_and_read_joined_lines_against_their_texts():
    truth = _truth()
    # the ID with its label as one line, read right; the sex row as one line with a missing mark; a stray line on
    # the card; text of the scene beside it (off the card: neither right nor wrong)
    result, meta = _served(["Số: 001087012345", "Giới tinh: Nữ", "ỷ", "SALE 50%"],
                           [_quad(195, 103, 505, 127), _quad(95, 203, 295, 218), _quad(700, 500, 760, 520),
                            _quad(1100, 700, 1300, 740)])
    counts = line_counts(result, meta, truth)
    assert (counts["true"], counts["true_found"], counts["predicted"], counts["predicted_found"]) == (4, 4, 3, 2)
    chars = len("Số: 001087012345") + len("Giới tính: Nữ")
    assert (counts["edits"], counts["chars"], counts["read_right"]) == (1, chars, 1)

    item = Item(Path("cccd_2016/card_000.jpg"), truth, 0)
    ours = score([item], {item.name: Outcome(result, meta)})
    assert (ours["line_recall"], ours["line_precision"], ours["reader_line_accuracy"]) == (1.0, round(2 / 3, 4), 0.5)
    assert ours["reader_cer"] == round(1 / counts["chars"], 5)
    # another reader on our lines: its reading is scored, our detector's lines are not its figures
    peer = score([item], {item.name: Outcome(result, meta, detected_lines=False)})
    assert peer["line_recall"] is None and peer["line_precision"] is None and peer["reader_cer"] == ours["reader_cer"]
    # a card the pipeline did not find still counts its lines: a detector miss may be why
    lost = score([item], {item.name: Outcome(dict(result, status="no_card", fields={}), meta)})
    assert lost["card_found"] == 0.0 and lost["line_recall"] == 1.0


def test_tesseract_reads_the_ensembles_line_crops_and_our_linker_makes_the_card(monkeypatch):
    """The line-crop route with a perfect reader in Tesseract's place: the crops are the LINE_META lines cut from
    the photo at working size, in row order, and our linker and assembly make the fields of what was read."""
    sample = next(generate(1, 4300 + CARD_TYPES.index("cccd_2016"), "cccd_2016"))
    truth = sample.ground_truth()
    printed = truth["lines"] + truth["labels"]
    meta = np.array([[*np.asarray(p["polygon"], np.float32).reshape(-1), 0.9] for p in printed], np.float32)
    texts = iter(p["text"] for p in printed)

    def read(crop: np.ndarray) -> tuple[str, float]:
        assert crop.dtype == np.uint8 and crop.ndim == 2 and crop.shape[0] == reader.INPUT_H
        return next(texts), 0.99

    monkeypatch.setattr(tesseract_peer, "read_line", read)
    result = tesseract_peer.read_line_crops(sample.capture.jpeg, meta)
    assert next(texts, None) is None, "every line is read once"
    assert result["status"] == "ok" and result["card_type"] == "cccd_2016" and result["corners"] is None
    right = fields_right(result, truth)
    assert all(right[f] for f in ("id_number", "full_name", "date_of_birth", "sex", "nationality")), result["fields"]
    assert result["line_texts"] == [p["text"] for p in printed]


def test_line_crops_are_cut_where_the_photo_pixels_say_on_a_reduced_decode():
    """LINE_META is in the photo's own pixels; a photo over fvi.pipeline.WORK_MAX_SIDE is cut from its reduced decode."""
    photo = np.full((2400, 3200, 3), 255, np.uint8)
    photo[1200:1260, 2000:2600] = 0  # a black bar where a line would be
    data = encode_jpeg(photo)
    assert work_photo(data).scale[0] < 1
    bar, blank = tesseract_peer.line_crops(data, np.array([[*_quad(2000, 1200, 2600, 1260).reshape(-1), 0.9],
                                                           [*_quad(400, 400, 1000, 460).reshape(-1), 0.9],
                                                           [0] * 8 + [-1]], np.float32))
    middle = (slice(12, 20), slice(bar.shape[1] // 3, 2 * bar.shape[1] // 3))
    assert bar[middle].mean() < 40 and blank[middle].mean() > 215


def test_a_type_tested_alone_gets_the_photos_of_the_full_set(tmp_path):
    """Each type's folder is seeded by its place in CARD_TYPES, whichever types a run asks for."""
    items = ensure_test_set(tmp_path, 4300, 1, 0, ("can_cuoc_2024",))
    assert [i.truth["card_type"] for i in items] == ["can_cuoc_2024"]
    sample = next(generate(1, 4300 + CARD_TYPES.index("can_cuoc_2024"), "can_cuoc_2024"))
    assert items[0].path.read_bytes() == sample.capture.jpeg
    truth = items[0].truth
    assert truth["absent_fields"] == [f for f in FIELDS if f not in CARD_FIELDS["can_cuoc_2024"]]
    assert all(truth["fields"][f] == "" for f in truth["absent_fields"]) and truth["fields"]["id_number"]


def test_a_test_set_written_before_truth_had_labels_is_written_again(tmp_path):
    """The detector figures count the printed labels, so a set whose ground truth lacks them is stale."""
    item = ensure_test_set(tmp_path, 4300, 1, 0, ("cccd_2016",))[0]
    jpeg, stale = item.path.read_bytes(), dict(item.truth)
    del stale["labels"]
    item.path.with_suffix(".json").write_text(json.dumps(stale), encoding="utf-8")
    again = ensure_test_set(tmp_path, 4300, 1, 0, ("cccd_2016",))[0]
    assert again.truth["labels"] == item.truth["labels"] and again.path.read_bytes() == jpeg


def test_invented_word_cards_are_a_test_set_of_their_own(tmp_path):
    """`--invented-words`: the same cards' layout, IDs and dates, names no list holds, kept apart on disk."""
    listed = ensure_test_set(tmp_path, 4300, 1, 0, ("cccd_2016",))
    invented = ensure_test_set(tmp_path, 4300, 1, 0, ("cccd_2016",), invented_words=True)
    assert invented[0].path.parent.parent.name == "4300-invented" != listed[0].path.parent.parent.name
    a, b = listed[0].truth["fields"], invented[0].truth["fields"]
    assert a["id_number"] == b["id_number"] and a["full_name"] != b["full_name"]
