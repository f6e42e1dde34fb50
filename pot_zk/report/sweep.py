"""``pot-zk sweep-report MULTIRUN_DIR``: one table (CSV + markdown) and plots over every job of
a Hydra multirun sweep.

Each job of a sweep is a run bundle (its own Hydra output directory). For each one the table
has the settings the sweep varied (from the job's ``.hydra/overrides.yaml``), what the
manifest declares (mode, model, scale, executor), what happened (``stats.json``,
``proofs.jsonl``, the audit trail's ``run.start``/``run.end``), the held-out accuracy of the
initial and final models and loss of the final one (``evaluations.jsonl``) and, with ``--verify``, the
verdict of ``pot-zk verify``. Writes ``sweep.csv``, ``sweep.md``, ``prove_time.png`` (median
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

from pot_zk.report.sweep_plots import PLOTS
from pot_zk.report.sweep_table import SweepJob, SweepTable
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle, read_jsonl
from pot_zk.exceptions import ConfigurationError, PotZkError

CommandHandler = Callable[[argparse.Namespace], int]

OUTCOME_COLUMNS = (
    "status", "mode", "model", "parameters", "batch_size", "scale", "executor", "workers", "steps", "selected",
    "proved", "failed", "parked", "attempts", "attempt_success_rate", "prove_s_median", "wall_s", "proved_per_min",
    "accuracy_initial", "accuracy_final", "heldout_loss_final",
)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Every run bundle under ``sweep_dir``, in job order (``2`` before ``10``)."""
    def natural(path: Path) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path.relative_to(sweep_dir)))]

    return sorted((p.parent for p in sweep_dir.rglob(files.MANIFEST)), key=natural)


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
    ends = [e for e in events if e.get("event") == "run.end"]
    wall_s = (_timestamp(ends[-1]) - _timestamp(starts[0])) if starts and ends else None
    proved = statuses.count("proved")
    prove_times = [r["timings"]["prove_s"] for r in final.values() if r["status"] == "proved" and (r.get("timings") or {}).get("prove_s") is not None]
    executor = manifest.get("executor", {})
    evaluations = sorted(bundle.evaluations(), key=lambda r: r["after_step"])
    initial_score = evaluations[0] if evaluations and evaluations[0]["after_step"] == 0 else {}
    final_score = evaluations[-1] if evaluations and evaluations[-1]["after_step"] == len(commitments) else {}
    values = {
        "status": ends[-1].get("status") if ends else "unfinished",
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
        "accuracy_initial": initial_score.get("accuracy"),
        "accuracy_final": final_score.get("accuracy"),
        "heldout_loss_final": final_score.get("loss"),
    }
    return SweepJob(str(run.relative_to(sweep_dir)), read_overrides(run), values)


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
        raise ConfigurationError(f"no run bundles (manifest.json) under {sweep_dir}", key="multirun_dir")
    jobs = [read_job(run, sweep_dir) for run in runs]
    if verify_cache_dir is not None:
        from pot_zk.verify.run import verify_run

        reports = [verify_run(run, cache_dir=verify_cache_dir) for run in runs]
        jobs = [replace(job, values={**job.values, "verify": _verdict(report)}) for job, report in zip(jobs, reports)]
    swept = tuple(sorted({k for job in jobs for k in job.overrides if len({j.overrides.get(k) for j in jobs}) > 1}))
    outcomes = [c for c in OUTCOME_COLUMNS if c not in swept]  # a swept `mode` shows the mode once
    columns = ("job", *swept, *outcomes, *(("verify",) if verify_cache_dir is not None else ()))
    return SweepTable(columns, swept, tuple(jobs))


def _verdict(report: Any) -> str:
    if report.verdict == "UNPROVEN":
        return "unproven (no step proven)"
    if report.ok:
        return "passed"
    return "failed: " + ", ".join(sorted({f"{f.check} ({f.reason})" for f in report.findings}))


def render_markdown(table: SweepTable, sweep_dir: Path, images: Sequence[str]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [
        f"# pot-zk sweep report: {sweep_dir}", "",
        f"{len(table.jobs)} jobs. Numbers are read from each job's bundle (manifest.json, stats.json, proofs.jsonl, "
        "audit.jsonl, evaluations.jsonl); `accuracy_*` is the held-out accuracy of the initial and final models; "
        "`wall_s` runs from the audit trail's run.start to run.end; `prove_s_median` is the prover's own prove time of "
        "proved steps.", "",
        line(table.columns), "|" + "---|" * len(table.columns), *(line(row) for row in table.rows()), "",
    ]
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
    for name, plot in PLOTS.items():
        plot(table, out / name)
        written.append(out / name)
    (out / "sweep.md").write_text(render_markdown(table, sweep_dir, list(PLOTS)))
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
