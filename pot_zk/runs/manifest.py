"""Preparing a run bundle before the first step: every check that can fail runs here, before
any training or proving, and the manifest is written last (a directory without one is not a
run)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pot_zk.bundle.dataset import batch_values, dataset_leaves
from pot_zk.config.build import Runtime
from pot_zk.config.plan import DataSettings, TrainingPlan
from pot_zk.core.atomic import write_bytes_atomic, write_json_atomic
from pot_zk.core.audit import run_start_fields
from pot_zk.core.merkle import dataset_root
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.optimizer import OPTIMIZERS
from pot_zk.bundle.layout import RUN_FORMAT
from pot_zk.runs import bundle as files
from pot_zk.runs.base_run import base_commitment
from pot_zk.runs.bundle import RunBundle, save_model
from pot_zk.data.datasets import Batch, HeldOut
from pot_zk.data.samples import LEAF_NAME
from pot_zk.runs.witnesses import witness_retention



def _check_cache_dir(cache_dir: Path) -> None:
    """The key cache must be a writable directory; say so before any work, naming the key."""
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise ConfigurationError(f"cache_dir {cache_dir} is not a writable directory: {exc}", key="cache_dir") from exc


def base_entry(plan: TrainingPlan) -> dict[str, Any]:
    """For a run on a frozen base (LoRA): the base run and the commitment its final model hashes to."""
    if plan.base_run is None:
        return {}
    return {"base": {"run": str(plan.base_run), "commitment": base_commitment(plan.base_run)}}


def holdout_record(held_out: HeldOut | None, plan: TrainingPlan) -> dict[str, Any] | None:
    """What dataset.json says of the held-out set (the manifest: the same without ``indices``):
    how it was chosen (fraction, seed, out of how many samples), which samples, and their
    commitment (X then Y, row-major, like a batch)."""
    if held_out is None:
        return None
    values = batch_values(held_out.inputs, held_out.targets)
    return {
        "fraction": float(held_out.fraction),
        "seed": int(held_out.seed),
        "of": int(held_out.of),
        "samples": len(held_out.indices),
        "indices": list(held_out.indices),
        "commitment": plan.commitments.commit(values, "held-out samples"),
    }


def declared_dataset(data: DataSettings) -> dict[str, Any]:
    """The manifest's ``dataset`` entry without root and counts: what ``pot-zk verify`` needs to
    recompute a built-in data set (synthetic: its sample count and seed)."""
    declared: dict[str, Any] = {"name": data.name, "part": data.part}
    if data.name == "synthetic":
        declared.update({"num_samples": data.num_samples, "seed": data.seed})
    return declared


def training_plan(plan: TrainingPlan) -> dict[str, Any]:
    """The manifest's ``training`` entry. A seeded run declares its whole schedule (epochs,
    max_steps, seed: ``pot-zk verify`` recomputes the batch order and step count); a recorded
    run (a user loop, :mod:`pot_zk.hooks`) declares no schedule, its batch order is recorded per step.
    ``arithmetic``: ``exact`` when the backend's statement is exact (the initial model rounded onto
    its grid, every update the statement's integer step), ``float`` when torch's update is proven.
    ``batches: streamed``: a loop committed each batch as it came (:mod:`pot_zk.runs.track`).
    ``schedule``: the declared learning-rate schedule from the statement's rate, when there is one
    (:mod:`pot_zk.kinds.schedule`): verify recomputes each step's rate from it."""
    arithmetic = "float" if plan.backend.training_arithmetic(plan.spec) is None else "exact"
    optimizer = f"torch.optim.{OPTIMIZERS[plan.model.optimizer.name].__name__}"
    schedule = {} if plan.schedule is None else {"schedule": plan.schedule.to_dict()}
    if plan.batch_order == "recorded":
        streamed = {"batches": "streamed"} if plan.streamed else {}
        return {"batch_order": "recorded", "optimizer": optimizer, "arithmetic": arithmetic, **streamed, **schedule}
    return {
        "batch_order": "seeded", "epochs": plan.epochs, "max_steps": plan.max_steps, "seed": plan.seed,
        "optimizer": optimizer, "arithmetic": arithmetic, **schedule,
    }


