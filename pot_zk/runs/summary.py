"""What a run ended with, in words for people (the CLI prints them; a library call never does):
the outcomes, the held-out scores, what the bundle supports ("in short: ..."), the commitment
head and how to hand the run over."""

from __future__ import annotations

from pot_zk.backends.registry import PROOF_TYPES, spec_from_dict
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.evaluation import Evaluation
from pot_zk.runs.session import RunSummary


def summary_lines(summary: RunSummary) -> list[str]:
    """The end-of-run summary for people: what was trained and proven, the held-out scores,
    what the bundle supports in plain words, the commitment head and how to hand the run over."""
    outcomes = summary.progress["outcomes"]
    types = ", ".join(f"{count} {name}" for name, count in sorted(summary.progress["proof_types"].items())) or "none"
    archive = f"{summary.run_dir.name}.tar.gz"
    held_out = held_out_line(summary.evaluations)
    return [
        f"run {summary.status}: {summary.progress['steps']} steps trained, every step committed",
        f"proofs: {summary.progress['scheduled']} scheduled; {outcomes.get('proved', 0)} proved ({types}), "
        f"{outcomes.get('failed', 0)} failed, {outcomes.get('parked', 0)} parked",
        *([held_out] if held_out else []),
        proved_line(summary),
        f"bundle: {summary.run_dir}",
        f"commitment head: {summary.head} (hand it to the auditor now: it fixes the statement and every step's commitments)",
        f"hand over the export, not the directory (its witness/ and checkpoint hold your training data): "
        f"pot-zk export {summary.run_dir} --out {archive}",
        f"the auditor checks it with: pot-zk verify {archive} --expect-head {summary.head}",
    ]


DEV_KEYS = ("dev", "dev-srs")


def proved_line(summary: RunSummary) -> str:
    """What the run proved, in plain words, from the bundle's manifest, step records and final
    proof outcomes (the whole run's, also when this process resumed it): which steps by which proof type (zero-knowledge or not; made with dev keys or not), out of
    how many, what each shows (the committed state of the statement's kind, within its
    tolerance unless exact), and the final held-out accuracy, which no proof covers."""
    bundle = RunBundle(summary.run_dir)
    manifest = bundle.manifest()
    final = {r["step"]: r for r in bundle.proofs()}
    by_type: dict[str, list[int]] = {}
    for step, record in sorted(final.items()):
        if record["status"] == "proved":
            by_type.setdefault(str(record["proof_type"]), []).append(step)
    steps = len(bundle.commitments())
    if not by_type:
        said = f"in short: none of the {steps} steps proven; all committed (they can be challenged later)"
    else:
        dev = (manifest.get("srs") or manifest.get("keys") or {}).get("provenance") in DEV_KEYS
        parts = [
            f"{len(chosen)} with {kind} ({_nature(kind, dev)}): {'step' if len(chosen) == 1 else 'steps'} {_listed(chosen)}"
            for kind, chosen in sorted(by_type.items())
        ]
        statement = spec_from_dict(manifest["circuit"])
        tolerance = "" if statement.tolerance_ulps == 0 else f" within {statement.tolerance_ulps} units of 2^-{statement.scale}"
        said = (f"in short: {sum(map(len, by_type.values()))} of {steps} steps proven, {'; '.join(parts)}, each the declared "
                f"update{tolerance} of its committed {STEP_KINDS.get(statement.kind).state_words} on its committed batch; all {steps} committed")
    scores = [e for e in summary.evaluations if e.accuracy is not None]
    if scores and scores[-1].after_step == steps:
        said += f"; held-out accuracy {scores[-1].accuracy:.1%} (initial {scores[0].accuracy:.1%}), measured, not proven"
    return said


def _nature(proof_type: str, dev_keys: bool) -> str:
    if not PROOF_TYPES.get(proof_type).zero_knowledge:
        return "witness revealed to the verifier"
    return "zero-knowledge; dev keys: whoever made them could forge such proofs" if dev_keys else "zero-knowledge"


def _listed(steps: list[int]) -> str:
    return ", ".join(str(s) for s in steps[:8]) + (f" and {len(steps) - 8} more" if len(steps) > 8 else "")


def held_out_line(evaluations: tuple[Evaluation, ...]) -> str | None:
    """``held-out accuracy: 9.7% -> 88.3% (359 samples, initial -> after step 179)``, or the loss
    for a regression set; None without scores."""
    if not evaluations:
        return None
    first, last = evaluations[0], evaluations[-1]
    where = f"{first.samples} samples, {'initial' if first.after_step == 0 else f'after step {first.after_step}'} -> after step {last.after_step}"
    if first.accuracy is not None and last.accuracy is not None:
        return f"held-out accuracy: {first.accuracy:.1%} -> {last.accuracy:.1%} ({where})"
    return f"held-out loss: {first.loss:.4g} -> {last.loss:.4g} ({where})"
