"""The synthetic card generator: deterministic, and its ground truth agrees with its own pixels."""
from __future__ import annotations

import json

import numpy as np

from fvi.geometry import warp_card
from fvi.schema import FIELDS
from fvi.synth.dataset import generate, load_ground_truth, write


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


def test_corners_follow_the_card_orientation():
    """Warping by the labelled corners gives an upright card: the red title is where the template puts it,
    not where a card turned by 180° would have it."""
    for s in generate(6, seed=21):
        flat = warp_card(s.capture.image, s.capture.corners).astype(int)
        redness = flat[..., 0] - (flat[..., 1] + flat[..., 2]) // 2
        title = redness[85:115, 300:500].mean()  # "CĂN CƯỚC CÔNG DÂN" at design y≈126 of 630
        turned = redness[504 - 115 : 504 - 85, 300:500].mean()
        assert title > turned, s.capture.conditions
