"""How a run ended, in words: :class:`RunSummary`, what ``pot-zk train`` prints and what a
``track`` or ``proven_training`` block hands back (a library never prints: ``print(summary)``).

The lines say the status, the proofs by outcome, the held-out scores, what was proven in plain
words (from the bundle: the whole run's outcomes, also when this process resumed it), where the
bundle is, and for a completed run the commitment head to hand to the auditor now, the export to
hand over and the ``pot-zk verify`` command that checks it (for a loop's own run with the dataset
root and the initial model to pin); for any other, how to resume it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from shlex import quote
from typing import Any

from pot_zk.backends.registry import PROOF_TYPES, spec_from_dict
from pot_zk.data.catalog import DataSettings
from pot_zk.data.datasets import BUILT_IN
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.evaluation import Evaluation

DEV_KEYS = ("dev", "dev-srs")


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    status: str
    progress: dict[str, Any]
    stats: dict[str, Any]
    evaluations: tuple[Evaluation, ...] = ()
    """The held-out scores, in step order (the first: the initial model; after a completed
    run, the last: the final model)."""
    head: str | None = None
    """The commitment head (:func:`pot_zk.core.challenge.commitment_head`): hand it to the
    auditor when the run ends (None when the records could not be read back, e.g. after a
    failed write)."""

    def lines(self) -> list[str]:
        """What ``pot-zk train`` prints when a run ends (module docstring)."""
        outcomes = self.progress["outcomes"]
        types = ", ".join(f"{count} {name}" for name, count in sorted(self.progress["proof_types"].items())) or "none"
        bundle = RunBundle(self.run_dir)
        total = _committed_steps(bundle)
        here = self.progress["steps"]
        trained = f"{here} steps trained" if total in (None, here) else f"{total} steps trained, {here} of them by this command"
        lines = [
            f"run {self.status}: {trained}, every step committed",
            f"proofs{'' if total in (None, here) else ' by this command'}: {self.progress['scheduled']} scheduled; "
            f"{outcomes.get('proved', 0)} proved ({types}), {outcomes.get('failed', 0)} failed, {outcomes.get('parked', 0)} parked",
        ]
        held_out = held_out_line(self.evaluations)
        if held_out:
            lines.append(held_out)
        lines += [proved_line(self), *arithmetic_lines(bundle.manifest()), f"bundle: {self.run_dir}"]
        if self.status != "completed":  # a review: an unfinished run read like one to hand over
            loop = (bundle.manifest().get("training") or {}).get("batch_order") == "recorded"
            how = "track(..., resume=True) in your loop" if loop else f"pot-zk resume {quote(str(self.run_dir))}"
            lines.append(
                f"the run is {self.status}, not completed: pot-zk verify fails it until it completes; resume it with {how} "
                "(the steps not proven yet are proven then)"
            )
        elif self.head is not None:
            archive = f"{self.run_dir.name}.tar.gz"
            lines += [
                f"commitment head: {self.head} (hand it to the auditor now: it fixes the statement and every step's commitments)",
                "hand over the export, not the directory (its witness/ and checkpoint hold your training data): "
                f"pot-zk export {quote(str(self.run_dir))} --out {quote(archive)}",
                f"the auditor checks it with: {verify_command(archive, self.head, bundle)}",
                *pins_line(bundle),
                *dev_keys_line(bundle),
            ]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _committed_steps(bundle: RunBundle) -> int | None:
    """How many steps the run has committed (all its sessions'); None when unreadable."""
    try:
        return len(bundle.commitments())
    except (OSError, ValueError):
        return None


def summary_lines(summary: RunSummary) -> list[str]:
    """The end-of-run summary for people, what the CLI prints (:meth:`RunSummary.lines`)."""
    return summary.lines()


PLACEHOLDERS = {"root": "ROOT", "initial": "W0", "base": "BASE"}
"""What the auditor's command names instead of the run's own values: the dataset root, the
initial model's commitment and a LoRA run's frozen base are pinned with the values the auditor
agreed on (or verified itself), never copied from the bundle it is checking."""


def declared_pins(bundle: RunBundle) -> dict[str, str]:
    """The values this run declares for what the auditor must pin itself (``root``, ``initial``,
    ``base``; only those verify cannot recompute): the root and W_0's commitment of a loop's own
    run, a LoRA run's base (the base run it names, else its commitment)."""
    manifest = bundle.manifest()
    pins: dict[str, str] = {}
    base = manifest.get("base") or {}
    if base.get("run") or base.get("commitment"):
        pins["base"] = str(base.get("run") or base.get("commitment"))
    if (manifest.get("training") or {}).get("batch_order") == "recorded":
        root = (manifest.get("dataset") or {}).get("root")
        records = bundle.commitments()
        if root:
            pins["root"] = str(root)
        if records:
            pins["initial"] = str(min(records, key=lambda r: r["step"])["w_before"])
    return pins


def verify_command(run: str | Path, head: str, bundle: RunBundle, *, declared: bool = False) -> str:
    """``pot-zk verify RUN --expect-head HEAD``, with what verify cannot recompute to pin:
    ``--expect-base`` for a LoRA run; for a loop's own run (``batch_order: recorded``: verify
    recomputes neither its data nor its initial model) ``--expect-root`` and ``--expect-initial``
    and the recorded batch order (and data verify cannot open: the loop's own, or undeclared) to
    accept. The pins are placeholders (ROOT, W0, BASE: the auditor's own values, which
    :func:`declared_pins` lists as the run declares them); ``declared``: the run's own values
    instead (the trainer checking its own run)."""
    pins = declared_pins(bundle)
    values = pins if declared else {name: PLACEHOLDERS[name] for name in pins}
    flags = {"base": "--expect-base", "root": "--expect-root", "initial": "--expect-initial"}
    command = " ".join([f"pot-zk verify {quote(str(run))} --expect-head {head}", *(f"{flags[name]} {quote(str(values[name]))}" for name in ("base", "root", "initial") if name in values)])
    manifest = bundle.manifest()
    command = " ".join([command, *_split_settings(manifest)])
    if (manifest.get("training") or {}).get("batch_order") != "recorded":
        return command
    name = (manifest.get("dataset") or {}).get("name")
    streamed = manifest["training"].get("batches") == "streamed"  # batches committed as they came: samples verify cannot open
    data = [] if name in BUILT_IN or not streamed else [f"--accept-setting data={'unopened' if (manifest.get('dataset') or {}).get('root') else 'undeclared'}"]
    return " ".join([command, "--accept-setting batch_order=recorded", *data])


def _split_settings(manifest: dict) -> list[str]:
    """``--accept-setting`` of a held-out choice other than the defaults (seed 0, fraction 0.2):
    verify fails it unless the auditor accepts it (the trainer chose the split)."""
    holdout = (manifest.get("dataset") or {}).get("holdout") or {}
    chosen = {"holdout_seed": (holdout.get("seed"), DataSettings.seed), "holdout_fraction": (holdout.get("fraction"), DataSettings.holdout)}
    return [f"--accept-setting {name}={value}" for name, (value, default) in chosen.items() if holdout and value != default]


def dev_keys_line(bundle: RunBundle) -> list[str]:
    """Proofs made with dev keys (review23): the export holds no key, so an auditor elsewhere has
    nothing to check them with unless it is handed the key material, and can rely on them only
    with keys it made."""
    manifest = bundle.manifest()
    keys = manifest.get("srs") or manifest.get("keys") or {}
    if keys.get("provenance") not in DEV_KEYS:
        return []
    where = "your dev key directory, CACHE/groth16/<circuit id>" if manifest.get("backend") == "groth16" else "your dev SRS file"
    return [
        f"your keys are dev keys: on another machine the auditor checks these proofs only with --srs ({where}), on your word "
        "(you ran that setup); proofs it can rely on are made with keys it makes: pot-zk keys new, then you train with the srs.path it prints"
    ]


def pins_line(bundle: RunBundle) -> list[str]:
    """The values behind the command's placeholders, as this run declares them."""
    pins = declared_pins(bundle)
    if not pins:
        return []
    words = {"base": "the frozen base", "root": "the dataset root", "initial": "the initial model's commitment"}
    listed = ", ".join(f"{PLACEHOLDERS[name]} = {words[name]} it declares, {pins[name]}" for name in ("base", "root", "initial") if name in pins)
    return [f"the auditor pins the values it agreed on (verify fails without them); this run declares {listed}"]


def arithmetic_lines(manifest: dict[str, Any]) -> list[str]:
    """For a loop that took its own steps under an exact statement: that its updates were
    replaced by the statement's integer step (said once, here)."""
    training = manifest.get("training") or {}
    if training.get("batch_order") != "recorded" or training.get("arithmetic") != "exact":
        return []
    circuit = manifest.get("circuit") or {}
    scale = circuit.get("scale")
    close = STEP_KINDS.get(str(circuit.get("kind"))).exact_step_words
    return [
        f"arithmetic: exact ({manifest.get('backend')}): the model was put on the 2^-{scale} grid and each optimizer.step() "
        f"was replaced by the statement's integer step ({close}), so the model you hold is the proven one"
    ]


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
