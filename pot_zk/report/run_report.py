"""``pot-zk report RUN``: plots and a short summary of a run bundle.

Writes into ``RUN/report/`` (or ``--out DIR``): ``loss.png`` (recorded loss per step),
``accuracy.png`` (held-out accuracy, or loss for a regression set, of the initial model, at
each epoch's end and of the final model),
``latency.png`` (each prover attempt's duration per step and proof type, and the prover's own
witness/setup/prove timings of proved steps), ``coverage.png`` (what each step has: a proof by
type, a failure, a parked job or a commitment only), ``report.md`` and, with ``--html``,
``report.html``. Every number comes from the bundle's records; the report checks nothing
(``pot-zk verify RUN`` does) and says so.
"""

from __future__ import annotations

import argparse
import html
import statistics
import sys
from pathlib import Path
from typing import Callable, Sequence

from pot_zk.exceptions import PotZkError
from pot_zk.report.facts import COMMITMENT_ONLY, NO_OUTCOME, RunFacts, read_run

CommandHandler = Callable[[argparse.Namespace], int]
Table = tuple[Sequence[str], list[Sequence[str]]]
CAPTIONS = {"loss.png": "Training loss per step", "accuracy.png": "Held-out scores over training", "latency.png": "Proof latency per step and proof type", "coverage.png": "Proof coverage"}


def summary_table(facts: RunFacts) -> Table:
    manifest = facts.manifest
    circuit = manifest.get("circuit", {})
    dataset = manifest.get("dataset", {})
    policy = {k: v for k, v in manifest.get("policy", {}).items() if k != "name"}
    counts = facts.coverage_counts()
    by_type = facts.proved_by_type()
    rows: list[Sequence[str]] = [
        ("run status (last run.end in audit.jsonl)", facts.end_status or "none recorded (run unfinished?)"),
        ("mode", str(manifest.get("mode"))),
        ("model", "MLP " + "-".join(str(d) for d in circuit.get("architecture", {}).get("dims", []))),
        ("batch size, learning rate", f"{circuit.get('batch_size')}, {circuit.get('learning_rate')}"),
        ("dataset", f"{dataset.get('name')}, {dataset.get('num_batches')} batches, root {str(dataset.get('root'))[:16]}…"),
        ("batch order", manifest.get("training", {}).get("batch_order", "seeded")),
        ("policy", f"{manifest.get('policy', {}).get('name')} ({', '.join(f'{k}={v}' for k, v in policy.items())})"),
        ("steps committed", str(len(facts.steps))),
        ("steps selected for proof", str(sum(s.scheduled for s in facts.steps))),
        ("proved", f"{sum(by_type.values())} ({', '.join(f'{t}: {n}' for t, n in by_type.items()) or 'none'})"),
        ("failed", str(counts.get("failed", 0))),
        ("parked", str(counts.get("parked", 0))),
        ("selected, no outcome recorded", str(counts.get(NO_OUTCOME, 0))),
        ("commitment only (not selected)", str(counts.get(COMMITMENT_ONLY, 0))),
    ]
    losses = [(s.step, s.loss) for s in facts.steps if s.loss is not None]
    if losses:
        lowest = min(losses, key=lambda p: p[1])
        rows.append(("loss", f"first {losses[0][1]:.6g} (step {losses[0][0]}), last {losses[-1][1]:.6g} "
                             f"(step {losses[-1][0]}), lowest {lowest[1]:.6g} (step {lowest[0]})"))
    rows += held_out_rows(facts)
    ok = sum(a.ok for a in facts.attempts)
    total = sum(a.duration_s for a in facts.attempts)
    rows.append(("prover attempts", f"{len(facts.attempts)} ({ok} ok, {len(facts.attempts) - ok} failed), {total:.1f} s in total"))
    return ("fact", "value"), rows


def held_out_rows(facts: RunFacts) -> list[Sequence[str]]:
    """The held-out set and the scores of the first and last scored models."""
    holdout = facts.manifest.get("dataset", {}).get("holdout")
    if not holdout:
        return [("held-out set", "none declared (no accuracy)")]
    rows: list[Sequence[str]] = [("held-out set", f"{holdout.get('samples')} of {holdout.get('of')} samples "
                                                   f"(fraction {holdout.get('fraction')}, seed {holdout.get('seed')})")]
    if facts.evaluations:
        first, last = facts.evaluations[0], facts.evaluations[-1]
        span = f"after step {first.after_step} -> after step {last.after_step}"
        if first.accuracy is not None and last.accuracy is not None:
            rows.append(("held-out accuracy", f"{first.accuracy:.1%} -> {last.accuracy:.1%} ({span})"))
        rows.append(("held-out loss", f"{first.loss:.6g} -> {last.loss:.6g} ({span})"))
    return rows


