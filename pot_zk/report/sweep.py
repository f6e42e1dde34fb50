"""``pot-zk sweep-report MULTIRUN_DIR``: one table (CSV + markdown) and plots over every job of
a Hydra multirun sweep.

Each job of a sweep has its own Hydra output directory: a run bundle, or, for a job that
failed before writing one, its ``.hydra/`` and the ``job_error.json`` the sweep left
(:mod:`pot_zk.runs.sweep_jobs`). For each job the table has the settings the sweep varied (from
the job's ``.hydra/overrides.yaml``), what the manifest declares (mode, model, scale,
executor), what happened (``stats.json``, ``proofs.jsonl``, the audit trail's
``run.start``/``run.end``), the last recorded training loss, the held-out accuracy of the
initial and final models and loss of the final one (``evaluations.jsonl``) and, with
``--verify``, the verdict of ``pot-zk verify``. A job that did not complete is listed with its
error (``sweep.md``'s "Failed jobs", the CSV's ``error`` column). Writes ``sweep.csv``,
``sweep.md``, ``setting_<key>.png`` for each swept setting (final loss and accuracy against
it), ``curves.png`` (each job's loss and held-out curves overlaid), ``prove_time.png`` (median
prove time per job against the model's parameter count) and ``success_by_mode.png`` into
``MULTIRUN_DIR/sweep-report/`` (or ``--out DIR``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from pot_zk.bundle.evaluation import Evaluation
from pot_zk.report.run_report import markdown_cell
from pot_zk.report.sweep_plots import sweep_plots
from pot_zk.report.sweep_table import SweepJob, SweepTable
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle, read_jsonl
from pot_zk.runs.sweep_jobs import JOB_ERROR
from pot_zk.exceptions import ConfigurationError, PotZkError

CommandHandler = Callable[[argparse.Namespace], int]

OUTCOME_COLUMNS = (
    "status", "mode", "model", "parameters", "batch_size", "scale", "executor", "workers", "steps", "selected",
    "proved", "failed", "parked", "attempts", "attempt_success_rate", "prove_s_median", "wall_s", "proved_per_min",
    "loss_final", "accuracy_initial", "accuracy_final", "heldout_loss_final",
)
NO_ERROR_RECORDED = "no run bundle and no job_error.json: the job was killed, or is still running"


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Every job under ``sweep_dir`` (a run bundle, or a Hydra job directory without one), in
    job order (``2`` before ``10``)."""
    def natural(path: Path) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path.relative_to(sweep_dir)))]

    bundles = {p.parent for p in sweep_dir.rglob(files.MANIFEST)}
    hydra_jobs = {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    return sorted(bundles | hydra_jobs, key=natural)


def read_overrides(run: Path) -> dict[str, str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    pairs = (str(item).split("=", 1) for item in OmegaConf.load(path))
    return {key.lstrip("+~"): value for key, value in (p for p in pairs if len(p) == 2)}


def parameter_count(dims: Sequence[int]) -> int:
    return sum(d_in * d_out + d_out for d_in, d_out in zip(dims, dims[1:]))


def read_job(run: Path, sweep_dir: Path) -> SweepJob:
    """The job in ``run``: its numbers from its bundle, or, without one, its recorded error."""
    if not (run / files.MANIFEST).is_file():
        recorded = _read_json(run / JOB_ERROR)
        error = f"{recorded['error_class']}: {recorded['message']}" if recorded else NO_ERROR_RECORDED
        return SweepJob(str(run.relative_to(sweep_dir)), read_overrides(run), {"status": "failed"}, error)
    bundle = RunBundle.open(run)
    manifest = bundle.manifest()
    circuit = manifest.get("circuit", {})
    dims = [int(d) for d in circuit.get("architecture", {}).get("dims", [])]
    commitments = bundle.commitments()
    final = {r["step"]: r for r in bundle.proofs()}
    statuses = [r["status"] for r in final.values()]
    stats = _read_json(run / "stats.json")
    events = read_jsonl(bundle.path(files.AUDIT))
    starts = [e for e in events if e.get("event") in ("run.start", "run.resume")]
    ends = files.training_ends(events)
    wall_s = (_timestamp(ends[-1]) - _timestamp(starts[0])) if starts and ends else None
    proved = statuses.count("proved")
    prove_times = [r["timings"]["prove_s"] for r in final.values() if r["status"] == "proved" and (r.get("timings") or {}).get("prove_s") is not None]
    executor = manifest.get("executor", {})
    evaluations = sorted(bundle.evaluations(), key=lambda r: r["after_step"])
    initial_score = evaluations[0] if evaluations and evaluations[0]["after_step"] == 0 else {}
    final_score = evaluations[-1] if evaluations and evaluations[-1]["after_step"] == len(commitments) else {}
    status = ends[-1].get("status") if ends else "unfinished"
    values = {
        "status": status,
        "mode": manifest.get("mode"),
        "model": "-".join(str(d) for d in dims),
        "parameters": parameter_count(dims),
        "batch_size": circuit.get("batch_size"),
        "scale": circuit.get("scale"),
        "executor": executor.get("name"),
        "workers": executor.get("workers"),
        "steps": len(commitments),
        "selected": sum(1 for r in commitments if r.get("scheduled")),
        "proved": proved,
        "failed": statuses.count("failed"),
        "parked": statuses.count("parked"),
        "attempts": stats.get("attempts"),
        "attempt_success_rate": stats.get("attempt_success_rate"),
        "prove_s_median": statistics.median(prove_times) if prove_times else None,
        "wall_s": wall_s,
        "proved_per_min": proved / (wall_s / 60) if wall_s else None,
        "loss_final": commitments[-1].get("loss") if commitments else None,
        "accuracy_initial": _accuracy(initial_score) if initial_score else None,
        "accuracy_final": _accuracy(final_score) if final_score else None,
        "heldout_loss_final": final_score.get("loss"),
    }
    losses = tuple((int(r["step"]), float(r["loss"])) for r in commitments if r.get("loss") is not None)
    scores = tuple((int(e["after_step"]), float(_accuracy(e) if _accuracy(e) is not None else e["loss"])) for e in evaluations)
    error = None if status == "completed" else _run_error(events, status)
    return SweepJob(str(run.relative_to(sweep_dir)), read_overrides(run), values, error, losses, scores)


def _accuracy(record: dict[str, Any]) -> float | None:
    """correct / samples, from the counts verify rescored, not the record's stored ``accuracy``."""
    return Evaluation.from_record(record).accuracy


def _run_error(events: list[dict[str, Any]], status: str) -> str:
    """Why a run with a bundle did not complete: its audit trail's halt or abort."""
    stops = [e for e in events if e.get("event") in ("run.halted", "run.aborted")]
    error = (stops[-1].get("error") or {}) if stops else {}
    if error:
        return f"{error.get('error_class')}: {error.get('message')}"
    return f"status {status}: no run.end of its training in the audit trail (killed, or still running)" if status == "unfinished" else f"status {status}"


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _timestamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def gather(sweep_dir: Path, *, verify_cache_dir: Path | None = None) -> SweepTable:
    """The table of every job under ``sweep_dir``; with ``verify_cache_dir``, each job is also
    verified (column ``verify``: ``passed`` or the failed checks)."""
    sweep_dir = Path(sweep_dir)
    runs = job_dirs(sweep_dir)
    if not runs:
        raise ConfigurationError(f"no run bundles (manifest.json) or sweep jobs (.hydra/) under {sweep_dir}", key="multirun_dir")
    jobs = [read_job(run, sweep_dir) for run in runs]
    if verify_cache_dir is not None:
        from pot_zk.verify.run import verify_run

        verdicts = [_verdict(verify_run(run, cache_dir=verify_cache_dir)) if (run / files.MANIFEST).is_file() else "no bundle" for run in runs]
        jobs = [replace(job, values={**job.values, "verify": verdict}) for job, verdict in zip(jobs, verdicts)]
    swept = tuple(sorted({k for job in jobs for k in job.overrides if len({j.overrides.get(k) for j in jobs}) > 1}))
    outcomes = [c for c in OUTCOME_COLUMNS if c not in swept]  # a swept `mode` shows the mode once
    columns = ("job", *swept, *outcomes, *(("verify",) if verify_cache_dir is not None else ()), "error")
    return SweepTable(columns, swept, tuple(jobs))


def _verdict(report: Any) -> str:
    if report.verdict == "UNPROVEN":
        return "unproven (no step proven)"
    if report.ok:
        return "passed"
    return "failed: " + ", ".join(sorted({f"{f.check} ({f.reason})" for f in report.findings}))


def render_markdown(table: SweepTable, sweep_dir: Path, images: Sequence[str]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

    shown = [index for index, column in enumerate(table.columns) if column != "error"]
    failed = table.failed()
    lines = [
        f"# pot-zk sweep report: {sweep_dir}", "",
        f"{len(table.jobs)} jobs, {len(failed)} of them did not complete. Numbers are read from each job's bundle "
        "(manifest.json, stats.json, proofs.jsonl, audit.jsonl, evaluations.jsonl); `loss_final` is the training loss "
        "recorded for the last step; `accuracy_*` is the held-out accuracy of the initial and final models; "
        "`wall_s` runs from the audit trail's run.start to run.end; `prove_s_median` is the prover's own prove time of "
        "proved steps.", "",
        line([table.columns[i] for i in shown]), "|" + "---|" * len(shown), *(line([row[i] for i in shown]) for row in table.rows()), "",
    ]
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{job.job}` ({', '.join(f'{k}={job.overrides.get(k)}' for k in table.swept) or 'no swept setting'}): "
                  f"{' '.join(str(job.error).splitlines())}" for job in failed]
        lines.append("")
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def write_sweep_report(sweep_dir: Path, out: Path | None = None, *, verify_cache_dir: Path | None = None) -> list[Path]:
    sweep_dir = Path(sweep_dir)
    table = gather(sweep_dir, verify_cache_dir=verify_cache_dir)
    out = Path(out) if out is not None else sweep_dir / "sweep-report"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.columns)
        writer.writerows(table.rows())
    written = [out / "sweep.csv"]
    for name, figure in sweep_plots(table).items():
        figure.savefig(out / name, format="png")
        written.append(out / name)
    (out / "sweep.md").write_text(render_markdown(table, sweep_dir, [p.name for p in written[1:]]))
    return [*written, out / "sweep.md"]


def sweep_report_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("multirun_dir", help="a sweep directory made by `pot-zk train --multirun` (hydra.sweep.dir)")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: MULTIRUN_DIR/sweep-report)")
    parser.add_argument("--verify", action="store_true", help="also verify every job's bundle (column `verify`)")
    parser.add_argument("--cache-dir", help="the verifier's cache (default: $POT_ZK_CACHE or ~/.cache/pot-zk)")

    def run(args: argparse.Namespace) -> int:
        cache_dir = None
        if args.verify:
            from pot_zk.verify.run import default_cache_dir

            cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        try:
            written = write_sweep_report(Path(args.multirun_dir), Path(args.out) if args.out else None, verify_cache_dir=cache_dir)
        except (PotZkError, OSError, ValueError, KeyError) as error:
            print(f"pot-zk sweep-report: {args.multirun_dir}: {error}", file=sys.stderr)
            return 2
        print(written[-1].read_text())
        print(f"sweep report written to {written[0].parent}: " + ", ".join(p.name for p in written))
        return 0

    return run
