"""Write a labelled set of photographed synthetic cards: <id>.jpg + <id>.json (ground truth).

Deterministic for a seed: the same seed writes byte-identical files.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from fvi.synth.card import CardRenderer
from fvi.synth.identity import Identity, IdentityFactory
from fvi.synth.photo import Capture, photograph


def _points(a: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in np.asarray(a).reshape(-1, 2)]


@dataclass
class Sample:
    name: str
    capture: Capture
    identity: Identity
    card_type: str

    def ground_truth(self) -> dict:
        return {
            "image": f"{self.name}.jpg",
            "card_type": self.card_type,
            "corners": _points(self.capture.corners),
            "corner_order": ["top_left", "top_right", "bottom_right", "bottom_left"],
            "lines": [{"field": l.field, "text": l.text, "polygon": _points(l.polygon)} for l in self.capture.lines],
            "fields": self.identity.fields(),
            "conditions": self.capture.conditions,
        }


def generate(count: int, seed: int, card_type: str = "cccd_chip_2021") -> Iterator[Sample]:
    rng = np.random.default_rng(seed)
    ids, renderer = IdentityFactory(seed), CardRenderer(card_type)
    for i in range(count):
        identity = ids.make()
        yield Sample(f"{seed:04d}_{i:05d}", photograph(renderer.render(identity, rng), rng), identity, card_type)


def load_ground_truth(folder: Path) -> list[tuple[Path, dict]]:
    return [(p.with_suffix(".jpg"), json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]


def write(out: Path, count: int, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for s in tqdm(generate(count, seed), total=count, desc=f"cards → {out}", unit="card"):
        (out / f"{s.name}.jpg").write_bytes(s.capture.jpeg)
        (out / f"{s.name}.json").write_text(json.dumps(s.ground_truth(), ensure_ascii=False, indent=1), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    write(a.out, a.count, a.seed)


if __name__ == "__main__":
    main()
