"""What ``pot-zk report`` reads from a run bundle: per-step loss and proof outcome, per-attempt
proving latency, the held-out scores of the models. Only records are read; nothing is checked
(``pot-zk verify`` does that)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle, read_jsonl
from pot_zk.bundle.evaluation import Evaluation

TIMING_PHASES = (
    ("witness", ("witness_s", "step_check_s", "witness_check_s")),
    ("keys", ("setup_s", "key_load_s")),
    ("prove", ("prove_s",)),
    ("verify", ("self_verify_s",)),
)
"""The prover-reported timings (``proofs.jsonl``) of each phase of a proof: ezkl reports
witness_s, setup_s, prove_s; groth16 step_check_s, witness_check_s, setup_s, key_load_s,
prove_s, self_verify_s."""
COMMITMENT_ONLY = "commitment-only"
NO_OUTCOME = "no-outcome"
NOT_PROVED = ("failed", "parked", NO_OUTCOME, COMMITMENT_ONLY)


@dataclass(frozen=True)
class StepFacts:
    step: int
    loss: float | None
    scheduled: bool
    coverage: str
    """The proof type of a proved step; else ``failed``, ``parked``, ``no-outcome`` (selected
    by the policy, no outcome recorded) or ``commitment-only`` (not selected)."""


@dataclass(frozen=True)
class AttemptFacts:
    """One prover attempt from the audit trail's ``attempt`` events."""

    step: int
    label: str
    """The proof type of a successful attempt; the strategy's name for a failed one."""
    ok: bool
    duration_s: float


@dataclass(frozen=True)
class RunFacts:
    root: Path
    manifest: dict[str, Any]
    steps: list[StepFacts]
    attempts: list[AttemptFacts]
    final_proofs: dict[int, dict[str, Any]]
    end_status: str | None
    """The status of the last ``run.end`` of the run's training (None: the trail has none; respond and prove-pending end sessions of their own)."""
    evaluations: tuple[Evaluation, ...] = ()
    """Held-out scores (evaluations.jsonl) in step order: the initial model, each epoch's end,
    the final model."""

    def coverage_counts(self) -> Counter:
        return Counter(s.coverage for s in self.steps)

    def proved_by_type(self) -> dict[str, int]:
        counts = Counter(s.coverage for s in self.steps if s.coverage not in NOT_PROVED)
        return dict(sorted(counts.items()))


def phase_seconds(timings: dict[str, Any]) -> dict[str, float]:
    """Seconds per phase of :data:`TIMING_PHASES`, for the phases the prover reported."""
    return {
        phase: sum(float(timings[key]) for key in keys if isinstance(timings.get(key), (int, float)))
        for phase, keys in TIMING_PHASES
        if any(isinstance(timings.get(key), (int, float)) for key in keys)
    }


def read_run(run: Path) -> RunFacts:
    """The facts of the run in ``run``. Raises ConfigurationError for a directory that is not
    a run, ValueError (or OSError) for unreadable records."""
    bundle = RunBundle.open_received(Path(run))
    manifest = bundle.manifest()
    final: dict[int, dict[str, Any]] = {}
    for record in bundle.proofs():
        final[record["step"]] = record  # a later record (e.g. prove-pending after parking) wins
    steps = [_step_facts(record, final.get(record["step"])) for record in sorted(bundle.commitments(), key=lambda r: r["step"])]
    events = read_jsonl(bundle.path(files.AUDIT))
    attempts = [
        AttemptFacts(int(e["step"]), str(e.get("proof_type") or e.get("strategy")), e.get("outcome") == "ok", float(e["duration_s"]))
        for e in events
        if e.get("event") == "attempt" and isinstance(e.get("step"), int) and e.get("duration_s") is not None
    ]
    ends = files.training_ends(events)
    evaluations = tuple(sorted((Evaluation.from_record(r) for r in bundle.evaluations()), key=lambda e: e.after_step))
    return RunFacts(bundle.root, manifest, steps, attempts, final, ends[-1].get("status") if ends else None, evaluations)


def _step_facts(record: dict[str, Any], proof: dict[str, Any] | None) -> StepFacts:
    scheduled = bool(record.get("scheduled"))
    if proof is None:
        coverage = NO_OUTCOME if scheduled else COMMITMENT_ONLY
    elif proof.get("status") == "proved":
        coverage = str(proof.get("proof_type"))
    else:
        coverage = str(proof.get("status"))
    loss = record.get("loss")
    return StepFacts(int(record["step"]), None if loss is None else float(loss), scheduled, coverage)
