"""`pot-zk report RUN`: PNG plots and a summary whose numbers are the bundle's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pot_zk.runs.bundle import RunBundle
from pot_zk.cli.main import main
from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("loss.png", "accuracy.png", "latency.png", "coverage.png")


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the markdown table under ``## heading``."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _summary(markdown: str) -> dict[str, str]:
    return {key: value for key, value in _table(markdown, "Summary")}


def _assert_pngs(directory: Path) -> None:
    for name in PLOTS:
        data = (directory / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 5000, f"{name} is {len(data)} bytes: an empty canvas?"


def test_report_of_a_tiny_run_matches_the_bundle_and_verify(tmp_path, zk_cache, capsys):
    run = tmp_path / "run"
    run_tiny(run, zk_cache)
    assert main(["report", str(run), "--html", "--cache-dir", str(zk_cache)]) == 0
    out = run / "report"
    assert str(out) in capsys.readouterr().out
    _assert_pngs(out)
    markdown = (out / "report.md").read_text()
    summary = _summary(markdown)
    bundle = RunBundle.open(run)
    coverage = verify_run(run, cache_dir=zk_cache).coverage
    assert summary["steps committed"] == str(len(bundle.commitments())) == "4"
    assert summary["steps selected for proof"] == "2"
    assert summary["proved"] == f"{coverage['zk-halo2']} (zk-halo2: {coverage['zk-halo2']})" == "2 (zk-halo2: 2)"
    assert summary["commitment only (not selected)"] == str(coverage["commitment-only"])
    assert summary["failed"] == summary["parked"] == "0"
    assert summary["run status (its training's last run.end in audit.jsonl)"] == "completed"
    losses = [r["loss"] for r in bundle.commitments()]
    assert summary["loss"].startswith(f"first {losses[0]:.6g} (step 0), last {losses[-1]:.6g} (step 3)")
    first, last = bundle.evaluations()[0], bundle.evaluations()[-1]
    assert summary["held-out loss"] == f"{first['loss']:.6g} -> {last['loss']:.6g} (after step 0 -> after step 4)"
    assert "held-out accuracy" not in summary  # synthetic data is a regression set
    outcomes = _table(markdown, "Proof outcomes per selected step")
    assert [(row[0], row[1], row[2]) for row in outcomes] == [("0", "proved", "zk-halo2"), ("2", "proved", "zk-halo2")]
    attempts = _table(markdown, "Prover attempts by proof type")
    assert [row[:4] for row in attempts] == [["zk-halo2", "2", "2", "0"]]
    page = (out / "report.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == len(PLOTS)  # the plots inline: one file
    assert "<strong>result: VERIFIED: 2 of 4 steps proven</strong>" in page


def test_report_counts_failed_attempts_and_the_fallback_proof_type(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    crash = make_prover("crash")
    run_tiny(run, zk_cache, "handler=fallback", "retry=none", f"prover.binary={crash}")
    elsewhere = tmp_path / "elsewhere"
    assert main(["report", str(run), "--out", str(elsewhere)]) == 0
    assert not (run / "report").exists()
    _assert_pngs(elsewhere)
    markdown = (elsewhere / "report.md").read_text()
    assert _summary(markdown)["proved"] == "2 (freivalds: 2)"
    attempts = {row[0]: row[1:4] for row in _table(markdown, "Prover attempts by proof type")}
    assert attempts == {"freivalds": ["2", "2", "0"], "zk-halo2": ["2", "0", "2"]}
    assert not (elsewhere / "report.html").exists()


def test_report_on_a_directory_that_is_not_a_run_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path) in error and "not a pot-zk run directory" in error
    assert not (tmp_path / "report").exists()
