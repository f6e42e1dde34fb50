"""``pot-zk report RUN``: plots and a short summary of a run bundle.

Writes into ``RUN/report/`` (or ``--out DIR``): ``loss.png`` (recorded loss per step),
``accuracy.png`` (held-out accuracy, or loss for a regression set, of the initial model, at
each epoch's end and of the final model),
``latency.png`` (each prover attempt's duration per step and proof type, and the prover's own
witness/keys/prove/verify timings of proved steps), ``coverage.png`` (what each step has: a
proof by type, a failure, a parked job or a commitment only), ``report.md`` and, with
``--html``, ``report.html``: one self-contained page (the plots inline as data URIs) with, at
the top, the verdict and findings of ``pot-zk verify RUN``, which the report then runs. Every
other number comes from the bundle's records, which the tables and plots check nothing of,
and the report says so.
"""

from __future__ import annotations

import base64
import html
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from pot_zk.report.facts import COMMITMENT_ONLY, NO_OUTCOME, TIMING_PHASES, RunFacts, phase_seconds, read_run

if TYPE_CHECKING:
    from pot_zk.verify.run import RunReport

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
        ("run status (its training's last run.end in audit.jsonl)", facts.end_status or "none recorded (run unfinished?)"),
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
    elif facts.steps:
        rows.append(("loss", "not in the records (a run with train.record_loss=false)"))
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
        seconds = phase_seconds(record.get("timings") or {})
        rows.append((str(step), str(record.get("status")), str(record.get("proof_type") or "-"), str(record.get("attempts")),
                     *(f"{seconds[phase]:.2f}" if phase in seconds else "-" for phase, _ in TIMING_PHASES)))
    return ("step", "outcome", "proof type", "attempts", *(f"{phase} s" for phase, _ in TIMING_PHASES)), rows


def markdown_cell(value: object) -> str:
    """``value`` as one Markdown table cell: on one line, its pipes escaped (bundle strings are the
    trainer's: a line break in one would start a row of its own)."""
    return " ".join(str(value).splitlines()).replace("|", "\\|")


def _markdown_table(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

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


def _preamble(facts: RunFacts, verdict: RunReport | None) -> str:
    read = (f"Bundle: {facts.root}. Every number in the tables and plots is read from the bundle's records (manifest.json, "
            "commitments.jsonl, proofs.jsonl, evaluations.jsonl, audit.jsonl); they check nothing.")
    if verdict is None:
        return f"{read} `pot-zk verify {facts.root}` checks the run."
    return (f"{read} The verdict above is `pot-zk verify {facts.root}`'s, run by this report with none of your references "
            "(--expect-head, --expect-root, --max-tolerance-ulps, --min-proven): run it yourself with them.")


def verdict_lines(verdict: RunReport) -> list[str]:
    """What ``pot-zk verify`` prints of its verdict: the ``result:`` line, each failed check, each note."""
    return [line for line in verdict.summary().splitlines() if line.startswith(("result:", "FAILED ", "note: "))]


def render_markdown(facts: RunFacts, images: Sequence[str], verdict: RunReport | None = None) -> str:
    lines = [f"# pot-zk run report: {facts.root.name}", ""]
    if verdict is not None:
        lines += ["## pot-zk verify", "", *(f"- {line}" for line in verdict_lines(verdict)), ""]
    lines += [_preamble(facts, verdict), ""]
    for title, table in _sections(facts):
        lines += [f"## {title}", "", *_markdown_table(table), ""]
    lines += ["## Plots", ""]
    lines += [f"![{CAPTIONS[name]}]({name})\n" for name in images]
    return "\n".join(lines)


VERDICT_COLOURS = {"VERIFIED": "#e3f4e3", "FAILED": "#fbe3e3", "UNPROVEN": "#fdf1d8"}


def render_html(facts: RunFacts, images: Mapping[str, bytes], verdict: RunReport) -> str:
    """One self-contained page: the verdict first, then the tables, then the plots as data URIs."""
    title = html.escape(f"pot-zk run report: {facts.root.name}")
    lines = verdict_lines(verdict)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{border:1px solid #ccc;padding:2px 6px}"
             "table{border-collapse:collapse}img{max-width:100%}#verdict{padding:4px 12px}</style></head><body>",
             f"<h1>{title}</h1>",
             f"<section id='verdict' style='background:{VERDICT_COLOURS.get(verdict.verdict, '#eee')}'><h2>pot-zk verify</h2>"
             f"<p><strong>{html.escape(lines[0])}</strong></p>",
             *(["<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines[1:]) + "</ul>"] if lines[1:] else []),
             "</section>",
             f"<p>{html.escape(_preamble(facts, verdict))}</p>"]
    for heading, table in _sections(facts):
        parts.append(f"<h2>{html.escape(heading)}</h2>{_html_table(table)}")
    for name, data in images.items():
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(f"<h2>{CAPTIONS[name]}</h2><img src='{uri}' alt='{CAPTIONS[name]}'>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(
    run: Path, out: Path | None = None, *, with_html: bool = False, cache_dir: Path | None = None,
    srs_path: Path | None = None, keys_dir: Path | None = None,
) -> list[Path]:
    """Write the report of the run in ``run`` into ``out`` (default ``run/report``); return
    the files written. ``with_html``: also verify the run (``cache_dir``, default the
    verifier's; ``srs_path`` or ``keys_dir`` as ``pot-zk verify --srs / --keys``) and write
    report.html with the verdict; report.md then shows it too."""
    from pot_zk.report.plots import FIGURES, png

    facts = read_run(run)
    verdict = _verify(facts.root, cache_dir, srs_path, keys_dir) if with_html else None
    out = Path(out) if out is not None else facts.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    images = {name: png(figure(facts)) for name, figure in FIGURES.items()}
    for name, data in images.items():
        (out / name).write_bytes(data)
    (out / "report.md").write_text(render_markdown(facts, list(images), verdict))
    written = [out / name for name in images] + [out / "report.md"]
    if verdict is not None:
        (out / "report.html").write_text(render_html(facts, images, verdict))
        written.append(out / "report.html")
    return written


def _verify(run: Path, cache_dir: Path | None, srs_path: Path | None, keys_dir: Path | None) -> RunReport:
    from pot_zk.backends.keys import KeySet
    from pot_zk.verify.run import default_cache_dir, verify_run

    keys = KeySet.load(keys_dir) if keys_dir is not None else None
    return verify_run(run, cache_dir=cache_dir or default_cache_dir(), srs_path=srs_path, keys=keys)
