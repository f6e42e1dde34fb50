"""The PNG plots of ``pot-zk sweep-report``, drawn with matplotlib's Agg canvas (no display,
no pyplot global state). :func:`sweep_plots` draws them all, by file name; a legend names only
what is drawn, and jobs without the numbers a plot needs (a failed job) are left out of it and
counted in its title."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from pot_zk.report.sweep_table import SweepJob, SweepTable

COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
FINAL_SCORES = (
    ("final loss", (("training loss, last step", "loss_final", "o"), ("held-out loss", "heldout_loss_final", "s"))),
    ("final held-out accuracy", (("held-out accuracy", "accuracy_final", "o"),)),
)
"""The rows of a setting plot: (y label, its series (name, column, marker)); a row no job has a value for is left out."""


def _figure(rows: int = 1, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, height * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, 1, squeeze=False)[:, 0]


def _label(job: SweepJob, table: SweepTable, keys: tuple[str, ...] | None = None) -> str:
    keys = table.swept if keys is None else keys
    return ", ".join(f"{c}={job.overrides.get(c)}" for c in keys) or job.job


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _left_out(count: int) -> str:
    return f"\n{count} job(s) without these numbers not drawn (see sweep.md)" if count else ""


def setting_figure(table: SweepTable, key: str):
    """The final training and held-out loss, and the final held-out accuracy, against the swept
    setting ``key``: one line per combination of the other swept settings."""
    rows = [(title, series) for title, series in FINAL_SCORES if any(job.values.get(c) is not None for job in table.jobs for _, c, _ in series)]
    figure, axes_rows = _figure(rows=max(1, len(rows)), height=3.4)
    settings = [job.overrides.get(key) for job in table.jobs]
    numeric = all(_number(value) is not None for value in settings if value is not None)
    categories = list(dict.fromkeys(value for value in settings if value is not None))
    others = tuple(k for k in table.swept if k != key)
    groups: dict[tuple, list[SweepJob]] = defaultdict(list)
    for job in table.jobs:
        groups[tuple(job.overrides.get(k) for k in others)].append(job)
    for axes, (title, series) in zip(axes_rows, rows):
        for group_index, jobs in enumerate(groups.values()):
            for series_index, (name, column, marker) in enumerate(series):
                points = sorted(
                    (_number(job.overrides[key]) if numeric else categories.index(job.overrides[key]), job.values[column])
                    for job in jobs
                    if job.overrides.get(key) is not None and job.values.get(column) is not None
                )
                if points:
                    label = name + (f" ({_label(jobs[0], table, others)})" if others else "")
                    axes.plot([x for x, _ in points], [y for _, y in points], marker=marker, label=label,
                              color=COLOURS[(group_index * len(series) + series_index) % len(COLOURS)])
        axes.set_xlabel(key)
        axes.set_ylabel(title)
        if not numeric:
            axes.set_xticks(range(len(categories)), categories)
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    if not rows:
        axes_rows[0].text(0.5, 0.5, "no job recorded a final score", ha="center", va="center", transform=axes_rows[0].transAxes)
    unscored = sum(1 for job in table.jobs if all(job.values.get(c) is None for _, series in FINAL_SCORES for _, c, _ in series))
    axes_rows[0].set_title(f"Final scores against {key}{_left_out(unscored)}")
    return figure


def curves_figure(table: SweepTable):
    """Every job's training loss per step, and its held-out scores, overlaid (one colour a job)."""
    figure, (loss_axes, score_axes) = _figure(rows=2, height=3.4)
    for index, job in enumerate(table.jobs):
        colour = COLOURS[index % len(COLOURS)]
        if job.losses:
            loss_axes.plot([s for s, _ in job.losses], [v for _, v in job.losses], color=colour, linewidth=1, label=_label(job, table))
        if job.scores:
            score_axes.plot([s for s, _ in job.scores], [v for _, v in job.scores], color=colour, marker="o", label=_label(job, table))
    accuracy = [job.values.get("accuracy_initial") is not None or job.values.get("accuracy_final") is not None for job in table.jobs if job.scores]
    from matplotlib.ticker import MaxNLocator

    for axes in (loss_axes, score_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("training loss (recorded)")
    loss_axes.set_title(f"Training loss per step{_left_out(sum(1 for job in table.jobs if not job.losses))}")
    score_axes.set_xlabel("steps trained (0: the initial model)")
    score_axes.set_ylabel("held-out accuracy" if all(accuracy) else "held-out loss" if not any(accuracy) else "held-out accuracy (loss: regression jobs)")
    score_axes.set_title(f"Held-out scores{_left_out(sum(1 for job in table.jobs if not job.scores))}")
    for axes in (loss_axes, score_axes):
        if axes.lines:
            axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return figure


def prove_time_figure(table: SweepTable):
    """Median prove time of each job against its model's parameter count, one colour per scale."""
    figure, (axes,) = _figure()
    timed = [job for job in table.jobs if job.values.get("prove_s_median") is not None]
    scales = sorted({job.values.get("scale") for job in timed}, key=str)
    for index, scale in enumerate(scales):
        chosen = [job for job in timed if job.values.get("scale") == scale]
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
    axes.set_title(f"Prove time by model size{_left_out(len(table.jobs) - len(timed))}")
    axes.set_ylim(0, 1.25 * max([j.values["prove_s_median"] for j in timed], default=1.0))
    return figure


def success_by_mode_figure(table: SweepTable):
    """Share of selected steps that ended proved, per mode (all jobs of a mode pooled)."""
    figure, (axes,) = _figure()
    proved: dict[str, int] = defaultdict(int)
    selected: dict[str, int] = defaultdict(int)
    counted = [job for job in table.jobs if job.values.get("selected") is not None]
    for job in counted:
        proved[str(job.values["mode"])] += job.values["proved"]
        selected[str(job.values["mode"])] += job.values["selected"]
    modes = sorted(selected)
    rates = [proved[m] / selected[m] if selected[m] else 0.0 for m in modes]
    bars = axes.bar(modes, rates, width=0.5, color=[COLOURS[i % len(COLOURS)] for i in range(len(modes))])
    axes.bar_label(bars, labels=[f"{proved[m]}/{selected[m]}" for m in modes])
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("selected steps proved")
    axes.set_title(f"Proof success rate by mode{_left_out(len(table.jobs) - len(counted))}")
    return figure


def setting_file(key: str) -> str:
    return "setting_" + re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".png"


def sweep_plots(table: SweepTable) -> dict[str, Any]:
    """Every figure of the sweep report, by file name: one per swept setting, then the curves,
    prove time and success rate."""
    figures = {setting_file(key): setting_figure(table, key) for key in table.swept}
    figures["curves.png"] = curves_figure(table)
    figures["prove_time.png"] = prove_time_figure(table)
    figures["success_by_mode.png"] = success_by_mode_figure(table)
    return figures
