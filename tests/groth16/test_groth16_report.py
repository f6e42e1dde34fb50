"""`pot-zk report RUN --html` of a real zk-groth16 run: one self-contained file that opens with
the verdict of `pot-zk verify`, and plots whose legends name only what they draw."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pot_zk.cli.main import main
from pot_zk.config import compose_config
from pot_zk.report.facts import read_run
from pot_zk.report.plots import FIGURES
from pot_zk.runs import bundle as files
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

from test_report_plots import legend_entries

REFERENCING = {"src", "href", "srcset", "action", "data", "poster", "background", "cite", "formaction"}


class Page(HTMLParser):
    """The tags, the values of every attribute that can point elsewhere, and the text shown in
    the page's body, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.references += [value or "" for name, value in attrs if name in REFERENCING]

    def handle_data(self, data: str) -> None:
        if data.strip() and "body" in self.tags:
            self.text.append(data.strip())


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def groth16_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-step zk-groth16 run of the tiny model, steps 0 and 2 proven, and its cache (dev keys)."""
    root = tmp_path_factory.mktemp("report")
    run, cache = root / "run", root / "cache"
    train(compose_config(["prover=groth16", "model=tiny_mlp", "model.loss=mse", "data=synthetic", "train.batch_size=2",
                          "train.max_steps=4", "policy=every_k", "policy.k=2", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false"]))
    return run, cache


def verify_lines(run: Path, cache: Path) -> list[str]:
    summary = verify_run(run, cache_dir=cache).summary().splitlines()
    return [line for line in summary if line.startswith(("result:", "FAILED ", "note: "))]


def test_the_html_report_is_one_self_contained_file_opening_with_the_verdict(groth16_run, tmp_path):
    run, cache = groth16_run
    out = tmp_path / "report"
    assert main(["report", str(run), "--html", "--cache-dir", str(cache), "--out", str(out)]) == 0
    page = read_page(out / "report.html")
    assert "link" not in page.tags and "script" not in page.tags and "url(" not in (out / "report.html").read_text()
    assert len(page.references) == len(FIGURES)
    for reference, name in zip(page.references, FIGURES):
        prefix = "data:image/png;base64,"
        assert reference.startswith(prefix)
        assert base64.b64decode(reference[len(prefix):]) == (out / name).read_bytes()
    verdict = "result: VERIFIED: 2 of 4 steps proven"
    assert page.text[1:3] == ["pot-zk verify", verdict]
    assert verify_lines(run, cache)[0] == verdict
    assert page.text.index(verdict) < page.text.index("Summary")
    assert f"- {verdict}" in (out / "report.md").read_text()


def test_the_html_report_of_a_run_that_fails_verification_says_so_first_with_every_finding(groth16_run, tmp_path):
    run, cache = groth16_run
    altered = tmp_path / "altered"
    shutil.copytree(run, altered)
    (altered / files.FINAL_MODEL).write_bytes((altered / files.INITIAL_MODEL).read_bytes())
    expected = verify_lines(altered, cache)
    assert expected[0] == "result: FAILED" and any(line.startswith("FAILED final-model") for line in expected)
    assert main(["report", str(altered), "--html", "--cache-dir", str(cache)]) == 0
    text = read_page(altered / "report" / "report.html").text
    assert text[1 : 2 + len(expected)] == ["pot-zk verify", *expected]


def test_every_legend_entry_of_the_plots_of_a_groth16_run_is_drawn(groth16_run):
    run, _ = groth16_run
    facts = read_run(run)
    for name, figure in FIGURES.items():
        entries = legend_entries(figure(facts))
        assert entries and all(shown for _, shown in entries), (name, entries)
    latency = FIGURES["latency.png"](facts)
    drawn = [label.split()[0] for label, _ in legend_entries(latency) if not label.startswith("zk-groth16")]
    too_small = re.findall(r"(\w+) ≤ [\d.e-]+ s", latency.axes[1].get_title())
    assert "prove" in drawn
    assert sorted(drawn + too_small) == ["keys", "prove", "verify", "witness"]  # every phase groth16 reports, drawn or named


def test_a_line_break_in_a_bundle_string_does_not_add_a_row_to_report_md(groth16_run, tmp_path):
    """A review: report.md escaped pipes but not line breaks, so a trainer's string (a proof
    record's status here) could start table rows of its own."""
    run, cache = groth16_run
    altered = Path(shutil.copytree(run, tmp_path / "altered"))
    records = [json.loads(line) for line in (altered / files.PROOFS).read_text().splitlines()]
    records[0]["status"] = "proved\n| 99 | proved | zk-groth16 | 1 |"
    (altered / files.PROOFS).write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["report", str(altered), "--cache-dir", str(cache)]) == 0
    lines = (altered / "report" / "report.md").read_text().splitlines()
    assert not [line for line in lines if line.startswith("| 99 |")]
    assert any(line.startswith(f"| {records[0]['step']} | proved \\| 99 \\| proved") for line in lines)
