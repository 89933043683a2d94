"""Two evaluation runs of the same test set, photo by photo: what the second fixed, what it broke, and whether
the difference is more than chance.

    python -m bench.compare reports_before/eval.json reports/eval.json [--out compare.md] [--list 10]

Two runs of 1,500 cards whose whole-card shares differ by half a point may differ by 20 cards fixed and 12
broken, or by 8 fixed and 0 broken; only the second is a change. Each figure is compared on the photos both runs
read (bench.evaluate's per-photo outcomes of the served ensemble), with the exact two-sided McNemar test on the
photos where the runs disagree: p is the chance of a split at least that uneven if neither run were better.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from fvi.schema import FIELDS, STATUS_NO_CARD, STATUS_OK

# what must be equal for two reports to have read the same photos
SAME_TEST_SET = ("seed", "capture", "words", "card_types", "cards_per_type")


class NotComparable(ValueError):
    """The two reports did not read the same test set, or one has no per-photo outcomes."""


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p-value: the binomial test of the discordant photos against an even split."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1)) / 2**n
    return min(1.0, 2 * tail)


def outcomes_of(report: dict) -> dict[str, dict[str, Any]]:
    try:
        return report["per_photo"]["ensemble"]
    except KeyError:
        raise NotComparable("the report has no per-photo outcomes: it was written before bench.evaluate kept them; "
                            "run `make eval` again") from None


def _figures(photo: dict[str, Any]) -> dict[str, bool]:
    """The photo's right/wrong per figure (only those that apply to it)."""
    if not photo["card"]:
        return {"no_card_recognised": photo["status"] == STATUS_NO_CARD}
    right = [c == "1" for c in photo["right"]] if "right" in photo else [False] * len(FIELDS)  # not read: all wrong
    figures = {"card_found": photo["status"] == STATUS_OK, "whole_card": all(right)}
    figures |= {f"exact_match.{f}": ok for f, ok in zip(FIELDS, right)}
    figures["all_corners_within_3pct"] = bool(photo.get("corners_within_3pct", False))
    return figures


def compare(before: dict, after: dict) -> dict[str, Any]:
    """Per figure: photos, share right before and after, fixed, broken, McNemar p; and the photos fixed and broken
    on the whole card."""
    differ = [k for k in SAME_TEST_SET if before.get(k) != after.get(k)]
    if differ:
        raise NotComparable("the reports read different test sets (" + ", ".join(
            f"{k}: {before.get(k)!r} vs {after.get(k)!r}" for k in differ) + ")")
    a, b = outcomes_of(before), outcomes_of(after)
    common = sorted(set(a) & set(b))
    if not common:
        raise NotComparable("the reports share no photo")
    rows: dict[str, dict[str, Any]] = {}
    whole: dict[str, list[str]] = {"fixed": [], "broken": []}
    for name in common:
        fa, fb = _figures(a[name]), _figures(b[name])
        for key, was in fa.items():
            now = fb[key]
            row = rows.setdefault(key, {"photos": 0, "before": 0, "after": 0, "fixed": 0, "broken": 0})
            row["photos"] += 1
            row["before"] += was
            row["after"] += now
            row["fixed"] += now and not was
            row["broken"] += was and not now
            if key == "whole_card" and was != now:
                whole["fixed" if now else "broken"].append(name)
    for row in rows.values():
        row["p"] = mcnemar_p(row["fixed"], row["broken"])
    return {"photos": len(common), "only_before": len(set(a) - set(b)), "only_after": len(set(b) - set(a)),
            "figures": rows, "whole_card_photos": whole}


def write_markdown(result: dict[str, Any], before: Path, after: Path, listed: int = 10) -> str:
    lines = [f"# {after} against {before} (synthetic cards)", "",
             f"{result['photos']} photos read by both runs (served ensemble)"
             + (f"; {result['only_before']} only by the first, {result['only_after']} only by the second"
                if result["only_before"] or result["only_after"] else "") + ".", "",
             "| figure | photos | before | after | fixed | broken | McNemar p |", "|---|---|---|---|---|---|---|"]
    for key, r in result["figures"].items():
        lines.append(f"| {key} | {r['photos']} | {r['before'] / r['photos']:.1%} | {r['after'] / r['photos']:.1%} | "
                     f"{r['fixed']} | {r['broken']} | {r['p']:.3g} |")
    lines += ["", "p is the chance of a split of the disagreeing photos at least this uneven if neither run were "
              "better; under 0.05, the difference is unlikely to be chance.", ""]
    for kind in ("fixed", "broken"):
        names = result["whole_card_photos"][kind]
        shown = ", ".join(names[:listed]) + (f", … ({len(names)} in all)" if len(names) > listed else "")
        lines.append(f"- whole card {kind}: {shown or 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path, help="the first run's eval.json")
    ap.add_argument("after", type=Path, help="the second run's eval.json (same test set)")
    ap.add_argument("--out", type=Path, help="also write the comparison here (markdown)")
    ap.add_argument("--list", type=int, default=10, help="photos to name among those fixed and broken (default %(default)s)")
    a = ap.parse_args(argv)
    try:
        result = compare(*(json.loads(p.read_text(encoding="utf-8")) for p in (a.before, a.after)))
    except (OSError, json.JSONDecodeError, NotComparable) as e:
        print(f"bench.compare: {e}", file=sys.stderr)
        return 2
    text = write_markdown(result, a.before, a.after, a.list)
    print(text, end="")
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
