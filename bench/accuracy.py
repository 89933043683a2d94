"""End-to-end accuracy of the pipeline on held-out synthetic photographed cards.

Runs the in-process ReferencePipeline (identical to the served ensemble; tests check that) over
cards generated with a seed never used for training and reports exact match per field, whole-card
match and card-found rate. Every figure is on synthetic data.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from fvi.pipeline import ReferencePipeline
from fvi.schema import FIELDS, STATUS_OK
from fvi.synth.dataset import generate


def evaluate(cards: int, seed: int) -> dict:
    pipeline = ReferencePipeline()
    right = {f: 0 for f in FIELDS}
    whole = found = 0
    t0 = time.perf_counter()
    for s in tqdm(generate(cards, seed), total=cards, desc="cards", unit="card"):
        res = pipeline(s.capture.jpeg)
        if res.status != STATUS_OK:
            continue
        found += 1
        truth = s.identity.fields()
        ok = {f: res.fields[f].value == truth[f] for f in FIELDS}
        for f in FIELDS:
            right[f] += ok[f]
        whole += all(ok.values())
    return {
        "data": f"synthetic photographed cards, fvi.synth.dataset seed {seed} (never used for training)",
        "cards": cards,
        "card_found": round(found / cards, 4),
        "exact_match": {f: round(right[f] / cards, 4) for f in FIELDS},
        "whole_card_all_fields": round(whole / cards, 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cards", type=int, default=200)
    ap.add_argument("--seed", type=int, default=4243)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    a = ap.parse_args()
    r = evaluate(a.cards, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "accuracy.json").write_text(json.dumps(r, indent=1, ensure_ascii=False) + "\n")
    lines = ["# End-to-end accuracy (synthetic cards)", "", f"{r['data']}; {r['cards']} cards; "
             f"command: `python -m bench.accuracy --cards {a.cards} --seed {a.seed}`", "",
             "| field | exact match |", "|---|---|", *[f"| {f} | {v:.1%} |" for f, v in r["exact_match"].items()],
             f"| **whole card (all 8 fields)** | {r['whole_card_all_fields']:.1%} |", f"| card found | {r['card_found']:.1%} |", ""]
    (a.out / "accuracy.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
