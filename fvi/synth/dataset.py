"""Write a labelled set of photographed synthetic cards: <id>.jpg + <id>.json (ground truth).

Deterministic for a seed: the same seed writes byte-identical files. Every card type of
fvi.schema.CARD_TYPES can be rendered; `--card-type mixed` draws the type of each card with the seed.
`--domain held_out` draws them in the render domain no training data used (fvi.synth.domain).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from fvi.schema import CARD_FIELDS, CARD_TYPES, FIELDS
from fvi.synth.card import CardRenderer
from fvi.synth.domain import DOMAINS, TRAIN, RenderDomain
from fvi.synth.identity import HeldOutIdentityFactory, Identity, IdentityFactory
from fvi.synth.photo import CAPTURE_STYLES, MILD, Capture, CaptureStyle, photograph


def _points(a: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in np.asarray(a).reshape(-1, 2)]


MIXED = "mixed"  # card_type that draws every card's type from all of CARD_TYPES


@dataclass
class Sample:
    name: str
    capture: Capture
    identity: Identity  # every field, also those the card type does not print
    card_type: str
    domain: str = TRAIN.name  # the render domain it was drawn in (fvi.synth.domain)

    @property
    def absent_fields(self) -> list[str]:
        """Fields this card type does not print on its front (their ground truth is "")."""
        return [f for f in FIELDS if f not in CARD_FIELDS[self.card_type]]

    def fields(self) -> dict[str, str]:
        """The ground-truth value of every field of FIELDS as the card shows it: "" when not printed."""
        absent = set(self.absent_fields)
        return {k: "" if k in absent else v for k, v in self.identity.fields().items()}

    def ground_truth(self) -> dict:
        return {
            "image": f"{self.name}.jpg",
            "card_type": self.card_type,
            "domain": self.domain,
            "corners": _points(self.capture.corners),
            "corner_order": ["top_left", "top_right", "bottom_right", "bottom_left"],
            "lines": [{"field": l.field, "text": l.text, "polygon": _points(l.polygon)} for l in self.capture.lines],
            "labels": [{"text": l.text, "polygon": _points(l.polygon)} for l in self.capture.labels],
            "fields": self.fields(),
            "absent_fields": self.absent_fields,
            "conditions": self.capture.conditions,
        }


def resolve_card_types(card_type: str = CARD_TYPES[0], card_types: Sequence[str] | None = None) -> tuple[str, ...]:
    """The types to draw from: card_types if given, all of CARD_TYPES for "mixed", else card_type alone."""
    types = tuple(card_types) if card_types else (CARD_TYPES if card_type == MIXED else (card_type,))
    unknown = [t for t in types if t not in CARD_TYPES]
    if unknown or not types:
        raise ValueError(f"unknown card type(s) {unknown}: choose from {', '.join(CARD_TYPES)} or {MIXED}")
    return types


class TypedRenderers:
    """One CardRenderer per card type, all in one render domain; pick() draws a type per card with the caller's rng.

    With a single type nothing is drawn, so a one-type set is the same as before types could mix."""

    def __init__(self, types: Sequence[str], domain: RenderDomain = TRAIN) -> None:
        self.types = tuple(types)
        self.renderers = {t: CardRenderer(t, domain) for t in self.types}

    def pick(self, rng: np.random.Generator) -> CardRenderer:
        if len(self.types) == 1:
            return self.renderers[self.types[0]]
        return self.renderers[self.types[int(rng.integers(len(self.types)))]]


def identity_factory(seed: int, invented_words: bool = False, domain: RenderDomain = TRAIN) -> IdentityFactory:
    """The domain's identities: the name lists (their words invented if asked), or the held-out sources."""
    if domain.identities == "held_out":
        if invented_words:
            raise ValueError(f"the {domain.name} domain draws its own words: invented_words does not apply")
        return HeldOutIdentityFactory(seed)
    return IdentityFactory(seed, invented_words)


def generate(count: int, seed: int, card_type: str = CARD_TYPES[0], card_types: Sequence[str] | None = None,
             style: CaptureStyle = MILD, invented_words: bool = False, domain: RenderDomain = TRAIN) -> Iterator[Sample]:
    """`count` photographed cards of `card_type` ("mixed": any of CARD_TYPES), or of a type drawn per card
    from `card_types`, captured in `style` (fvi.synth.photo), their names and places from the name lists or
    invented (fvi.synth.identity.invent_words), drawn in the render `domain` (fvi.synth.domain: TRAIN, what
    every training set used, or HELD_OUT, which brings its own values). The same arguments give the same samples."""
    rng = np.random.default_rng(seed)
    ids = identity_factory(seed, invented_words, domain)
    renderers = TypedRenderers(resolve_card_types(card_type, card_types), domain)
    for i in range(count):
        identity = ids.make()
        renderer = renderers.pick(rng)
        yield Sample(f"{seed:04d}_{i:05d}", photograph(renderer.render(identity, rng), rng, style=style), identity,
                     renderer.card_type, domain.name)


def load_ground_truth(folder: Path) -> list[tuple[Path, dict]]:
    return [(p.with_suffix(".jpg"), json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]


def write(out: Path, count: int, seed: int, card_type: str = CARD_TYPES[0], card_types: Sequence[str] | None = None,
          style: CaptureStyle = MILD, invented_words: bool = False, domain: RenderDomain = TRAIN) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for s in tqdm(generate(count, seed, card_type, card_types, style, invented_words, domain), total=count,
                  desc=f"cards → {out}", unit="card"):
        (out / f"{s.name}.jpg").write_bytes(s.capture.jpeg)
        (out / f"{s.name}.json").write_text(json.dumps(s.ground_truth(), ensure_ascii=False, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--card-type", default=CARD_TYPES[0], choices=[*CARD_TYPES, MIXED],
                    help=f"card type to render, or {MIXED} (each card's type drawn with the seed); default %(default)s")
    ap.add_argument("--card-types", type=lambda v: [t for t in v.split(",") if t],
                    help="comma-separated types to draw from per card (overrides --card-type)")
    ap.add_argument("--capture", default=MILD.name, choices=sorted(CAPTURE_STYLES),
                    help="capture style: mild (what the committed models know) or wild (issue 3's range); default %(default)s")
    ap.add_argument("--invented-words", action="store_true",
                    help="names, streets, communes and districts of random syllables instead of the name lists' words")
    ap.add_argument("--domain", default=TRAIN.name, choices=list(DOMAINS),
                    help="render domain (fvi.synth.domain): train (what every training set used) or held_out (fonts, "
                         "layout, inks and values no training data used); default %(default)s")
    a = ap.parse_args(argv)
    try:
        types = resolve_card_types(a.card_type, a.card_types)
    except ValueError as e:
        ap.error(str(e))
    if a.invented_words and DOMAINS[a.domain].identities == "held_out":
        ap.error(f"--invented-words: the {a.domain} domain draws its own words")
    write(a.out, a.count, a.seed, card_types=types, style=CAPTURE_STYLES[a.capture], invented_words=a.invented_words,
          domain=DOMAINS[a.domain])


if __name__ == "__main__":
    main()
