"""Prints the two tables of docs/runs.md ("Challenges after the fact"): the chance p that Q
challenged steps of a T-step run hit at least one of c altered steps, 1 - C(T-c, Q) / C(T, Q),
and the expected number of re-randomised runs a cheater needs to dodge a nonce-less challenge,
1 / (1 - p). tests/test_challenge.py checks that the docs show what this prints.

    python scripts/challenge_detection.py [--total 224] [--altered 1 5 20] [--count 1 10 30 60]
"""

from __future__ import annotations

import argparse
from typing import Callable

from pot_zk.core.challenge import detection_probability


def _table(total: int, altered: list[int], counts: list[int], cell: Callable[[float], str]) -> str:
    lines = ["| altered steps c | " + " | ".join(f"Q = {q}" for q in counts) + " |", "|---|" + "---|" * len(counts)]
    for c in altered:
        lines.append(f"| {c} | " + " | ".join(cell(detection_probability(total, c, q)) for q in counts) + " |")
    return "\n".join(lines)


def tables(total: int, altered: list[int], counts: list[int]) -> tuple[str, str]:
    """(detection probability p, expected tries 1 / (1 - p)) as markdown tables."""
    return (
        _table(total, altered, counts, lambda p: f"{p:.3f}"),
        _table(total, altered, counts, lambda p: "unbounded" if p >= 1.0 else f"{1.0 / (1.0 - p):,.2f}"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=224)
    parser.add_argument("--altered", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--count", type=int, nargs="+", default=[1, 10, 30, 60])
    args = parser.parse_args()
    detection, tries = tables(args.total, args.altered, args.count)
    print(f"detection probability, T = {args.total}:\n\n{detection}\n\nexpected tries to dodge a nonce-less challenge:\n\n{tries}")


if __name__ == "__main__":
    main()
