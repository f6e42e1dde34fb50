"""A proven training run: commitments for every step, proofs as the policy says.

:class:`ProvenRun` is what both ``pot-zk train`` and the integration hooks
(:mod:`pot_zk.hooks`) drive: hand it each captured step and it records the step's
commitments, schedules its proof, and writes the outcome into the run bundle.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from pot_zk.backends.base import CommitmentScheme
from pot_zk.exceptions import InvalidModelStateError, StepMismatchError, WitnessBuilderError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.registry import STEP_KINDS, kind_of, save_training_step
from pot_zk.backends.base import Statement
from pot_zk.backends.registry import backend_of
from pot_zk.proving.parking import parked_path
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.core.prover_processes import closing_run
from pot_zk.core.protocol import ProverRequest
from pot_zk.runs.bundle import AUDIT, RunBundle, read_jsonl
from pot_zk.runs.proof_watch import ProofWatch
from pot_zk.runs.witnesses import declared_retention


@dataclass
class RunProgress:
    steps: int = 0
    scheduled: int = 0
    outcomes: Counter = field(default_factory=Counter)
    proof_types: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "scheduled": self.scheduled,
            "outcomes": dict(self.outcomes),
            "proof_types": dict(self.proof_types),
        }


def queue_text(progress: RunProgress, watch: ProofWatch | None) -> str:
    """``proofs 1/3 done, ETA 00:09; step 4: prove 2 s``: the outcomes so far, then what the
    running proofs are doing (:class:`~pot_zk.runs.proof_watch.ProofWatch`). Drawn by another
    thread than the one recording outcomes: the watch is read first, the count after, as
    :meth:`ProvenRun.record_result` counts an outcome before the watch sees its duration, so an
    ETA never shows beside "0 done" (review44: read the other way round, a whole outcome
    recorded between the two reads drew it)."""
    now = watch.text() if watch is not None else ""
    done = f"proofs {sum(progress.outcomes.values())}/{progress.scheduled} done"
    return f"{done}, {now}" if now else done


class ProvenRun:
    def __init__(
        self,
        bundle: RunBundle,
        spec: Statement,
        commitments: CommitmentScheme,
        pipeline: ProvingPipeline | None,
        policy: Callable[[int], bool],
        cache_dir: Path,
        prover_options: dict[str, Any],
        dataset_leaves: list[str],
        *,
        record_loss: bool = True,
    ) -> None:
        self.bundle = bundle
        self.record_loss = record_loss
        """Each step's training loss goes into its record (``train.record_loss``)."""
        self.spec = spec
        self.commitments = commitments
        self.pipeline = pipeline
        self.policy = policy
        self.cache_dir = Path(cache_dir)
        self.prover_options = prover_options
        self.leaves = dataset_leaves
        self.progress = RunProgress()
        self.executor = None
        self.on_result: Callable[[ProofResult, float], None] | None = None
        """Called with each outcome and the seconds since its job was queued."""
        self.watch: ProofWatch | None = None
        """Set while a progress bar shows the proofs' stages."""
        self._last_after: dict[str, tuple[str, torch.Tensor]] = {}
        """The last step's committed state (W_t+1, and V_t+1 for momentum) by name: its commitment
        and its values."""
        self._constants: dict[str, tuple[str, torch.Tensor]] = {}
        self._done_steps = {r["step"] for r in bundle.commitments()}
        self._audited_steps: set[int] | None = None
        self._final_proofs = {r["step"] for r in bundle.proofs() if r["status"] in ("proved", "failed")}
        self._proved = {r["step"] for r in bundle.proofs() if r["status"] == "proved"}
        self._queued_at: dict[int, float] = {}
        self._submitted: dict[int, dict[str, Any]] = {}
        """The commitment record of each step submitted for proof: what a proof is checked
        against when its prover program answers (:meth:`recorded`)."""
        manifest = bundle.manifest()
        self.keep_witnesses = declared_retention(manifest).keeps_all
        if pipeline is not None:
            pipeline.check = ReceiptCheck(backend_of(spec), self.recorded, manifest)

    def recorded(self, index: int) -> dict[str, Any] | None:
        """Step ``index``'s commitment record, kept when it was submitted (read from the pipeline's
        threads, which never read commitments.jsonl while training appends to it)."""
        return self._submitted.get(index)

    def job_for(self, index: int) -> ProverRequest:
        return proof_job(self.bundle, self.spec, index, self.cache_dir, self.prover_options)

    def model_weights(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """A model state's trained weights as the statement encodes them (``w_after``'s
        values); None when the state is not the statement's model."""
        try:
            return STEP_KINDS.get(self.spec.kind).model_tensors(state, self.spec.architecture)["weights"].reshape(-1).to(torch.float64)
        except (KeyError, ValueError, RuntimeError):
            return None

    def start_from(self, state: Mapping[str, torch.Tensor]) -> None:
        """The model the run starts from (the initial model it saved): the first step's W_t must
        be it (:meth:`check_state`), so a change before the first step is refused there."""
        weights = self.model_weights(state)
        if weights is None or "w_after" in self._last_after:
            return
        try:
            self._last_after["w_after"] = (self.commitments.tensor("w_after").commit(weights, "initial weights"), weights)
        except WitnessBuilderError:  # weights the statement cannot commit: the first step says so, inside the session
            pass

    def check_final(self, state: Mapping[str, torch.Tensor], index: int) -> None:
        """StepMismatchError (``differs="state"``) unless ``state``, the model the run is about to
        save as its final model, holds the weights its last step committed (a change after the
        last ``optimizer.step()``, which the final model's check would fail)."""
        last = self._last_after.get("w_after")
        weights = self.model_weights(state)
        if last is None or weights is None or torch.equal(weights, last[1]):
            return
        try:
            same = self.commitments.tensor("w_after").commit(weights, "final weights") == last[0]
        except WitnessBuilderError:
            same = False
        if not same:
            raise StepMismatchError(
                f"the model is not the one step {index - 1} ended in: it was changed after the last optimizer.step(); "
                "the run cannot save it as its final model",
                step=index, differs="state", tensor="w_after",
            )

    def check_state(self, step: BatchStep, index: int) -> None:
        """StepMismatchError (``differs="state"``) unless step ``index``'s own W_t, chained state
        and constant inputs are exactly the values the run committed before (the previous step's
        state after it; the constants of its first step): a change between two
        ``optimizer.step()`` calls. For an exact statement, before its integer step (which would
        refuse a weight moved off its grid without saying how it got there)."""
        encoded = {x.name: x for x in self.spec.encode(step)}
        self._check_state(encoded, index, None)

    def _check_state(self, encoded: dict[str, Any], index: int, commit: Callable[[str], str] | None) -> None:
        def unchanged(name: str, kept: tuple[str, torch.Tensor]) -> bool:
            """The step's own ``name`` is ``kept``'s values or, given ``commit``, commits to
            ``kept``'s commitment (hashed only when the values differ: a commitment of an ezkl
            statement costs ~20 ms, and a float statement commits values on its grid)."""
            if torch.equal(encoded[name].values, kept[1]):
                return True
            if commit is None:
                return False
            try:
                return commit(name) == kept[0]
            except WitnessBuilderError:  # out of range: not the values committed before
                return False

        kind = STEP_KINDS.get(self.spec.kind)
        for before, after in kind.chained_inputs:
            last = self._last_after.get(after)
            if last is not None and not unchanged(before, last):  # a review: the record copied W_t from the step before, hiding such a change
                ended = f"the {after} step {index - 1} ended in" if index > 0 else "the initial model the run saved"
                raise StepMismatchError(
                    f"step {index}: its {before} is not {ended}: the model (or the optimizer's state) "
                    "was changed outside optimizer.step() between the two steps" + ("" if index > 0 else " (the run's start and its first step)"),
                    step=index, differs="state", tensor=before,
                )
        for name in kind.constant_inputs:
            if name in self._constants and not unchanged(name, self._constants[name]):
                raise StepMismatchError(
                    f"step {index}: its {name} is not the one the run committed at its first step: the frozen weights were changed",
                    step=index, differs="state", tensor=name,
                )

    def record_step(
        self, step: BatchStep, index: int, epoch: int | None, batch_index: int | None, audit, *, samples: tuple[int, ...] | None = None
    ) -> None:
        """Commit to the step (every step) and queue its proof if the policy selects it. W_t (and
        any other chained state, e.g. the velocity) is the previous step's W_t+1 commitment, the
        batch its dataset leaf (``batch_index``), or, for a batch committed as it came
        (``batch_index`` None), its own commitment and its ``samples``' positions in the declared
        data set; constant inputs (a LoRA step's frozen base) are committed once per run. Each
        step's own W_t (and chained state, and constants) must be what the run committed before:
        a change between two ``optimizer.step()`` calls is a StepMismatchError (``differs="state"``)."""
        encoded = {x.name: x for x in self.spec.encode(step)}

        def commit(name: str) -> str:
            return self.commitments.tensor(name).commit(encoded[name].values, encoded[name].label)

        batch = commit("batch") if batch_index is None else self.leaves[batch_index]
        scheduled = self.pipeline is not None and self.policy(index)
        record: dict[str, Any] = {
            "step": index,
            "epoch": epoch,
            "batch_index": batch_index,
            "batch": batch,
            "scale": self.spec.scale,
            **({"loss": step.loss} if self.record_loss else {}),
            "scheduled": scheduled,
        }
        if batch_index is None:
            record["samples"] = None if samples is None else list(samples)
        if getattr(self.spec, "rate_public", False):
            record["learning_rate"] = step.learning_rate
        self._check_state(encoded, index, commit)
        for before, after in kind_of(step).chained_inputs:
            last = self._last_after.get(after)
            record[before] = last[0] if last is not None else self._continued(index, after, commit(before))
            self._last_after[after] = (commit(after), encoded[after].values)
            record[after] = self._last_after[after][0]
        for name in kind_of(step).constant_inputs:
            if name not in self._constants:
                self._constants[name] = (commit(name), encoded[name].values)
            record[name] = self._constants[name][0]
        # review45: a signal between the record and its count left the counts a step apart
        with closing_run(finishing=f"step {index}'s commitment records", ends_run=False):
            if index in self._done_steps:
                self._check_replay(index, record, audit)
            else:
                if scheduled or self.keep_witnesses:
                    save_training_step(step, self.bundle.witness_path(index))
                self.bundle.append_commitment(record)
                audit.event("commitment", **record)
                self._done_steps.add(index)
            self.progress.steps += 1
        if scheduled and index not in self._final_proofs and not parked_path(self.bundle.park_dir, index).exists():
            self._submitted[index] = record
            self.submit(index)

    def _continued(self, index: int, after: str, found: str) -> str:
        """The state a process's first step starts from (``found``: a fresh run's initial state, a
        resumed run's checkpoint) must be the state the run's previous step recorded it ended in,
        velocity included; otherwise the run would go on from another state than it committed."""
        previous = next((r for r in self.bundle.commitments() if r["step"] == index - 1), None)
        if previous is not None and previous.get(after) != found:
            raise InvalidModelStateError(
                f"step {index} does not start from the {after} step {index - 1} recorded: the checkpoint is not the run's state",
                expected=previous.get(after),
                actual=found,
                step=index,
            )
        return found

    def _check_replay(self, index: int, record: dict[str, Any], audit) -> None:
        """A resumed run re-executes the step after its last checkpoint; it must reproduce the
        recorded commitments exactly. If the run was killed between writing the record and its
        audit event, the event is written now."""
        recorded = next(r for r in self.bundle.commitments() if r["step"] == index)
        for key in self.spec.input_names:
            if recorded.get(key) != record.get(key):
                raise InvalidModelStateError(
                    f"resumed step {index} does not reproduce its recorded {key} commitment",
                    expected=recorded[key],
                    actual=record[key],
                    step=index,
                )
        if self._audited_steps is None:
            events = read_jsonl(self.bundle.path(AUDIT))
            self._audited_steps = {e.get("step") for e in events if e.get("event") == "commitment"}
        if index not in self._audited_steps:
            audit.event("commitment", **recorded)
            self._audited_steps.add(index)

    def requeue_unfinished(self, before_step: int) -> list[int]:
        """Queue again the scheduled steps before ``before_step`` whose proof never reached a
        final outcome (the run was killed while they were queued or proving)."""
        records = [
            r
            for r in self.bundle.commitments()
            if r["scheduled"]
            and r["step"] < before_step
            and r["step"] not in self._final_proofs
            and not parked_path(self.bundle.park_dir, r["step"]).exists()
        ]
        for record in records:
            self._submitted[record["step"]] = record
            self.submit(record["step"])
        return [record["step"] for record in records]

    def submit(self, index: int) -> None:
        assert self.executor is not None and self.pipeline is not None
        self.progress.scheduled += 1
        job = self.job_for(index)
        self._queued_at[index] = time.monotonic()
        if self.watch is not None:
            job = replace(job, progress_path=self.watch.stage_file(index))
        self.executor.submit(job)

    def record_result(self, result: ProofResult) -> None:
        """Write one final outcome to proofs.jsonl; drop the witness unless the job is parked
        or the run keeps every witness."""
        record_outcome(self.bundle, result, keep_witness=self.keep_witnesses)
        if result.status != "parked":
            self._final_proofs.add(result.step)
            self._submitted.pop(result.step, None)
        if result.status == "proved":
            self._proved.add(result.step)
        self.progress.outcomes[result.status] += 1
        if result.proof_type:
            self.progress.proof_types[result.proof_type] += 1
        if self.watch is not None:  # after the count: the bar, drawn from another thread, never shows an ETA beside "0 done"
            self.watch.finished(result.step, result.status == "proved")
        waited_s = time.monotonic() - self._queued_at.pop(result.step, time.monotonic())
        if self.on_result is not None:
            self.on_result(result, waited_s)

    def coverage(self) -> tuple[int, float]:
        """(steps committed, the share of them whose recorded outcome is a proof)."""
        committed = len(self._done_steps)
        return committed, len(self._proved) / committed if committed else 0.0


def proof_job(bundle: RunBundle, spec: Statement, index: int, cache_dir: Path, prover_options: Mapping[str, Any]) -> ProverRequest:
    """The job that proves step ``index`` of ``bundle`` from its witness file."""
    return ProverRequest(
        step=index,
        kind=spec.kind,
        circuit=spec.to_dict(),
        witness_path=str(bundle.witness_path(index)),
        cache_dir=str(cache_dir),
        output_dir=str(bundle.proof_dir(index)),
        options=dict(prover_options),
    )


def record_outcome(bundle: RunBundle, result: ProofResult, *, keep_witness: bool, labels: Mapping[str, Any] | None = None) -> None:
    """Append a proof outcome to the bundle (with ``labels``, e.g. the challenge it answers);
    a final one (not parked) frees its witness unless ``keep_witness``."""
    proof = None
    if result.response is not None and "proof" in result.response.artifacts:
        proof = bundle.relative(result.response.artifacts["proof"])
    bundle.append_proof(
        {
            "step": result.step,
            "status": result.status,
            "proof_type": result.proof_type,
            "strategy": result.strategy,
            "proof": proof,
            "attempts": result.attempts,
            "error": result.error,
            "public": None if result.response is None else result.response.public,
            "timings": None if result.response is None else result.response.timings,
            "recorded_at": time.time(),
            **dict(labels or {}),
        }
    )
    if result.status != "parked" and not keep_witness:
        bundle.witness_path(result.step).unlink(missing_ok=True)
