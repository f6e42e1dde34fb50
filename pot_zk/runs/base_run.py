"""Runs on a frozen base (LoRA fine-tuning): the base is an earlier run's final model.

Such a run's manifest names the base run and the base commitment (that run's last W_t+1
commitment, which its final model must hash to). Each step commits to the trained weights
(for LoRA the adapters, chained like weights in an SGD run) and proves against that constant
base commitment. Which kinds have a base: :meth:`pot_zk.kinds.base.StepKind.base_architecture`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pot_zk.backends.base import CommitmentScheme
from pot_zk.exceptions import ConfigurationError, PotZkError, WitnessBuilderError
from pot_zk.kinds.mlp import MlpArchitecture, flatten
from pot_zk.runs.bundle import FINAL_MODEL, RunBundle, load_model


def base_commitment(run: Path) -> str:
    """The commitment of the base run's final weights (its last step's W_t+1)."""
    try:
        records = RunBundle.open(run).commitments()
    except (PotZkError, OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the base run {run}: {exc}", key="model.base_run") from exc
    if not records:
        raise ConfigurationError(f"the base run {run} has no training steps", key="model.base_run")
    return str(max(records, key=lambda r: r["step"])["w_after"])


def base_run_model(run: Path, architecture: MlpArchitecture, commitments: CommitmentScheme, backend: str) -> dict[str, torch.Tensor]:
    """The base run's final weights, after checking the run's architecture and that the file
    hashes (under ``commitments``, the new run's scheme) to the run's last commitment."""
    bundle = RunBundle.open(run)
    trained_with = str(bundle.manifest().get("backend", "ezkl"))
    if trained_with != backend:
        raise ConfigurationError(
            f"the base run {run} was trained with prover={trained_with}, whose commitments (and grid) are not "
            f"those of prover={backend}: train the base with prover={backend}",
            key="model.base_run",
        )
    declared = bundle.manifest()["circuit"]["architecture"]
    if declared != architecture.to_dict():
        raise ConfigurationError(
            f"the base run {run} trained {declared}, the LoRA model needs base {architecture.to_dict()}", key="model.base_run"
        )
    if not bundle.path(FINAL_MODEL).is_file():
        raise ConfigurationError(f"the base run {run} has no final model (did it complete?)", key="model.base_run")
    state, _ = load_model(bundle.path(FINAL_MODEL))
    try:
        found = commitments.commit(flatten({k: v.double() for k, v in state.items()}, architecture.param_shapes), "base model weights")
    except WitnessBuilderError as exc:
        raise ConfigurationError(f"the final model of {run} does not fit the commitment range: {exc.message}", key="model.base_run") from exc
    if found != base_commitment(run):
        raise ConfigurationError(f"the final model of {run} does not hash to its last commitment", key="model.base_run")
    return state
