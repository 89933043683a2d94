"""The synthetic card generator: deterministic, and its ground truth agrees with its own pixels."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from fvi.charset import CHARS, is_encodable
from fvi.geometry import CARD_H, CARD_W, warp_card
from fvi.schema import CARD_FIELDS, CARD_TYPES, FIELDS, TEMPLATE_DIR
from fvi.synth.card import CardRenderer, available_font_families, load_template
from fvi.synth.dataset import generate, load_ground_truth, write
from fvi.synth.dataset import main as dataset_main
from fvi.synth.domain import DOMAINS, HELD_OUT, TRAIN
from fvi.synth.identity import STRUCTURE_WORDS, HeldOutIdentityFactory, Identity, IdentityFactory, invent_words
from fvi.synth.syllables import old_tone_placement, syllable, tone_index


def test_same_seed_same_bytes(tmp_path):
    write(tmp_path / "a", 3, seed=11)
    write(tmp_path / "b", 3, seed=11)
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_ground_truth_is_complete(tmp_path):
    write(tmp_path, 2, seed=3)
    for image, gt in load_ground_truth(tmp_path):
        assert image.exists()
        assert set(gt["fields"]) == set(FIELDS)
        assert len(gt["corners"]) == 4
        w, h = gt["conditions"]["size"]
        for line in gt["lines"]:
            poly = np.array(line["polygon"])
            assert poly.shape == (4, 2) and (poly >= -1).all() and (poly[:, 0] <= w + 1).all() and (poly[:, 1] <= h + 1).all()
        # every field value is spelled out by its lines (residence may wrap over two)
        for name, value in gt["fields"].items():
            assert " ".join(l["text"] for l in gt["lines"] if l["field"] == name) == value
        json.dumps(gt)


def _title_is_up(sample) -> bool:
    """The red title is where the sample's template puts it, on the card warped by its labelled corners, rather
    than where a card turned by 180° would have it."""
    template = load_template(sample.card_type)
    title = max((s for s in template["static_text"] if "center" in s), key=lambda s: s["size"])
    (cx, cy), (w, h) = title["center"], template["size"]
    x, y = int(cx * CARD_W / w), int(cy * CARD_H / h)
    flat = warp_card(sample.capture.image, sample.capture.corners).astype(int)
    redness = flat[..., 0] - (flat[..., 1] + flat[..., 2]) // 2
    up = redness[y - 15 : y + 15, x - 100 : x + 100].mean()
    turned = redness[CARD_H - y - 15 : CARD_H - y + 15, CARD_W - x - 100 : CARD_W - x + 100].mean()
    return up > turned


def test_corners_follow_the_card_orientation():
    for s in generate(6, seed=21):
        assert _title_is_up(s), s.capture.conditions


# ------------------------------------------------------------------------------------ card types

CHIP_2021 = "cccd_chip_2021"
# A long name and the longest kind of address: the fields wrap and squeeze, and still fit their slots.
LONG_IDENTITY = Identity(
    "001234567890", "NGUYỄN HUỲNH THỊ PHƯƠNG QUỲNH ANH", "29/02/1996", "Nữ", "Việt Nam",
    "Xã Phước Hưng Đông, Huyện Châu Thành Đông, Tỉnh Bà Rịa - Vũng Tàu",
    "Số 123/45/6 Đường Nguyễn Thị Minh Khai, Phường Phước Long Bình, Thành phố Thủ Đức, Thành phố Hồ Chí Minh",
    "Không thời hạn")

# Fonts, Pillow/FreeType, numpy and OpenCV all shape rendered bytes, so pinned hashes are compared only where
# those are what they were when the hashes were taken (ENVIRONMENT).
ENVIRONMENT = "pillow 13.0.0 freetype 2.14.3 numpy 1.26.4 opencv 4.11.0 fonts fa9b4a5ec82f6fa3"


def _template_digest(card_type: str) -> str:
    return hashlib.sha256((TEMPLATE_DIR / f"{card_type}.json").read_bytes()).hexdigest()[:16]


def _environment() -> str:
    import cv2
    import PIL
    from PIL import features

    fonts = hashlib.sha256()
    for regular, bold in available_font_families():
        fonts.update(regular.read_bytes() + bold.read_bytes())
    return f"pillow {PIL.__version__} freetype {features.version('freetype2')} numpy {np.__version__} " \
           f"opencv {cv2.__version__} fonts {fonts.hexdigest()[:16]}"


def _card_sha256(card) -> str:
    h = hashlib.sha256(card.image.tobytes())
    h.update(json.dumps([(l.field, l.text, l.box) for l in card.lines]).encode())
    return h.hexdigest()


def test_card_fields_come_from_the_templates():
    assert CARD_TYPES == (CHIP_2021, "cccd_2016", "can_cuoc_2024")  # the detector's card_type output order
    assert CARD_FIELDS["cccd_chip_2021"] == FIELDS and CARD_FIELDS["cccd_2016"] == FIELDS
    assert CARD_FIELDS["can_cuoc_2024"] == ("id_number", "full_name", "date_of_birth", "sex", "nationality")
    for card_type in CARD_TYPES:
        assert load_template(card_type)["size"] == [1000, 630]  # the design canvas geometry relies on


@functools.cache
def _render_every_font(card_type: str) -> tuple:
    """The card with each font family and a couple of identities (one with the longest values)."""
    renderer = CardRenderer(card_type)
    families = renderer.fonts
    identities = IdentityFactory(77)
    cards = []
    for k, family in enumerate(families):
        renderer.fonts = [family]
        for j, identity in enumerate([LONG_IDENTITY, identities.make()]):
            cards.append(renderer.render(identity, np.random.default_rng(100 * k + j)))
    return tuple(cards)


def _artwork_boxes(template: dict) -> list[tuple[str, tuple]]:
    boxes = [("photo", tuple(template["photo"]["box"]))]
    if "qr" in template:
        boxes.append(("qr", tuple(template["qr"]["box"])))
    if "emblem" in template:
        (cx, cy), r = template["emblem"]["center"], template["emblem"]["radius"]
        boxes.append(("emblem", (cx - r, cy - r, cx + r, cy + r)))
    return boxes


def _overlap(a, b, slack_x: float = 0.0) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) + slack_x and min(a[3], b[3]) > max(a[1], b[1])


@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_every_field_of_the_type_is_printed_inside_the_card(card_type):
    w, h = load_template(card_type)["size"]
    for card in _render_every_font(card_type):
        assert card.image.shape == (h, w, 4) and card.card_type == card_type
        assert card.card_fields == tuple(f["field"] for f in load_template(card_type)["fields"])
        assert {l.field for l in card.lines} == set(CARD_FIELDS[card_type])
        values = card.identity.fields()
        for name in CARD_FIELDS[card_type]:
            assert " ".join(l.text for l in card.lines if l.field == name) == values[name], name
        for line in card.lines + card.labels:
            x0, y0, x1, y1 = line.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (line.text, line.box)


def _body(box) -> tuple[float, float, float, float]:
    """The band of a text box its letters' bodies fill: a font's box runs from its ascent to its descent, and on real
    cards a value's accents may reach into the label above it (shared/notes/real-card-layouts.md §1.3)."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    return x0, y0 + 0.35 * h, x1, y1 - 0.25 * h


