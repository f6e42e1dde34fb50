"""The PNG plots of ``pot-zk report``, drawn with matplotlib's Agg canvas (no display, no
pyplot global state). Each ``*_figure`` function draws one figure from the run's facts; a
legend names only what is drawn."""

from __future__ import annotations

import io
import math
from collections import Counter

from pot_zk.report.facts import COMMITMENT_ONLY, NO_OUTCOME, TIMING_PHASES, RunFacts, phase_seconds

FIXED_COLOURS = {"failed": "#d62728", "parked": "#ff7f0e", NO_OUTCOME: "#7f7f7f", COMMITMENT_ONLY: "#d9d9d9"}
TYPE_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
PHASE_LABELS = {"keys": "keys (setup or load)"}
VISIBLE_SHARE = 0.01
"""A prover phase is drawn when its largest bar reaches this share of the plot's height (the
tallest stack and a top margin of :data:`TOP_MARGIN`); the title names the others."""
TOP_MARGIN = 0.05
STRIP_BINS = 200
"""The coverage strip shows at most this many bars: one per step, or one per bin of steps."""


def _figure(rows: int = 1, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, height * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, 1, squeeze=False)[:, 0]


def _colour(label: str, labels: list[str]) -> str:
    if label in FIXED_COLOURS:
        return FIXED_COLOURS[label]
    return TYPE_COLOURS[labels.index(label) % len(TYPE_COLOURS)]


def _empty(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def _integer_ticks(axes) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def png(figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def loss_figure(facts: RunFacts):
    figure, (axes,) = _figure()
    points = [(s.step, s.loss) for s in facts.steps if s.loss is not None]
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], color="#1f77b4", linewidth=1, marker=".", label="loss")
        proved = [(s.step, s.loss) for s in facts.steps if s.loss is not None and s.coverage in facts.proved_by_type()]
        if proved:
            axes.scatter([p[0] for p in proved], [p[1] for p in proved], color="#2ca02c", zorder=3, label="proved step")
        axes.set_xlabel("step")
        _integer_ticks(axes)
        axes.set_ylabel(f"{facts.manifest.get('circuit', {}).get('architecture', {}).get('loss', 'training')} loss (recorded)")
        axes.legend(loc="upper right")
    else:
        _empty(axes, "no loss recorded in commitments.jsonl")
    axes.set_title("Training loss per step")
    return figure


def accuracy_figure(facts: RunFacts):
    figure, (axes,) = _figure()
    points = facts.evaluations
    if points:
        steps = [e.after_step for e in points]
        accuracy = all(e.accuracy is not None for e in points)
        values = [e.accuracy if accuracy else e.loss for e in points]
        axes.plot(steps, values, color="#2ca02c", marker="o", label="held-out accuracy" if accuracy else "held-out loss")
        axes.set_xlabel("steps trained (0: the initial model)")
        _integer_ticks(axes)
        axes.set_ylabel("accuracy" if accuracy else "loss")
        if accuracy:
            axes.set_ylim(0, 1)
        axes.legend(loc="lower right" if accuracy else "upper right")
    else:
        _empty(axes, "no held-out scores in evaluations.jsonl")
    axes.set_title("Held-out scores: initial model, each epoch's end, final model")
    return figure


