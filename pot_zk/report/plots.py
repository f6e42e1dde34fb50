"""The PNG plots of ``pot-zk report``, drawn with matplotlib's Agg canvas (no display, no
pyplot global state)."""

from __future__ import annotations

from pathlib import Path

from pot_zk.report.facts import COMMITMENT_ONLY, NO_OUTCOME, RunFacts

FIXED_COLOURS = {"failed": "#d62728", "parked": "#ff7f0e", NO_OUTCOME: "#7f7f7f", COMMITMENT_ONLY: "#d9d9d9"}
TYPE_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
TIMING_PHASES = (("witness_s", "witness"), ("setup_s", "setup (keys)"), ("prove_s", "prove"))


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


def plot_loss(facts: RunFacts, path: Path) -> None:
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
    figure.savefig(path, format="png")


def plot_accuracy(facts: RunFacts, path: Path) -> None:
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
    figure.savefig(path, format="png")


def plot_latency(facts: RunFacts, path: Path) -> None:
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
    if proved:
        bottoms = [0.0] * len(proved)
        for key, name in TIMING_PHASES:
            values = [float(r["timings"].get(key) or 0.0) for _, r in proved]
            phases_axes.bar([str(step) for step, _ in proved], values, bottom=bottoms, label=name)
            bottoms = [b + v for b, v in zip(bottoms, values)]
        phases_axes.set_xlabel("proved step")
        phases_axes.set_ylabel("seconds")
        phases_axes.legend(loc="upper right")
    else:
        _empty(phases_axes, "no prover timings in proofs.jsonl")
    phases_axes.set_title("Prover-reported timings of proved steps (proofs.jsonl)")
    figure.savefig(path, format="png")


def plot_coverage(facts: RunFacts, path: Path) -> None:
    figure, (strip_axes, count_axes) = _figure(rows=2, height=3.0)
    counts = facts.coverage_counts()
    labels = [*facts.proved_by_type(), *(c for c in FIXED_COLOURS if counts.get(c))]
    if facts.steps:
        strip_axes.bar([s.step for s in facts.steps], 1, width=1.0, color=[_colour(s.coverage, labels) for s in facts.steps])
        strip_axes.set_yticks([])
        strip_axes.set_xlabel("step")
        _integer_ticks(strip_axes)
        count_axes.barh(labels, [counts[label] for label in labels], color=[_colour(label, labels) for label in labels])
        count_axes.invert_yaxis()
        count_axes.set_xlabel("steps")
        _integer_ticks(count_axes)
    else:
        _empty(strip_axes, "no steps in commitments.jsonl")
        _empty(count_axes, "no steps in commitments.jsonl")
    strip_axes.set_title("Coverage per step (colours as below)")
    count_axes.set_title("Steps by coverage: proof type, failed, parked, no outcome, commitment only")
    figure.savefig(path, format="png")


PLOTS = {"loss.png": plot_loss, "accuracy.png": plot_accuracy, "latency.png": plot_latency, "coverage.png": plot_coverage}