@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_no_text_prints_over_other_text_or_the_artwork(card_type):
    artwork = _artwork_boxes(load_template(card_type))
    for card in _render_every_font(card_type):
        lines = [(f"{l.field}: {l.text}", _body(l.box)) for l in card.lines]
        labels = [(f"label {l.text}", _body(l.box)) for l in card.labels]
        pairs = [*itertools.combinations(lines, 2), *itertools.product(lines, labels + artwork),
                 *itertools.product(labels, artwork)]
        # a value may touch its label's colon, as on real cards (the notes' §1.3), give or take a font's side bearings
        clashes = [(a, b) for (a, ab), (b, bb) in pairs if _overlap(ab, bb, slack_x=0.015 * card.size[0])]
        assert not clashes, clashes


def test_the_2024_card_prints_no_origin_residence_or_expiry():
    for card in _render_every_font("can_cuoc_2024"):
        printed = {l.field for l in card.lines}
        assert not printed & {"place_of_origin", "place_of_residence", "date_of_expiry"}
        labels = " ".join(l.text for l in card.labels)
        assert "CĂN CƯỚC" in labels and "IDENTITY CARD" in labels and "CÔNG DÂN" not in labels
        assert "Quê quán" not in labels and "thường trú" not in labels and "giá trị" not in labels


