"""Proving single steps from Python: ``auto_prove_training_step`` and :class:`AutoProver`.

The strategy chain, retry schedule, failure handler and circuit settings come from the same
Hydra config as ``pot-zk train`` (pass overrides such as ``"handler=fallback"``); the result
says which proof type was produced. Plain SGD steps and LoRA steps (our LoraLinear or peft
LoRA models, detected from the model: pot_zk.kinds.lora.detect) get the matching circuit.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from pot_zk.kinds.sgd.circuit import SgdCircuitSpec
from pot_zk.kinds.commitments import StepCommitment
from pot_zk.config import build, compose_config
from pot_zk.proving.pipeline import ProofResult
from pot_zk.kinds.lora.step import LoraTrainingStep
from pot_zk.kinds.lora.circuit import LoraCircuitSpec
from pot_zk.kinds.mlp import MlpArchitecture, architecture_of
from pot_zk.kinds.registry import capture_step, save_training_step, spec_for_step
from pot_zk.kinds.sgd.step import TrainingStep, step_from_states
from pot_zk.proving.strategies import ProofJob
from pot_zk.verify.step import StepStatement, StepVerdict, verify_step

AnyStep = TrainingStep | LoraTrainingStep


class AutoProver:
    """Proves steps with the strategy chain and failure handling the config describes."""

    def __init__(self, work_dir: Path, overrides: Sequence[str] = (), *, sleep=time.sleep) -> None:
        self.work_dir = Path(work_dir).absolute()
        cfg = compose_config([*overrides, f"run_dir='{self.work_dir}'"])
        self.runtime = build(cfg)
        self.cache_dir = Path(cfg.cache_dir).expanduser().absolute()
        self.circuit_settings = {key: int(cfg.circuit[key]) for key in ("scale", "param_scale", "decomp_base", "decomp_legs", "tolerance_ulps")}
        self.pipeline = self.runtime.open_pipeline(sleep=sleep)
        self._numbers = itertools.count()

    def spec_for(self, step: AnyStep) -> SgdCircuitSpec | LoraCircuitSpec:
        return spec_for_step(step, **self.circuit_settings)

    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> AnyStep:
        """Run one SGD step on ``model`` and capture it, as an SGD or a LoRA step by what the
        model is."""
        return capture_step(model, optimizer, inputs, targets)

    def prove(self, step: AnyStep, index: int | None = None) -> ProofResult:
        index = next(self._numbers) if index is None else index
        witness = self.work_dir / "witness" / f"step-{index:08d}.safetensors"
        spec = self.spec_for(step)
        save_training_step(step, witness)
        job = ProofJob(
            step=index,
            kind=spec.kind,
            circuit=spec.to_dict(),
            witness_path=str(witness),
            cache_dir=str(self.cache_dir),
            output_dir=str(self.work_dir / "proofs" / f"step-{index:08d}"),
        )
        return self.pipeline.prove(job)

    def verify(self, step: AnyStep, result: ProofResult) -> StepVerdict:
        """Check a proved result against the step's statement, as a verifier would."""
        if result.status != "proved" or result.response is None:
            return StepVerdict(False, str(result.proof_type), "not-proved", f"the step was {result.status}")
        from pot_zk.backends.ezkl import adapter as ezkl_adapter
        from pot_zk.backends.ezkl import halo2

        spec = self.spec_for(step)
        commitment = StepCommitment.from_dict(result.response.public["commitment"])
        srs = None
        if result.proof_type == "zk-halo2":
            srs = ezkl_adapter.dev_srs(self.cache_dir, halo2.compiled_circuit(spec, self.cache_dir).logrows)
        return verify_step(
            StepStatement(spec, commitment),
            str(result.proof_type),
            Path(result.response.artifacts["proof"]),
            cache_dir=self.cache_dir / "verifier",
            srs=srs,
        )

    def close(self) -> None:
        self.pipeline.audit.event("run.end", status="completed", stats=self.pipeline.stats.get_stats())
        self.pipeline.stats.write(self.work_dir)
        self.pipeline.audit.close()


def _state(model: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return model.state_dict() if isinstance(model, nn.Module) else model


def auto_prove_training_step(
    model_before: nn.Module | Mapping[str, torch.Tensor],
    model_after: nn.Module | Mapping[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor],
    learning_rate: float,
    *,
    work_dir: Path,
    architecture: MlpArchitecture | None = None,
    overrides: Sequence[str] = (),
) -> ProofResult:
    """Prove that ``model_after`` is one SGD step (MSE loss) from ``model_before`` on ``batch``.

    Models may be modules or state dicts (then pass ``architecture``). Invalid states raise
    InvalidModelStateError / WitnessBuilderError before anything is proven.
    """
    if architecture is None:
        if not isinstance(model_before, nn.Module):
            raise TypeError("pass architecture= when the models are state dicts")
        architecture = architecture_of(model_before)
    inputs, targets = batch
    step = step_from_states(_state(model_before), _state(model_after), inputs, targets, learning_rate, architecture)
    prover = AutoProver(Path(work_dir), overrides)
    try:
        return prover.prove(step)
    finally:
        prover.close()
