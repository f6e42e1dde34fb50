"""What the plots of `pot-zk report` show, drawn from run facts: a legend names only what is
drawn, and the coverage strip stays readable (with its legend) at thousands of steps."""

from __future__ import annotations

from pathlib import Path

from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D

from pot_zk.report.facts import COMMITMENT_ONLY, RunFacts, StepFacts
from pot_zk.report.plots import STRIP_BINS, coverage_figure


def drawn(artist, axes) -> bool:
    """Whether the artist shows: points or a line with data, or a bar at least 1 % of the plot high."""
    if isinstance(artist, BarContainer):
        bottom, top = axes.get_ylim()
        return any(patch.get_height() >= 0.01 * (top - bottom) and patch.get_width() > 0 for patch in artist.patches)
    if isinstance(artist, PathCollection):
        return len(artist.get_offsets()) > 0
    if isinstance(artist, Line2D):
        return len(artist.get_xdata()) > 0
    raise AssertionError(f"no rule for {type(artist).__name__}")


def legend_entries(figure) -> list[tuple[str, bool]]:
    """(label, whether anything with that label is drawn) of every legend entry of the figure."""
    entries = []
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is None:
            continue
        artists = [*axes.containers, *axes.collections, *axes.lines]
        for text in legend.get_texts():
            labelled = [a for a in artists if a.get_label() == text.get_text()]
            entries.append((text.get_text(), any(drawn(a, axes) for a in labelled)))
    return entries


def test_the_coverage_strip_of_thousands_of_steps_shows_every_kind_in_every_bin_with_a_counting_legend():
    steps = [StepFacts(step, 1.0, step % 10 == 0, "zk-groth16" if step % 10 == 0 else COMMITMENT_ONLY) for step in range(3000)]
    steps[1234] = StepFacts(1234, 1.0, True, "failed")
    facts = RunFacts(Path("run"), {}, steps, [], {}, "completed")
    figure = coverage_figure(facts)
    strip = figure.axes[0]
    assert legend_entries(figure) == [("zk-groth16 (300)", True), ("failed (1)", True), ("commitment-only (2699)", True)]
    bars = {container.get_label(): container.patches for container in strip.containers}
    assert all(len(patches) <= STRIP_BINS for patches in bars.values())
    # one proof in ten steps: every bin (15 steps) shows its share of zk-groth16, none lost between pixels
    assert len(bars["zk-groth16 (300)"]) == 200
    assert min(patch.get_height() for patch in bars["zk-groth16 (300)"]) >= 1 / 15
    assert max(patch.get_height() for patch in bars["failed (1)"]) > 0
    assert strip.get_xlim() == (0, 3000)


def test_a_prover_phase_is_in_the_legend_only_when_its_bar_is_high_enough_to_see_else_named_in_the_title():
    """CI failure: a verify phase at 1.0-1.05 % of the tallest stack was put in the legend, but
    the axis's top margin made its bar less than 1 % of the plot's height."""
    from pot_zk.report.plots import latency_figure

    def figure(verify_s: float):
        timings = {0: {"prove_s": 1.0, "self_verify_s": verify_s}, 1: {"prove_s": 0.5, "self_verify_s": 0.001}}
        proofs = {step: {"status": "proved", "timings": t} for step, t in timings.items()}
        return latency_figure(RunFacts(Path("run"), {}, [StepFacts(s, 1.0, True, "zk-groth16") for s in timings], [], proofs, "completed"))

    for verify_s, legend in ((0.0102, ["prove"]), (0.0115, ["prove", "verify"])):
        drawn = figure(verify_s)
        entries = legend_entries(drawn)
        assert [label for label, _ in entries] == legend and all(shown for _, shown in entries), (verify_s, entries)
        assert ("verify ≤" in drawn.axes[1].get_title()) == ("verify" not in legend)