def test_the_2016_card_has_vietnamese_only_labels():
    for card in _render_every_font("cccd_2016"):
        labels = [l.text for l in card.labels]
        assert "CĂN CƯỚC CÔNG DÂN" in labels and "Ngày, tháng, năm sinh:" in labels
        assert not any("/" in t or any(w in t for w in ("Name", "No.", "Sex", "Date", "Citizen")) for t in labels), labels


@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_same_seed_same_card(card_type):
    renderer = CardRenderer(card_type)
    a, b = (renderer.render(IdentityFactory(5).make(), np.random.default_rng(5)) for _ in range(2))
    assert _card_sha256(a) == _card_sha256(b)


@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_ground_truth_of_each_type(tmp_path, card_type):
    write(tmp_path, 2, seed=31, card_type=card_type)
    absent = [f for f in FIELDS if f not in CARD_FIELDS[card_type]]
    for image, gt in load_ground_truth(tmp_path):
        assert image.exists() and gt["card_type"] == card_type
        assert list(gt["fields"]) == list(FIELDS) and gt["absent_fields"] == absent
        for name, value in gt["fields"].items():
            printed = " ".join(l["text"] for l in gt["lines"] if l["field"] == name)
            assert printed == value and (value == "") == (name in absent), name
    if card_type == "can_cuoc_2024":
        assert absent == ["place_of_origin", "place_of_residence", "date_of_expiry"]


def test_mixed_sets_draw_the_type_per_card_with_the_seed(tmp_path):
    samples = list(generate(6, seed=7, card_type="mixed"))
    types = [s.card_type for s in samples]
    assert set(types) == set(CARD_TYPES), types
    assert [s.capture.jpeg for s in generate(2, seed=7, card_type="mixed")] == [s.capture.jpeg for s in samples[:2]]
    chosen = {s.card_type for s in generate(4, seed=5, card_types=["cccd_2016", "can_cuoc_2024"])}
    assert chosen <= {"cccd_2016", "can_cuoc_2024"}
    # a one-type list is the same set as that type alone
    one = [s.capture.jpeg for s in generate(2, seed=6, card_types=["cccd_2016"])]
    assert one == [s.capture.jpeg for s in generate(2, seed=6, card_type="cccd_2016")]
    with pytest.raises(ValueError):
        next(generate(1, seed=1, card_type="passport"))
    dataset_main(["--out", str(tmp_path), "--count", "3", "--seed", "7", "--card-type", "mixed"])
    written = load_ground_truth(tmp_path)
    assert [gt["card_type"] for _, gt in written] == types[:3]
    assert [image.read_bytes() for image, _ in written] == [s.capture.jpeg for s in samples[:3]]


@pytest.mark.parametrize("card_type", [t for t in CARD_TYPES if t != CHIP_2021])
def test_new_types_are_upright_by_their_red_title(card_type):
    """As test_corners_follow_the_card_orientation: the red title sits at the top of every type."""
    for s in generate(3, seed=22, card_type=card_type):
        assert _title_is_up(s), s.capture.conditions


# ---------------------------------------------------------------- capture styles (fvi.synth.photo)

def test_the_mild_style_is_what_generate_always_made():
    from fvi.synth.photo import MILD

    default, mild = next(generate(1, seed=31)), next(generate(1, seed=31, style=MILD))
    assert default.capture.jpeg == mild.capture.jpeg
    assert set(default.capture.conditions) == {"rotation", "card_fill", "blur", "glare", "jpeg_quality", "size"}


def test_the_wild_style_spans_what_phones_do_to_a_capture():
    from fvi.geometry import quad_is_plausible
    from fvi.synth.photo import WILD

    samples = list(generate(40, seed=32, card_type="mixed", style=WILD))
    c = [s.capture.conditions for s in samples]
    assert max(x["tilt_deg"] for x in c) > 25 and max(x["tilt_deg"] for x in c) <= WILD.max_tilt_deg
    assert min(x["card_fill"] for x in c) < 0.35
    assert min(x["jpeg_quality"] for x in c) < 40
    for key in ("motion_blur_px", "low_light", "occluded"):
        assert any(x[key] for x in c) and not all(x[key] for x in c), key
    for s in samples:  # the ground truth still describes the photo: the card inside the frame, lines on it
        h, w = s.capture.image.shape[:2]
        assert quad_is_plausible(s.capture.corners, (h, w), min_area_frac=0.002)
        assert (s.capture.corners >= 0).all() and (s.capture.corners[:, 0] < w).all() and (s.capture.corners[:, 1] < h).all()
        assert len({l.field for l in s.capture.lines}) == len(CARD_FIELDS[s.card_type])


