"""scripts/bench.py --quick runs end to end with the real prover and reports every metric.

Speed is not asserted (CI machines differ); only that the harness runs and its report is
complete and self-consistent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.prover

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
METRICS = (
    "compile_s", "setup_s", "witness_s", "prove_s", "verify_s", "proof_bytes", "proof_file_bytes",
    "pk_bytes", "peak_rss_mb", "logrows", "num_rows",
)


def test_quick_bench_runs_and_reports(tmp_path: Path) -> None:
    markdown = tmp_path / "performance.md"
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path / "out"), "--markdown", str(markdown)],
        capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert report["quick"] is True
    for side in ("potzk", "naive"):
        for metric in METRICS:
            value = report[side][metric]
            assert isinstance(value, (int, float)) and value > 0, (side, metric, value)
        assert len(report[side]["prove_all_s"]) >= 2 and len(report[side]["verify_all_s"]) >= 2
    potzk = report["potzk"]
    assert potzk["setup_again_s"] < potzk["setup_s"], "the second run must reuse the cached keys"
    assert 0 <= potzk["overhead_frac"] < 1 and potzk["prover_wall_s"] >= potzk["prove_s"]
    assert len(report["sizes"]) == 2 and all(s["prove_s"] > 0 for s in report["sizes"])
    assert isinstance(report["growth_exponent"], float)
    training = report["training"]
    assert training["disabled"]["wall_s"] > 0 and training["sample_background"]["wall_s"] > 0
    assert training["disabled"]["proofs"] == 0
    assert report["layout_rows"] and all(v["main_rows"] > 0 for v in report["layout_rows"].values())
    table = markdown.read_text()
    for label in ("prove (bare ezkl.prove call)", "verify", "peak RSS", "framework overhead", "Growth exponent", "pot-zk train"):
        assert label in table
    assert table == (tmp_path / "out" / "bench.md").read_text()


def test_compare_backends_quick_writes_both_backends(tmp_path: Path) -> None:
    """scripts/bench.py --compare-backends --quick --json PATH: one tiny statement, both backends."""
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--compare-backends", "--quick", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "compare.json")],
        capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "compare.json").read_text())
    assert set(report["backends"]) == {"ezkl", "groth16"}
    for backend, values in report["backends"].items():
        for metric in ("prove_s", "verify_s", "proof_bytes"):
            assert isinstance(values[metric], (int, float)) and values[metric] > 0, (backend, metric)
    assert report["backends"]["groth16"]["proof_bytes"] == 256
    tiny = report["statements"]["tiny"]
    assert tiny["groth16"]["held_wall_s"] > 0 and tiny["groth16"]["key_load_s"] > 0
    assert all(tiny[b]["commit_s"] > 0 and tiny[b]["pk_bytes"] > 0 for b in ("ezkl", "groth16"))
    table = (tmp_path / "out" / "compare.md").read_text()
    assert "| prove, bare call (median) |" in table and "groth16 (zk-groth16)" in table
