"""``pot-zk respond RUN C.json``: the trainer proves the steps an auditor challenged.

Before anything expensive runs, the challenge must fit the run (same commitment head, the
steps its head and nonce give: :func:`pot_zk.core.challenge.challenge_problems`) and every
challenged step still to prove must have a witness that hashes to its recorded commitments
(a witness the run did not keep is first recomputed by :mod:`pot_zk.runs.replay`).
Then each step goes through the run's own pipeline (its configured prover, retry schedule and
failure handler), every attempt lands in the run's audit trail, and each outcome is appended
to ``proofs.jsonl`` labelled with the challenge it answers. Steps the run already proved are
not proved again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


from pot_zk.backends.registry import backend_of, commit_step, spec_from_dict
from pot_zk.config.build import load_run_config
from pot_zk.core.challenge import Challenge, challenge_problems
from pot_zk.exceptions import ChallengeError, ConfigurationError, PotZkError, WitnessBuilderError
from pot_zk.kinds.registry import load_training_step
from pot_zk.backends.base import Statement
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.proven_run import proof_job, record_outcome
from pot_zk.runs.replay import replay_witnesses
from pot_zk.runs.witnesses import declared_retention
from pot_zk.proving.parking import parked_path
from pot_zk.proving.receipt import ReceiptCheck

@dataclass(frozen=True)
class ChallengeAnswer:
    step: int
    status: str
    """``proved`` (now), ``already-proved`` (by the run's policy or an earlier response),
    ``failed`` or ``parked`` (the run's handler decided)."""
    proof_type: str | None = None
    detail: str = ""


def check_witness(bundle: RunBundle, spec: Statement, record: dict[str, Any]) -> None:
    """The step's kept witness must exist and hash to its recorded commitments."""
    step = int(record["step"])
    path = bundle.witness_path(step)
    if not path.is_file():
        retention = declared_retention(bundle.manifest())
        raise ChallengeError(
            f"witness-missing: step {step} has no witness in {path.parent} (the run keeps {retention.retained} witnesses: {retention.rule})",
            reason="witness-missing",
            step=step,
        )
    try:
        found = commit_step(load_training_step(path, spec.kind), spec).to_dict()
    except (WitnessBuilderError, PotZkError) as exc:
        raise ChallengeError(f"witness-unreadable: step {step}'s witness is unusable: {exc.message}", reason="witness-unreadable", step=step) from exc
    differing = [key for key in spec.input_names if found.get(key) != record.get(key)]
    if differing:
        raise ChallengeError(
            f"witness-mismatch: step {step}'s witness does not hash to its recorded {', '.join(differing)} commitment(s)",
            reason="witness-mismatch",
            step=step,
            fields=differing,
        )


def run_config(bundle: RunBundle, overrides: Sequence[str]) -> Any:
    """The run's own resolved configuration (config.yaml), with dotted ``key=value`` overrides."""
    return load_run_config(bundle.path(files.CONFIG), overrides, run_dir=bundle.root)


def named_key_location(plan: Any, overrides: Sequence[str]) -> tuple[Path | None, dict[str, Any] | None]:
    """Where the command's ``overrides`` say the run's keys are now: (``cache_dir`` if one of them
    sets it, the prover options of ``srs.path`` if one sets that); None where the run's own
    location stands (review42: ``prove-pending RUN cache_dir=NEW`` was refused at the old one)."""
    given = {override.split("=", 1)[0].lstrip("+~") for override in overrides if "=" in override}
    return (
        Path(plan.cache_dir) if "cache_dir" in given else None,
        plan.backend.prover_options(plan.keys) if "srs.path" in given else None,
    )


def respond(
    run: Path, challenge: Challenge, overrides: Sequence[str] = (), *, sleep: Callable[[float], None] = time.sleep
) -> list[ChallengeAnswer]:
    """Prove the challenged steps of ``run`` into its bundle. Raises ChallengeError before any
    proving when the challenge does not fit the run or a witness is missing or altered; raises
    what the handler raises (fail_fast) after recording it."""
    bundle = RunBundle.open(Path(run).resolve())  # absolute: a warm key holder started elsewhere reads its witness paths
    manifest = bundle.manifest()
    commitments = bundle.commitments()
    problems = challenge_problems(challenge, manifest, commitments)
    if problems:
        reason, message = problems[0]
        raise ChallengeError(f"{reason}: the challenge does not fit {bundle.root}: {message}", reason=reason)
    if not manifest.get("proving_enabled"):
        raise ConfigurationError(f"{bundle.root} was trained with proving disabled: no SRS was settled for its proofs", key="proving.enabled")
    spec = spec_from_dict(manifest["circuit"])
    proved = {r["step"] for r in bundle.proofs() if r.get("status") == "proved"}
    by_step = {r["step"]: r for r in commitments}
    to_prove = [step for step in challenge.steps if step not in proved]
    cfg = run_config(bundle, overrides)
    lifecycle = RunLifecycle.from_config(cfg)
    _, named_options = named_key_location(lifecycle.runtime.plan, overrides)
    options = named_options if named_options is not None else manifest.get("prover_options") or {}
    if to_prove:  # the keys the run's proofs were made with, before any replay (a new dev key would prove answers no verifier accepts)
        lifecycle.runtime.plan.backend.check_keys_at_hand(spec, lifecycle.runtime.plan.cache_dir, options, manifest)
    missing = [step for step in to_prove if not bundle.witness_path(step).is_file()]
    if missing:
        replay_witnesses(bundle, cfg, missing)
    for step in to_prove:
        check_witness(bundle, spec, by_step[step])
    answers = [ChallengeAnswer(step, "already-proved") for step in challenge.steps if step in proved]
    label = {"challenge": {"head": challenge.head, "nonce": challenge.nonce}}
    keep = declared_retention(manifest).keeps_all
    status = "completed"
    try:  # a review: an interrupt just after challenge.start left the session without its run.end
        lifecycle.open(
            bundle.path(files.AUDIT), "challenge.start", run=bundle.root.name, command="respond",
            head=challenge.head, nonce=challenge.nonce, steps=list(challenge.steps), to_prove=to_prove, replayed=missing,
        )
        pipeline = lifecycle.pipeline(sleep=sleep)
        pipeline.check = ReceiptCheck(backend_of(spec), by_step.get, manifest)
        for step in to_prove:
            job = proof_job(bundle, spec, step, lifecycle.runtime.plan.cache_dir, options)
            result = pipeline.prove(job, record=lambda result: record_outcome(bundle, result, keep_witness=keep, labels=label))
            parked = parked_path(bundle.park_dir, step)
            if result.status == "proved" and parked.is_file():  # proven now: prove-pending must not prove it again
                parked.unlink()
                lifecycle.audit.event("unparked", step=step, path=str(parked), reason="answered")
            detail = "" if result.error is None else str(result.error.get("message", ""))
            answers.append(ChallengeAnswer(step, result.status, result.proof_type, detail))
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):  # Ctrl-C, SIGTERM (Interrupted): as a training session records it
            status = "interrupted"
            if lifecycle.audit is not None:
                lifecycle.audit.event("run.interrupted", signal=getattr(error, "signal_name", "SIGINT"), command="respond")
        else:
            status = "halted" if isinstance(error, PotZkError) else "aborted"
        raise
    finally:
        lifecycle.end(status, command="respond", answers=[asdict(a) for a in answers])
    return sorted(answers, key=lambda a: a.step)