def latency_figure(facts: RunFacts):
    figure, (attempts_axes, phases_axes) = _figure(rows=2)
    labels = sorted({a.label for a in facts.attempts})
    for label in labels:
        for ok, marker in ((True, "o"), (False, "x")):
            chosen = [a for a in facts.attempts if a.label == label and a.ok == ok]
            if chosen:
                attempts_axes.scatter([a.step for a in chosen], [a.duration_s for a in chosen], marker=marker,
                                      color=_colour(label, labels), label=f"{label} ({'ok' if ok else 'failed'})")
    if facts.attempts:
        attempts_axes.set_xlabel("step")
        _integer_ticks(attempts_axes)
        attempts_axes.set_ylabel("attempt duration (s)")
        attempts_axes.legend(loc="upper right")
    else:
        _empty(attempts_axes, "no proof attempts in audit.jsonl")
    attempts_axes.set_title("Prover attempts (audit trail)")
    proved = sorted((step, r) for step, r in facts.final_proofs.items() if r.get("status") == "proved" and r.get("timings"))
    seconds = [phase_seconds(r["timings"]) for _, r in proved]
    reported = [(name, [s.get(name, 0.0) for s in seconds]) for name, _ in TIMING_PHASES if any(name in s for s in seconds)]
    top = (1 + TOP_MARGIN) * max((sum(stack) for stack in zip(*(values for _, values in reported))), default=0.0)
    drawn = [(name, values) for name, values in reported if max(values) >= VISIBLE_SHARE * top > 0]
    title = "Prover-reported timings of proved steps (proofs.jsonl)"
    if drawn:
        bottoms = [0.0] * len(proved)
        for name, values in drawn:
            phases_axes.bar([str(step) for step, _ in proved], values, bottom=bottoms, label=PHASE_LABELS.get(name, name))
            bottoms = [b + v for b, v in zip(bottoms, values)]
        phases_axes.set_ylim(0, top)  # the height the visible share was measured against
        phases_axes.set_xlabel("proved step")
        phases_axes.set_ylabel("seconds")
        phases_axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        small = [f"{name} ≤ {max(values):.2g} s" for name, values in reported if (name, values) not in drawn]
        if small:
            title += f"\nnot drawn (under {VISIBLE_SHARE:.0%} of the plot's height): " + ", ".join(small)
    else:
        _empty(phases_axes, "no prover timings in proofs.jsonl")
    phases_axes.set_title(title, fontsize=10)
    return figure


def coverage_figure(facts: RunFacts):
    """Top: a strip of what each step has, one bar per step up to :data:`STRIP_BINS` steps,
    else the share of each kind per bin of steps; its legend counts each kind. Bottom: the counts."""
    figure, (strip_axes, count_axes) = _figure(rows=2, height=3.0)
    counts = facts.coverage_counts()
    labels = [*facts.proved_by_type(), *(c for c in FIXED_COLOURS if counts.get(c))]
    if facts.steps:
        first, last = facts.steps[0].step, facts.steps[-1].step
        width = max(1, math.ceil((last - first + 1) / STRIP_BINS))
        bins: dict[int, Counter] = {}
        for step in facts.steps:
            bins.setdefault((step.step - first) // width, Counter())[step.coverage] += 1
        lefts = [first + index * width for index in bins]
        bottoms = [0.0] * len(bins)
        for label in labels:
            shares = [kinds[label] / sum(kinds.values()) for kinds in bins.values()]
            strip_axes.bar(lefts, shares, width=width, bottom=bottoms, align="edge", linewidth=0,
                           color=_colour(label, labels), label=f"{label} ({counts[label]})")
            bottoms = [b + v for b, v in zip(bottoms, shares)]
        strip_axes.set_xlim(first, last + 1)
        strip_axes.set_ylim(0, 1)
        if width == 1:
            strip_axes.set_yticks([])
        else:
            strip_axes.set_ylabel(f"share of each {width} steps")
        strip_axes.set_xlabel("step")
        _integer_ticks(strip_axes)
        strip_axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="steps")
        bars = count_axes.barh(labels, [counts[label] for label in labels], color=[_colour(label, labels) for label in labels])
        count_axes.bar_label(bars, padding=3)
        count_axes.invert_yaxis()
        count_axes.set_xlabel("steps")
        _integer_ticks(count_axes)
    else:
        _empty(strip_axes, "no steps in commitments.jsonl")
        _empty(count_axes, "no steps in commitments.jsonl")
    strip_axes.set_title("Coverage per step" if len(facts.steps) <= STRIP_BINS else "Coverage along the run (share per bin of steps)")
    count_axes.set_title("Steps by coverage: proof type, failed, parked, no outcome, commitment only")
    return figure


FIGURES = {"loss.png": loss_figure, "accuracy.png": accuracy_figure, "latency.png": latency_figure, "coverage.png": coverage_figure}
