"""Preparing a run bundle before the first step: every check that can fail runs here, before
any training or proving, and the manifest is written last (a directory without one is not a
run)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pot_zk.runs import bundle as files
from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.core.atomic import write_bytes_atomic, write_json_atomic
from pot_zk.core.audit import run_start_fields
from pot_zk.runs.bundle import RunBundle, save_model
from pot_zk.kinds.commitments import commit_values
from pot_zk.config.build import Runtime
from pot_zk.runs.data import Batch, HeldOut
from pot_zk.kinds.spec_base import CircuitSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs.base_run import base_commitment
from pot_zk.core.merkle import dataset_root

if TYPE_CHECKING:
    from pot_zk.runs.train import TrainingPlan

RUN_FORMAT = "pot-zk-run/1"


def check_srs_policy(srs_path: str | None, allow_dev_srs: bool, mode: str) -> None:
    if srs_path is None and not allow_dev_srs:
        raise ConfigurationError(
            f"mode {mode} refuses the locally generated dev SRS (whoever made it knows its trapdoor and "
            "could forge proofs); set srs.path to an SRS file from a ceremony you trust, or accept the "
            "risk explicitly with srs.allow_dev_srs=true",
            key="srs.path",
        )


def _check_cache_dir(cache_dir: Path) -> None:
    """The key cache must be a writable directory; say so before any work, naming the key."""
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise ConfigurationError(f"cache_dir {cache_dir} is not a writable directory: {exc}", key="cache_dir") from exc


def srs_for(plan: "TrainingPlan") -> dict[str, Any]:
    """Compile the step circuit (cached) and settle which SRS its proofs use."""
    from pot_zk.backends.ezkl import halo2

    _check_cache_dir(plan.cache_dir)
    circuit = halo2.compiled_circuit(plan.spec, plan.cache_dir)
    if plan.srs_path is not None:
        srs = ezkl_adapter.configured_srs(Path(plan.srs_path), circuit.logrows)
    else:
        srs = ezkl_adapter.dev_srs(plan.cache_dir, circuit.logrows)
    return {"provenance": srs.provenance, "sha256": srs.sha256, "logrows": srs.logrows, "circuit_logrows": circuit.logrows}


def base_entry(plan: "TrainingPlan") -> dict[str, Any]:
    """For a run on a frozen base (LoRA): the base run and the commitment its final model hashes to."""
    if plan.base_run is None:
        return {}
    return {"base": {"run": str(plan.base_run), "commitment": base_commitment(plan.base_run)}}


def dataset_leaves(batches: list[Batch], spec: CircuitSpec) -> list[str]:
    return [
        commit_values(torch.cat([b.inputs.reshape(-1), b.targets.reshape(-1)]).double(), spec.scale, spec.value_bound, f"batch {b.index}")
        for b in batches
    ]


def holdout_record(held_out: HeldOut | None, plan: "TrainingPlan") -> dict[str, Any] | None:
    """What dataset.json says of the held-out set (the manifest: the same without ``indices``):
    how it was chosen (fraction, seed, out of how many samples), which samples, and their
    commitment (X then Y, row-major, like a batch)."""
    if held_out is None:
        return None
    spec = plan.spec
    values = torch.cat([held_out.inputs.reshape(-1), held_out.targets.reshape(-1)]).double()
    return {
        "fraction": held_out.fraction,
        "seed": held_out.seed,
        "of": held_out.of,
        "samples": len(held_out.indices),
        "indices": list(held_out.indices),
        "commitment": commit_values(values, spec.scale, spec.value_bound, "held-out samples"),
    }


def declared_dataset(data: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``dataset`` entry without root and counts: what ``pot-zk verify`` needs to
    recompute a built-in data set (synthetic: its sample count and seed)."""
    declared = {"name": data["name"], "part": data.get("part", "all")}
    if data["name"] == "synthetic":
        declared.update({key: int(data[key]) for key in ("num_samples", "seed") if key in data})
    return declared


def training_plan(plan: "TrainingPlan") -> dict[str, Any]:
    """The manifest's ``training`` entry. A seeded run declares its whole schedule (epochs,
    max_steps, seed: ``pot-zk verify`` recomputes the batch order and step count); a recorded
    run (a user loop, :mod:`pot_zk.hooks`) declares no schedule, its batch order is recorded per step."""
    if plan.batch_order == "recorded":
        return {"batch_order": "recorded", "optimizer": "torch.optim.SGD"}
    return {"batch_order": "seeded", "epochs": plan.epochs, "max_steps": plan.max_steps, "seed": plan.seed, "optimizer": "torch.optim.SGD"}


def prepare_run(
    bundle: RunBundle,
    plan: "TrainingPlan",
    runtime: Runtime,
    batches: list[Batch],
    initial_state: dict[str, torch.Tensor],
    config_yaml: str,
    held_out: HeldOut | None = None,
) -> dict[str, Any]:
    if runtime.proving_enabled:
        check_srs_policy(plan.srs_path, plan.allow_dev_srs, runtime.mode)
    leaves = dataset_leaves(batches, plan.spec)
    holdout = holdout_record(held_out, plan)
    root = dataset_root(leaves, None if holdout is None else holdout["commitment"])
    srs = srs_for(plan) if runtime.proving_enabled else None
    prover_options = {"srs_path": str(Path(plan.srs_path).absolute())} if plan.srs_path else {}
    bundle.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        bundle.path(files.DATASET),
        {
            "root": root,
            "leaves": leaves,
            "holdout": holdout,
            "batch_size": plan.spec.batch_size,
            "scale": plan.spec.scale,
            "encoding": "X then Y, row-major",
        },
    )
    write_bytes_atomic(bundle.path(files.CONFIG), config_yaml.encode())
    save_model(initial_state, bundle.path(files.INITIAL_MODEL))
    versions = run_start_fields({})["versions"]
    bundle.write_manifest(
        {
            "format": RUN_FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mode": runtime.mode,
            "proving_enabled": runtime.proving_enabled,
            "strategy": runtime.strategy.name,
            "handler": runtime.handler.name,
            "circuit": plan.spec.to_dict(),
            "circuit_id": plan.spec.circuit_id(),
            "dataset": {
                **declared_dataset(plan.data),
                "root": root,
                "num_batches": len(leaves),
                "holdout": None if holdout is None else {k: v for k, v in holdout.items() if k != "indices"},
            },
            "training": training_plan(plan),
            "policy": {"name": plan.policy.name, **{k: v for k, v in vars(plan.policy).items()}},
            "executor": {"name": plan.executor, "workers": plan.workers},
            "srs": srs,
            "prover_options": prover_options,
            "witnesses": plan.witnesses.to_dict(),
            "versions": versions,
            **base_entry(plan),
        }
    )
    return {"leaves": leaves, "prover_options": prover_options}