def test_wallpapers_serve_as_photographic_backgrounds_when_installed(tmp_path, monkeypatch):
    import cv2

    from fvi.synth import photo

    rng = np.random.default_rng(0)
    monkeypatch.setattr(photo, "WALLPAPER_DIRS", [tmp_path / "none"])
    photo.wallpapers.cache_clear()
    assert photo.photo_background(320, 240, rng) is None  # nothing installed: callers fall back to procedural
    (tmp_path / "w").mkdir()
    cv2.imwrite(str(tmp_path / "w" / "sunset.jpg"), np.full((300, 500, 3), (30, 90, 200), np.uint8))
    monkeypatch.setattr(photo, "WALLPAPER_DIRS", [tmp_path / "w"])
    photo.wallpapers.cache_clear()
    try:
        bg = photo.photo_background(640, 480, rng)
        assert bg.shape == (480, 640, 3) and bg.dtype == np.float32
        assert np.allclose(bg.reshape(-1, 3).mean(0), (200, 90, 30), atol=2)  # RGB of the BGR file
        wild = photo.CaptureStyle(name="wallpapers", wallpaper=1.0)
        cap = next(generate(1, seed=33, style=wild)).capture
        assert cap.conditions["photo_background"]
    finally:
        photo.wallpapers.cache_clear()


def test_training_and_evaluation_photos_lie_on_different_wallpapers(tmp_path, monkeypatch):
    import cv2

    from bench.evaluate import evaluation_style
    from fvi.synth import photo

    (tmp_path / "w").mkdir()
    for i in range(7):
        cv2.imwrite(str(tmp_path / "w" / f"paper{i}.png"), np.full((40, 60, 3), i * 30, np.uint8))
    monkeypatch.setattr(photo, "WALLPAPER_DIRS", [tmp_path / "w"])
    photo.wallpapers.cache_clear()
    try:
        train, held_out = set(photo.wallpapers("train")), set(photo.wallpapers("held_out"))
        assert train and held_out and not train & held_out and train | held_out == set(photo.wallpapers())
        with pytest.raises(ValueError, match="expected one of all, train, held_out"):
            photo.wallpapers("some")
    finally:
        photo.wallpapers.cache_clear()
    from training.make_data import Share

    wild_training = Share(seed=1, count=1, card_types=("cccd_2016",), capture="wild")
    assert evaluation_style("wild").wallpaper_set == "held_out" and wild_training.style.wallpaper_set == "train"
    assert evaluation_style("mild") == photo.MILD  # no wallpapers: byte-identical to earlier sets


# ------------------------------------------------------------- reader training data (training.make_data)

def _printed(polygon, text: str, field: str = ""):
    from fvi.synth.photo import PlacedLine

    x0, y0, x1, y1 = polygon
    return PlacedLine(field, text, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32))


def test_a_detected_line_gets_the_text_of_the_printed_pieces_it_holds_whole():
    from fvi.text_detector import Line
    from training.make_data import MIN_SOURCE_LINE_PX, detected_line_texts

    printed = [_printed((100, 100, 160, 130), "Số"), _printed((170, 100, 300, 130), "/ No.:"),
               _printed((320, 95, 600, 135), "001234567890", "id_number"),
               _printed((100, 200, 400, 230), "Họ và tên / Full name:"), _printed((100, 236, 380, 270), "NGUYỄN AN"),
               _printed((100, 400, 100 + MIN_SOURCE_LINE_PX * 8, 400 + MIN_SOURCE_LINE_PX - 1), "Nam", "sex")]

    def line(x0, y0, x1, y1) -> Line:
        return Line(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32), 0.9)

    found = detected_line_texts([line(95, 96, 305, 134),  # two pieces of one row, whole: joined left to right
                                 line(315, 90, 605, 140),  # one piece
                                 line(95, 196, 250, 232),  # half a piece: the detector cut it, no sure text
                                 line(95, 196, 405, 272),  # two rows
                                 line(50, 500, 300, 540),  # nothing printed there
                                 line(95, 396, 170, 410)], printed, 0.0)  # too small in the photo to read
    assert [t for _, t in found] == ["Số / No.:", "001234567890"]
    # rows and reading order follow the card's reading direction: the same card turned by 90°
    turn = np.array([[0, -1], [1, 0]], np.float32)
    for p in printed:
        p.polygon = p.polygon @ turn.T
    turned = detected_line_texts([Line(line(95, 96, 305, 134).quad @ turn.T, 0.9)], printed, np.pi / 2)
    assert [t for _, t in turned] == ["Số / No.:"]


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "models" / "detector.onnx").exists(),
                    reason="needs the served text detector, models/detector.onnx")
