"""What ``pot-zk resume`` checks before it continues a run, so that a resumed run is the run its
manifest and committed steps declare, never another:

* the run has not completed (``run.end`` of its training with status ``completed``, or a final
  model): a completed run is never extended;
* the configuration it resumes with (``config.yaml``, possibly edited) gives the manifest's
  statement, training plan, policy, mode, handler, backend and prover options again
  (:func:`pot_zk.runs.manifest.declared_entries`) and the same declared data set;
* the checkpoint continues the committed steps: its step number is at most the number of
  steps committed (0..n-1, none missing), and its weights commit to the state the step before
  it recorded (W_t+1 of step k-1; W_0 for step 0). A momentum step's velocity is checked at the
  first step, as before (:meth:`pot_zk.runs.proven_run.ProvenRun.record_step`).

Each refusal is a ConfigurationError (naming what differs) or InvalidModelStateError (the
checkpoint), raised before anything is written.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import torch

from pot_zk.config.build import Runtime
from pot_zk.config.plan import TrainingPlan
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.manifest import declared_dataset, declared_entries


def check_resumable(bundle: RunBundle, plan: TrainingPlan, runtime: Runtime) -> None:
    """Refuse a completed run (its training's ``run.end`` says ``completed``), or a configuration
    that is not the manifest's. A final model without that record is a run killed while it
    closed (after the final model was written, before ``run.end``): resume finishes the close
    (the final model written again from the checkpoint, scored, ``run.end``) rather than leave it
    unverifiable for good (found by a review)."""
    events = files.complete_records(bundle.path(files.AUDIT))
    completed = [e for e in files.training_ends(events) if e.get("status") == "completed"]
    if completed:
        unfinished = files.open_session(events)  # review53: after a killed respond, resume's refusal did not say what finishes it
        how = {"respond": "pot-zk respond RUN CHALLENGE.json", "prove-pending": "pot-zk prove-pending RUN"}.get(str(unfinished), f"pot-zk {unfinished} RUN")
        raise ConfigurationError(
            f"{bundle.root} holds a completed run: pot-zk resume continues a stopped run, it never extends a completed one "
            "(train a new run for more steps)"
            + (f"; its audit trail ends in an unfinished {unfinished}: run {how.replace('RUN', shlex.quote(str(bundle.root)))} again to finish it" if unfinished else ""),
            key="run_dir",
        )
    manifest = bundle.manifest()
    expected = {**declared_entries(plan, runtime), "dataset": declared_dataset(plan.data)}
    found = {**{key: manifest.get(key) for key in expected}, "dataset": {k: manifest["dataset"].get(k) for k in expected["dataset"]}}
    differing = sorted(key for key in expected if _plain(expected[key]) != _plain(found[key]))
    if differing:
        raise ConfigurationError(
            f"the configuration to resume {bundle.root} with is not the run's: {', '.join(differing)} differ from manifest.json "
            f"(config.yaml edited?); resume continues the declared run only",
            key="config",
            differing={key: {"manifest": found[key], "config": expected[key]} for key in differing},
        )
    check_keys_at_hand(bundle, plan, runtime)


def check_keys_at_hand(bundle: RunBundle, plan: TrainingPlan, runtime: Runtime) -> None:
    """A run that has steps left to prove continues only with the key material its manifest
    declares at hand: ConfigurationError if the resumed run's proofs would be made with other
    keys (its dev key cleared from the cache: a new setup would prove steps no verifier of the
    run accepts; review40). A run with nothing left to prove needs no key (review42)."""
    if runtime.proving_enabled and _proves_more(bundle, plan):
        manifest = bundle.manifest()
        plan.backend.check_keys_at_hand(plan.spec, plan.cache_dir, manifest.get("prover_options") or {}, manifest)


def _proves_more(bundle: RunBundle, plan: TrainingPlan) -> bool:
    """Whether resuming may prove a step: one selected before whose proof has no final outcome
    (queued again), or one still to train that the policy selects (a seeded run's count is
    known; a loop's is not: assumed so)."""
    records = bundle.commitments()
    final = {r.get("step") for r in bundle.proofs() if r.get("status") in ("proved", "failed")}
    if any(r.get("scheduled") and r.get("step") not in final for r in records):
        return True
    batches = (bundle.manifest().get("dataset") or {}).get("num_batches")
    if plan.batch_order != "seeded" or not isinstance(batches, int):
        return True
    total = plan.epochs * batches if plan.max_steps is None else min(plan.epochs * batches, plan.max_steps)
    return any(plan.policy(step) for step in range(len(records), total))


def check_checkpoint(bundle: RunBundle, plan: TrainingPlan, model: torch.nn.Module, start_step: int) -> None:
    """Refuse a checkpoint that skips committed steps or does not hold the committed state."""
    records = {r.get("step"): r for r in bundle.commitments()}
    steps = sorted(s for s in records if isinstance(s, int))
    if steps != list(range(len(records))):
        raise InvalidModelStateError(f"the committed steps of {bundle.root} are not 0..n-1 (found {steps[:10]}...): the records are damaged", step=start_step)
    if start_step > len(steps):
        raise InvalidModelStateError(
            f"the checkpoint is at step {start_step} but {len(steps)} steps are committed: resuming from it would skip steps "
            f"{len(steps)}..{start_step - 1}",
            expected=f"at most step {len(steps)}",
            actual=start_step,
            step=start_step,
        )
    if not steps:
        return
    wanted = records[start_step - 1]["w_after"] if start_step > 0 else records[0]["w_before"]
    weights = plan.kind.model_tensors(model.state_dict(), plan.spec.architecture)["weights"]
    if plan.commitments.commit(weights.double(), "checkpoint weights") != wanted:
        which = f"W_t+1 of step {start_step - 1} (its w_after)" if start_step > 0 else "W_0 of step 0 (its w_before)"
        raise InvalidModelStateError(
            f"the checkpoint's weights (step {start_step}) do not commit to {which}: it is not the run's state",
            expected=wanted,
            step=start_step,
        )


def _plain(value: Any) -> Any:
    """JSON's view of a value (tuples as lists), as the manifest holds it."""
    return json.loads(json.dumps(value))
