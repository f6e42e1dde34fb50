#!/usr/bin/env python
"""Tampering campaign: alter copies of honest run bundles (pot_zk.testing.tamper) and check that
``pot-zk verify`` rejects every one naming every finding its tampering must produce (check,
reason and, where it is about one, step), and accepts every honest copy.

    python scripts/tamper_campaign.py --bundles 1250 --seed 1

Two honest runs are trained once with real zk-halo2 proofs (the tiny 4-3-2 MLP; the second,
with another seed, is the source of replayed proofs); each tampered bundle is a copy of the
first with one alteration, kinds taken in turn, details (step, byte, line, whether the audit
chain is rewritten to match) drawn from the seeded generator. A kind that only the auditor's
own references can catch (a consistent rewrite: pot_zk.testing.record_rewrites) is verified
with the option it names (``--expect-head``, ``--min-proven``, ...); every honest copy is
verified with no option, or (every other one) with every reference at its honest value.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "zk"))

from pot_zk.testing.bundle_edit import head_of, proved_steps, read_json  # noqa: E402
from pot_zk.testing.tamper import KINDS, judge, tampered_copy  # noqa: E402
from pot_zk.verify.run import verify_run  # noqa: E402


def honest_runs(workdir: Path, cache_dir: Path) -> tuple[Path, Path]:
    from run_support import run_tiny

    first, second = workdir / "honest", workdir / "other-run"
    if not (first / "manifest.json").exists():
        shutil.rmtree(first, ignore_errors=True)
        run_tiny(first, cache_dir)
    if not (second / "manifest.json").exists():
        shutil.rmtree(second, ignore_errors=True)
        run_tiny(second, cache_dir, "train.seed=7", "train.max_steps=2")
    return first, second


def campaign(bundles: int, seed: int, workdir: Path, cache_dir: Path, *, honest_every: int = 10, kinds=None) -> dict:
    started = time.monotonic()
    honest, other = honest_runs(workdir, cache_dir)
    references = {"expect_head": head_of(honest), "expect_root": read_json(honest / "manifest.json")["dataset"]["root"],
                  "min_proven": len(proved_steps(honest))}
    rng = random.Random(seed)
    kinds = list(kinds or KINDS)
    per_kind: dict[str, Counter] = {k: Counter() for k in kinds}
    reasons: dict[str, Counter] = {k: Counter() for k in kinds}
    failures: list[dict] = []
    honest_checked = honest_rejected = 0
    scratch = workdir / "scratch"
    for index in range(bundles):
        kind = kinds[index % len(kinds)]
        target = scratch / f"{index:05d}"
        tampering = tampered_copy(honest, target, kind, rng, other)
        report = verify_run(target, cache_dir=cache_dir, **tampering.options)
        right, why = judge(report, tampering)
        per_kind[kind]["tampered"] += 1
        per_kind[kind]["rejected"] += int(report.verdict != "VERIFIED")
        per_kind[kind]["named_every_expected"] += int(right)
        for finding in report.findings:
            reasons[kind][f"{finding.check}/{finding.reason}"] += 1
        if not right:
            failures.append({"kind": kind, "detail": tampering.detail, "why": why, "findings": [f.to_dict() for f in report.findings]})
        shutil.rmtree(target)
        if index % honest_every == 0:
            copy = scratch / f"honest-{index:05d}"
            shutil.copytree(honest, copy)
            honest_report = verify_run(copy, cache_dir=cache_dir, **(references if index % (2 * honest_every) else {}))
            honest_checked += 1
            if honest_report.verdict != "VERIFIED":
                honest_rejected += 1
                failures.append({"kind": "honest", "findings": [f.to_dict() for f in honest_report.findings]})
            shutil.rmtree(copy)
    totals = Counter()
    for counts in per_kind.values():
        totals.update(counts)
    return {
        "seed": seed,
        "tampered": totals["tampered"],
        "rejected": totals["rejected"],
        "rejected_naming_every_expected_finding": totals["named_every_expected"],
        "honest_checked": honest_checked,
        "honest_rejected": honest_rejected,
        "per_kind": {k: dict(v) for k, v in per_kind.items()},
        "reasons_named": {k: dict(v.most_common()) for k, v in reasons.items()},
        "failures": failures[:30],
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None, help="key cache (default: a temporary one; keys take a minute to make)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the honest runs here (reused when present)")
    parser.add_argument("--honest-every", type=int, default=10, help="verify an honest copy after every N tampered ones")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pot-zk-tamper-"))
    cache = args.cache_dir or workdir / "cache"
    try:
        result = campaign(args.bundles, args.seed, workdir, cache, honest_every=args.honest_every)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    holds = result["rejected_naming_every_expected_finding"] == result["tampered"] and result["honest_rejected"] == 0
    print(f"tampered bundles: {result['tampered']}, rejected: {result['rejected']}, naming every finding expected: "
          f"{result['rejected_naming_every_expected_finding']}; honest bundles rejected: {result['honest_rejected']}/{result['honest_checked']}"
          f" -> {'HOLDS' if holds else 'FAILS'}")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