def test_reader_crops_of_detected_lines_hold_exactly_the_printed_pieces_they_cover():
    """On photographed cards, with the served detector: every crop kept is a row of whole printed pieces, its
    text theirs in reading order; the cut and the partly covered pieces are left out."""
    import cv2

    from fvi import text_detector
    from training.make_data import MIN_SOURCE_LINE_PX, _run_detector, detected_line_texts, source_line_height

    kept = 0
    for s in generate(2, seed=43, card_type="mixed"):
        cap = s.capture
        tl, tr = cap.corners[0], cap.corners[1]
        angle = float(np.arctan2(tr[1] - tl[1], tr[0] - tl[0]))
        printed = cap.lines + cap.labels
        u = np.array([np.cos(angle), np.sin(angle)])
        for quad, text in detected_line_texts(text_detector.find_lines(cap.image, _run_detector), printed, angle):
            inside = [p for p in printed if cv2.pointPolygonTest(quad.astype(np.float32), tuple(map(float, p.polygon.mean(0))), False) >= 0]
            inside.sort(key=lambda p: float(p.polygon.mean(0) @ u))
            assert text == " ".join(p.text for p in inside), (text, [p.text for p in inside])
            assert all(source_line_height(p.polygon) >= MIN_SOURCE_LINE_PX for p in inside)
            kept += 1
    assert kept >= 10