def streamed_entries(name: str, root: str | None, size: int | None, declared: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``dataset`` entry of a loop that commits each batch as it comes
    (:mod:`pot_zk.runs.track`): the declared data set (``declared``, :func:`declared_dataset`: a
    built-in set's name and part, ``user``, or ``undeclared`` without root) and the Merkle root of
    its ``size`` samples (:mod:`pot_zk.data.samples`), which each step's recorded sample
    positions point into."""
    return {**declared, "name": name, "root": root, "num_batches": None, "size": size, "leaf": None if root is None else LEAF_NAME}


def declared_entries(plan: TrainingPlan, runtime: Runtime) -> dict[str, Any]:
    """The manifest entries that follow from the configuration alone (no data, no keys set up):
    what ``pot-zk resume`` requires the run's config to give again (:mod:`pot_zk.runs.resume`)."""
    return {
        "mode": runtime.mode,
        "proving_enabled": runtime.proving_enabled,
        "strategy": runtime.strategy.name,
        "handler": runtime.handler.name,
        "circuit": plan.spec.to_dict(),
        "circuit_id": plan.spec.circuit_id(),
        "training": training_plan(plan),
        "policy": {"name": plan.policy.name, **{k: v for k, v in vars(plan.policy).items()}},
        "backend": plan.backend.name,
        "prover_options": plan.backend.prover_options(plan.keys),
    }


def prepare_run(
    bundle: RunBundle,
    plan: TrainingPlan,
    runtime: Runtime,
    batches: list[Batch],
    initial_state: dict[str, torch.Tensor],
    config_yaml: str,
    held_out: HeldOut | None = None,
    samples: list[list[int]] | None = None,
    *,
    streamed: dict[str, Any] | None = None,
    constants: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check keys and cache, write dataset.json, config.yaml, the initial model and (last) the
    manifest (a failure before the manifest removes the files this call wrote: no run started). ``samples``: each declared batch's positions in a built-in data set (a user loop's);
    ``streamed``: the ``dataset`` entry of a run whose batches are committed as they come
    (:func:`streamed_entries`; ``batches`` is then empty); ``constants``: the commitments of a
    kind's constant inputs (a LoRA base) the loop's model holds, declared without a base run."""
    if runtime.proving_enabled:
        plan.backend.check_key_policy(plan.keys, runtime.mode)
    leaves = dataset_leaves(batches, plan.commitments)
    holdout = holdout_record(held_out, plan)
    root = dataset_root(leaves, None if holdout is None else holdout["commitment"]) if streamed is None else streamed["root"]
    keys: dict[str, Any] = {}
    if runtime.proving_enabled:
        _check_cache_dir(plan.cache_dir)
        keys = plan.backend.prepare(plan.spec, plan.cache_dir, plan.keys)
    prover_options = plan.backend.prover_options(plan.keys)
    bundle.root.mkdir(parents=True, exist_ok=True)
    written = [bundle.path(name) for name in (files.DATASET, files.CONFIG, files.INITIAL_MODEL) if not bundle.path(name).exists()]
    try:
        write_json_atomic(
            bundle.path(files.DATASET),
            {
                "root": root,
                "leaves": leaves,
                "holdout": holdout,
                "batch_size": plan.spec.batch_size,
                "scale": plan.spec.scale,
                "encoding": "X then Y, row-major" if streamed is None else f"batches committed as they came; samples: {streamed['leaf']}",
                **({} if samples is None else {"samples": samples}),
                **({} if streamed is None else {"size": streamed["size"]}),
            },
        )
        write_bytes_atomic(bundle.path(files.CONFIG), config_yaml.encode())
        save_model(initial_state, bundle.path(files.INITIAL_MODEL))
        versions = run_start_fields({})["versions"]
        bundle.write_manifest(
            {
                "format": RUN_FORMAT,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **declared_entries(plan, runtime),
                "dataset": {
                    **declared_dataset(plan.data),
                    "root": root,
                    "num_batches": len(leaves),
                    "holdout": None if holdout is None else {k: v for k, v in holdout.items() if k != "indices"},
                } if streamed is None else {**streamed, "holdout": None},
                "executor": {"name": plan.executor, "workers": plan.workers},
                **keys,
                "witnesses": witness_retention(plan.spec, plan.witness.retain, plan.witness.max_step_bytes).to_dict(),
                "versions": versions,
                **base_entry(plan),
                **{name: {"run": None, "commitment": commitment} for name, commitment in (constants or {}).items()},
            }
        )
    except BaseException:  # a full disk, Ctrl-C: no run started, so leave none of its files (train again into the directory)
        if not bundle.path(files.MANIFEST).exists():
            for path in written:
                path.unlink(missing_ok=True)
        raise
    return {"leaves": leaves, "prover_options": prover_options}
