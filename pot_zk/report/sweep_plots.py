"""The PNG plots of ``pot-zk sweep-report``, drawn with matplotlib's Agg canvas (no display,
no pyplot global state)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pot_zk.report.sweep_table import SweepJob, SweepTable

COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def _label(job: SweepJob, table: SweepTable) -> str:
    return ", ".join(f"{c}={job.overrides.get(c)}" for c in table.swept) or job.job


def plot_prove_time(table: SweepTable, path: Path) -> None:
    """Median prove time of each job against its model's parameter count, one colour per scale."""
    figure, axes = _figure()
    scales = sorted({job.values["scale"] for job in table.jobs}, key=str)
    timed = [job for job in table.jobs if job.values["prove_s_median"] is not None]
    for index, scale in enumerate(scales):
        chosen = [job for job in timed if job.values["scale"] == scale]
        axes.scatter([j.values["parameters"] for j in chosen], [j.values["prove_s_median"] for j in chosen],
                     color=COLOURS[index % len(COLOURS)], label=f"scale {scale}", s=40)
    for job in timed:
        axes.annotate(_label(job, table), (job.values["parameters"], job.values["prove_s_median"]),
                      textcoords="offset points", xytext=(4, 4), fontsize=8)
    if not timed:
        axes.text(0.5, 0.5, "no proved steps", ha="center", va="center", transform=axes.transAxes)
    else:
        axes.legend(loc="best", fontsize=8)
    axes.set_xlabel("model parameters")
    axes.set_ylabel("median prove time per step (s)")
    axes.set_title("Prove time by model size")
    axes.set_ylim(0, 1.25 * max([j.values["prove_s_median"] for j in timed], default=1.0))
    figure.savefig(path)


def plot_success_by_mode(table: SweepTable, path: Path) -> None:
    """Share of selected steps that ended proved, per mode (all jobs of a mode pooled)."""
    figure, axes = _figure()
    proved: dict[str, int] = defaultdict(int)
    selected: dict[str, int] = defaultdict(int)
    for job in table.jobs:
        proved[str(job.values["mode"])] += job.values["proved"]
        selected[str(job.values["mode"])] += job.values["selected"]
    modes = sorted(selected)
    rates = [proved[m] / selected[m] if selected[m] else 0.0 for m in modes]
    bars = axes.bar(modes, rates, width=0.5, color=[COLOURS[i % len(COLOURS)] for i in range(len(modes))])
    axes.bar_label(bars, labels=[f"{proved[m]}/{selected[m]}" for m in modes])
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("selected steps proved")
    axes.set_title("Proof success rate by mode")
    figure.savefig(path)


PLOTS = {"prove_time.png": plot_prove_time, "success_by_mode.png": plot_success_by_mode}