def make_data(out, seed: int, *args: str) -> dict:
    """Runs `python -m training.make_data` into `out` as a user would; returns its record of every file it made."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "training.make_data", "--seed", str(seed), "--workers", "1",
                    "--out", str(out), *args], check=True, capture_output=True)
    return json.loads((out / "train.make_data.json").read_text())


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "models" / "detector.onnx").exists(),
                    reason="needs the served text detector, models/detector.onnx")
def test_a_further_batch_of_detected_card_lines_lands_beside_the_first_with_its_command_recorded(tmp_path):
    only = ["--lines", "0", "--capture", "mild", "--card-types", "mixed", "--reader-det", "2"]
    make_data(tmp_path, 5, *only)
    made = make_data(tmp_path, 6, *only, "--tag", "b")
    first, further = (np.load(tmp_path / f"reader_{k}_train.npz") for k in ("det-mild", "det-mild-b"))
    assert len(first["texts"]) and len(further["texts"]) and set(first["texts"]) != set(further["texts"])
    assert first["images"].shape[1:] == further["images"].shape[1:] and (first["widths"] > 0).all()
    assert "--seed 6" in made["reader_det-mild-b_train.npz"]["command"]
    assert "--seed 5" in made["reader_det-mild_train.npz"]["command"]  # the first batch's record is kept
    assert set(made) == {"reader_det-mild_train.npz", "reader_det-mild-b_train.npz"}


def test_a_further_batch_of_rendered_lines_lands_beside_the_first_with_its_command_recorded(tmp_path):
    only = ["--lines", "4"]
    make_data(tmp_path, 5, *only)
    made = make_data(tmp_path, 6, *only, "--lines-tag", "e")
    first, further = (np.load(tmp_path / f"reader_{k}_train.npz") for k in ("lines", "lines-e"))
    assert len(first["texts"]) == len(further["texts"]) == 4 and set(first["texts"]) != set(further["texts"])
    assert "--seed 6" in made["reader_lines-e_train.npz"]["command"]
    assert "--seed 5" in made["reader_lines_train.npz"]["command"]  # the first batch's record is kept


@pytest.mark.parametrize("retired", ["--flat", "--cropper", "--cropper-refine", "--cropper-tag", "--reader-cards",
                                     "--reader-cards-tag"])
def test_the_retired_training_modes_are_refused(tmp_path, retired):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "training.make_data", "--out", str(tmp_path), retired, "0"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "unrecognized arguments" in run.stderr and not list(tmp_path.iterdir())


def test_invented_words_keep_the_card_and_drop_the_name_lists():
    """Cards for testing (and training) the reader on names no list holds: same layout, same ID rules."""
    listed, invented = IdentityFactory(5), IdentityFactory(5, invented_words=True)
    for _ in range(20):
        a, b = listed.make(), invented.make()
        assert (a.id_number, a.date_of_birth, a.sex, a.date_of_expiry) == (b.id_number, b.date_of_birth, b.sex, b.date_of_expiry)
        assert b.full_name == b.full_name.upper() and b.full_name != a.full_name
        for field in ("place_of_origin", "place_of_residence"):
            # the province (what the card guarantees) and the words that say what a part is stay
            assert b.__dict__[field].rsplit(", ", 1)[1] == a.__dict__[field].rsplit(", ", 1)[1]
            words_a, words_b = a.__dict__[field].split(" "), b.__dict__[field].split(" ")
            assert len(words_a) == len(words_b) and words_a != words_b
            assert all(wb == wa for wa, wb in zip(words_a, words_b) if wa.rstrip(",") in STRUCTURE_WORDS)
        assert all(is_encodable(v) for v in b.fields().values())
    assert IdentityFactory(9, invented_words=True).make() == IdentityFactory(9, invented_words=True).make()


def test_invented_words_are_syllables_in_the_case_of_the_word_they_replace():
    rng = np.random.default_rng(0)
    out = invent_words("Số 9 Đường Đinh Bộ Lĩnh, Phường An Phú, Thành phố Vinh", rng)
    words = out.replace(",", "").split(" ")
    assert words[:3] == ["Số", "9", "Đường"] and words[6:7] == ["Phường"] and words[9:11] == ["Thành", "phố"]
    assert all(w[0].isupper() for w in words[3:6] + words[7:9] + words[11:])
    assert out.count(",") == 2 and unicodedata.is_normalized("NFC", out)
    assert invent_words("NGUYỄN VĂN AN", rng, keep=frozenset()).isupper()
    # every syllable spells a tone where Vietnamese puts it, and stays inside the reader's charset
    sample = {syllable(rng) for _ in range(3000)}
    assert all(is_encodable(s) for s in sample) and len(sample) > 2000
    assert tone_index("oa") == 0 and tone_index("oan") == 1 and tone_index("ươn") == 1 and tone_index("uyên") == 2


# ------------------------------------------------------------------------- fonts (fvi.synth.fonts)

def test_the_font_catalogue_has_twenty_vietnamese_complete_families_split_once():
    from fvi.synth.fonts import CATALOGUE, HELD_OUT_FAMILIES, KINDS, TRAIN_FAMILIES, installed

    assert len(CATALOGUE) >= 20 and sum(installed(f) for f in CATALOGUE.values()) >= 20, "make setup installs them"
    assert not set(TRAIN_FAMILIES) & set(HELD_OUT_FAMILIES) and set(TRAIN_FAMILIES) | set(HELD_OUT_FAMILIES) == set(CATALOGUE)
    assert len(HELD_OUT_FAMILIES) >= 8 and all(f.kind in KINDS for f in CATALOGUE.values())
    for split in (TRAIN_FAMILIES, HELD_OUT_FAMILIES):
        assert {"sans", "serif", "condensed"} <= {CATALOGUE[n].kind for n in split}
    assert set(TRAIN.fonts) <= set(TRAIN_FAMILIES) and set(HELD_OUT.fonts) | set(HELD_OUT.header_fonts) <= set(HELD_OUT_FAMILIES)
    assert TRAIN.fonts == ("DejaVu Sans", "Noto Sans", "Liberation Sans", "FreeSans", "Roboto")  # the renderer's five


def test_every_installed_catalogue_face_spells_every_character_of_the_alphabet():
    from fvi.synth.fonts import CATALOGUE, face_path, font_files, installed, missing_chars

    missing = {f: "".join(missing_chars(font_files()[f])) for fam in CATALOGUE.values() if installed(fam)
               for f in fam.files()}
    assert not {f: m for f, m in missing.items() if m}
    mono = font_files().get("DejaVuSansMono.ttf")  # left out of the catalogue: the check sees what it lacks
    assert mono is None or "ẩ" in missing_chars(mono, CHARS)
    # a face a family lacks falls back to the nearest it has
    gentium = CATALOGUE["Gentium"]
    assert face_path(gentium, "bold") == face_path(gentium, "regular") and gentium.file("bold_italic") == gentium.italic


# ------------------------------------------------------------------- render domains (fvi.synth.domain)

# sha256 of the train domain's card and its line and label boxes for rng and identity seed 12, per card type and
# template (the first 16 hex digits of its file's sha256): the renderer as it was before render domains existed
# (commit d7ebfca), on the templates of that commit and on the measured ones that replaced them
TRAIN_CARD_SHA256 = {
    "cccd_chip_2021": {"b8578b8fcd44dc50": "5319b5696096a2667936c1d88ab25fe87cfa8e12be783ed4016daf18026fc717",
                       "c671ba4f8ff32a1c": "0516a43bb9a9d73e40f0994fa9f89f8a017cac4e79fade8c3e2a8fa092afbbc2"},
    "cccd_2016": {"2b5e42cba021abdd": "4ae1666c175eeae3be747201143bde94ac12fa43bc11871407f9dba56bf89855",
                  "51a20fde258828bf": "98cae6a55bb2aa73cf3081fc09638999cc571962bed7743f891e461acd3e8fd0"},
    "can_cuoc_2024": {"c4647f6374b340ac": "b72354f5247e375d1b4900959ffc0ebbcbf7cf30ca5092b3c84b1c07e5159391",
                      "f462a7f5ae6dc982": "b71e2f751d95ed17c9322b241c4e2c18b930f55f20b437c3ee6ed48afe91d87b"},
}


def _boxes_sha256(card) -> str:
    h = hashlib.sha256(card.image.tobytes())
    h.update(json.dumps([(l.field, l.text, l.box) for l in card.lines + card.labels]).encode())
    return h.hexdigest()


@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_the_train_domain_renders_as_before_render_domains(card_type):
    if _environment() != ENVIRONMENT:
        pytest.skip(f"fonts or imaging libraries differ from those the hashes were taken with: {_environment()}")
    expected = TRAIN_CARD_SHA256[card_type].get(_template_digest(card_type))
    if expected is None:
        pytest.skip(f"{card_type}.json is neither template the hashes were taken with")
    for renderer in (CardRenderer(card_type), CardRenderer(card_type, TRAIN)):
        card = renderer.render(IdentityFactory(12).make(), np.random.default_rng(12))
        assert _boxes_sha256(card) == expected and card.domain == "train" and card.fonts[0] in TRAIN.fonts
    default, train = next(generate(1, seed=12, card_type=card_type)), next(generate(1, seed=12, card_type=card_type, domain=TRAIN))
    assert default.capture.jpeg == train.capture.jpeg and default.ground_truth()["domain"] == "train"


# held-out places come from the gazetteer package (fvi.synth.gazetteer)
needs_gazetteer = pytest.mark.skipif(importlib.util.find_spec("vietnam_provinces") is None,
                                     reason="held-out identities need the vietnam-provinces package")


def _has_ink(image: np.ndarray, box) -> bool:
    """Some of the box is clearly darker than most of it: printed strokes, not bare background."""
    grey = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = grey[y0:y1, x0:x1]
    return region.size > 0 and (region < np.median(region) - 40).mean() > 0.03


@functools.cache
def _held_out_cards(card_type: str) -> tuple:
    renderer = CardRenderer(card_type, HELD_OUT)
    ids = HeldOutIdentityFactory(8)
    return tuple(renderer.render(ids.make(), np.random.default_rng(k)) for k in range(3))


@needs_gazetteer
@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_a_held_out_card_prints_every_field_in_held_out_fonts_with_ink_in_every_box(card_type):
    from fvi.synth.fonts import HELD_OUT_FAMILIES

    w, h = load_template(card_type)["size"]
    for card in _held_out_cards(card_type):
        assert card.image.shape == (h, w, 4) and card.domain == "held_out" and set(card.fonts) <= set(HELD_OUT_FAMILIES)
        assert {l.field for l in card.lines} == set(CARD_FIELDS[card_type])
        assert [l.text for l in card.labels] == [s["text"] for s in load_template(card_type)["static_text"]]
        for line in card.lines + card.labels:
            x0, y0, x1, y1 = line.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (line.text, line.box)
            assert _has_ink(card.image, line.box), (line.field, line.text)
        values = card.identity.fields()
        for name in CARD_FIELDS[card_type]:  # what is printed, but the comma a wrapped address drops at its break
            printed = " ".join(l.text for l in card.lines if l.field == name)
            assert printed.replace(",", "").split() == values[name].replace(",", "").split(), name


@needs_gazetteer
@pytest.mark.parametrize("card_type", CARD_TYPES)
def test_a_held_out_card_is_its_own_for_a_seed(card_type):
    renderer, train = CardRenderer(card_type, HELD_OUT), CardRenderer(card_type)
    identity = HeldOutIdentityFactory(3).make()
    a, b = (renderer.render(identity, np.random.default_rng(3)) for _ in range(2))
    assert _boxes_sha256(a) == _boxes_sha256(b)
    other = train.render(identity, np.random.default_rng(3))
    assert _boxes_sha256(other) != _boxes_sha256(a) and other.fonts[0] in TRAIN.fonts
    assert [l.box for l in other.labels] != [l.box for l in a.labels]


@needs_gazetteer
def test_held_out_sets_record_their_domain_and_keep_the_capture(tmp_path):
    dataset_main(["--out", str(tmp_path), "--count", "2", "--seed", "9", "--card-type", "mixed", "--domain", "held_out"])
    written = load_ground_truth(tmp_path)
    samples = list(generate(2, seed=9, card_type="mixed", domain=HELD_OUT))
    assert [gt["domain"] for _, gt in written] == ["held_out", "held_out"]
    assert [image.read_bytes() for image, _ in written] == [s.capture.jpeg for s in samples]
    for (_, gt), s in zip(written, samples):
        assert gt["fields"] == s.fields() and gt["labels"] and gt["lines"] and gt["card_type"] == s.card_type
    assert [s.capture.jpeg for s in generate(1, seed=9, card_type="mixed")] != [samples[0].capture.jpeg]
    with pytest.raises(ValueError, match="draws its own words"):
        next(generate(1, seed=9, domain=HELD_OUT, invented_words=True))
    assert set(DOMAINS) == {"train", "held_out"}


@needs_gazetteer
def test_held_out_identities_keep_the_rules_and_print_places_as_the_cards_do():
    """Real communes, districts and provinces, bare as chip cards print them; names from a general word list; the ID
    number, sex and dates by the real rules."""
    from fvi.synth.identity import held_out_words
    from fvi.validate import birth_year_of_id, parse_date, sex_of_id

    ids, listed = HeldOutIdentityFactory(11), IdentityFactory(11)
    made = [ids.make() for _ in range(150)]
    words = set(held_out_words())
    typed = two_level = 0
    for i in made:
        assert all(is_encodable(v) for v in i.fields().values())
        assert sex_of_id(i.id_number) == i.sex and birth_year_of_id(i.id_number) == parse_date(i.date_of_birth).year
        assert i.full_name.isupper() and len(i.full_name.split()) in (3, 4)
        assert all(w.lower() in words or w in ("THỊ", "VĂN") for w in i.full_name.split())
        residence = i.place_of_residence.split(", ")
        assert len(residence) in (3, 4) and all(residence)
        for part in residence[1:] + i.place_of_origin.split(", "):
            assert not re.match(r"(Xã|Huyện|Tỉnh|Quận|TP\.|P\.) ", part), part
        typed += bool(re.search(r"(Thành phố|Thị xã|Thị trấn|Phường \d)", i.place_of_residence))
        two_level += len(residence) == 3
    assert 0.2 < typed / len(made) < 0.5 and 0.05 < two_level / len(made) < 0.4
    assert not {i.full_name for i in made} & {listed.make().full_name for _ in range(150)}
    assert HeldOutIdentityFactory(11).make() == made[0]
    assert old_tone_placement("hoà") == "hòa" and old_tone_placement("THUỶ") == "THỦY" and old_tone_placement("quý") == "quý"