def latency_table(facts: RunFacts) -> Table:
    rows: list[Sequence[str]] = []
    for label in sorted({a.label for a in facts.attempts}):
        chosen = [a for a in facts.attempts if a.label == label]
        durations = [a.duration_s for a in chosen]
        ok = sum(a.ok for a in chosen)
        rows.append((label, str(len(chosen)), str(ok), str(len(chosen) - ok),
                     f"{statistics.median(durations):.2f}", f"{max(durations):.2f}"))
    return ("proof type (strategy, if failed)", "attempts", "ok", "failed", "median s", "max s"), rows


def outcome_table(facts: RunFacts) -> Table:
    rows: list[Sequence[str]] = []
    for step, record in sorted(facts.final_proofs.items()):
        timings = record.get("timings") or {}
        rows.append((str(step), str(record.get("status")), str(record.get("proof_type") or "-"), str(record.get("attempts")),
                     *(f"{timings[k]:.2f}" if isinstance(timings.get(k), (int, float)) else "-" for k in ("witness_s", "setup_s", "prove_s"))))
    return ("step", "outcome", "proof type", "attempts", "witness s", "setup s", "prove s"), rows


def _markdown_table(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    header, rows = table
    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sections(facts: RunFacts) -> list[tuple[str, Table]]:
    sections = [("Summary", summary_table(facts))]
    if facts.attempts:
        sections.append(("Prover attempts by proof type", latency_table(facts)))
    if facts.final_proofs:
        sections.append(("Proof outcomes per selected step", outcome_table(facts)))
    return sections


def _preamble(facts: RunFacts) -> str:
    return (f"Bundle: {facts.root}. Every number here is read from the bundle's records (manifest.json, commitments.jsonl, "
            f"proofs.jsonl, evaluations.jsonl, audit.jsonl). This report checks nothing: `pot-zk verify {facts.root}` does.")


def render_markdown(facts: RunFacts, images: Sequence[str]) -> str:
    lines = [f"# pot-zk run report: {facts.root.name}", "", _preamble(facts), ""]
    for title, table in _sections(facts):
        lines += [f"## {title}", "", *_markdown_table(table), ""]
    lines += ["## Plots", ""]
    lines += [f"![{CAPTIONS[name]}]({name})\n" for name in images]
    return "\n".join(lines)


def render_html(facts: RunFacts, images: Sequence[str]) -> str:
    title = html.escape(f"pot-zk run report: {facts.root.name}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{border:1px solid #ccc;padding:2px 6px}"
             "table{border-collapse:collapse}img{max-width:100%}</style></head><body>",
             f"<h1>{title}</h1><p>{html.escape(_preamble(facts))}</p>"]
    for heading, table in _sections(facts):
        parts.append(f"<h2>{html.escape(heading)}</h2>{_html_table(table)}")
    parts += [f"<h2>{CAPTIONS[name]}</h2><img src='{name}' alt='{CAPTIONS[name]}'>" for name in images]
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(run: Path, out: Path | None = None, *, with_html: bool = False) -> list[Path]:
    """Write the report of the run in ``run`` into ``out`` (default ``run/report``); return
    the files written."""
    from pot_zk.report.plots import PLOTS

    facts = read_run(run)
    out = Path(out) if out is not None else facts.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in PLOTS.items():
        plot(facts, out / name)
        written.append(out / name)
    (out / "report.md").write_text(render_markdown(facts, list(PLOTS)))
    written.append(out / "report.md")
    if with_html:
        (out / "report.html").write_text(render_html(facts, list(PLOTS)))
        written.append(out / "report.html")
    return written


def report_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="a run directory made by `pot-zk train` or pot_zk.hooks")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: RUN/report)")
    parser.add_argument("--html", action="store_true", help="also write report.html showing the tables and plots")

    def run(args: argparse.Namespace) -> int:
        try:
            written = write_report(Path(args.run), Path(args.out) if args.out else None, with_html=args.html)
        except (PotZkError, OSError, ValueError, KeyError) as error:
            print(f"pot-zk report: {args.run}: {error}", file=sys.stderr)
            return 2
        print(f"report of {args.run} written to {written[0].parent}: " + ", ".join(p.name for p in written))
        return 0

    return run
