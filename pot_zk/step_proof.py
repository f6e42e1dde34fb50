"""What the seed's entry points hand back (:class:`StepProof`) and what they share to get there
(:class:`ProvingSetup`: circuit settings, key cache and SRS from the config).

A :class:`StepProof` reads both ways, as the seed's dictionaries did and as a value:
``result["proof_type"]`` is ``result.proof_type``. Its ``statement`` (circuit spec and
commitments) is computed from the step itself, never taken from the prover's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

import torch
from omegaconf import DictConfig

from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.commitments import commit_step
from pot_zk.kinds.registry import save_training_step, spec_for_step
from pot_zk.kinds.spec_base import CircuitSpec
from pot_zk.proving.pipeline import ProofResult
from pot_zk.proving.strategies import ProofJob
from pot_zk.runs.manifest import check_srs_policy
from pot_zk.verify.step import StepStatement

AnyStep = BatchStep
BatchData = Union[tuple[Any, Any], list, Mapping[str, Any]]
FIXED_POINT_KEYS = ("scale", "param_scale", "decomp_base", "decomp_legs", "tolerance_ulps")


def batch_tensors(batch_data: BatchData) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` from a pair or from the seed's ``{"inputs": ..., "targets": ...}``."""
    if isinstance(batch_data, Mapping) and "inputs" in batch_data and "targets" in batch_data:
        return torch.as_tensor(batch_data["inputs"]), torch.as_tensor(batch_data["targets"])
    if isinstance(batch_data, (tuple, list)) and len(batch_data) == 2:
        return torch.as_tensor(batch_data[0]), torch.as_tensor(batch_data[1])
    actual = sorted(map(str, batch_data)) if isinstance(batch_data, Mapping) else type(batch_data).__name__
    raise WitnessBuilderError(
        "batch_data must be (inputs, targets) or {'inputs': ..., 'targets': ...}",
        expected_format="(inputs, targets) or {'inputs': ..., 'targets': ...}",
        actual_format=actual,
    )


@dataclass(frozen=True)
class ProvingSetup:
    """Circuit settings, key cache and SRS of one configuration; the jobs and statements of steps."""

    cache_dir: Path
    fixed_point: dict[str, int]
    srs_path: Path | None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "ProvingSetup":
        """Settings from a composed config; a mode that refuses the dev SRS (production) needs
        ``srs.path`` when it proves (ConfigurationError)."""
        if cfg.proving.enabled:
            check_srs_policy(cfg.srs.path, bool(cfg.srs.allow_dev_srs), str(cfg.proving.mode))
        return cls(
            cache_dir=Path(cfg.cache_dir).expanduser().absolute(),
            fixed_point={key: int(cfg.circuit[key]) for key in FIXED_POINT_KEYS},
            srs_path=None if cfg.srs.path is None else Path(cfg.srs.path).expanduser().absolute(),
        )

    def spec_for(self, step: AnyStep) -> CircuitSpec:
        return spec_for_step(step, **self.fixed_point)

    def statement_for(self, step: AnyStep) -> StepStatement:
        """The step's circuit spec and its own commitments: the reference a proof is checked against."""
        spec = self.spec_for(step)
        return StepStatement(spec, commit_step(step, spec.scale, spec.value_bound))

    def write_job(self, step: AnyStep, index: int, run_dir: Path) -> ProofJob:
        """Write the step's witness into ``run_dir`` and describe its proof job."""
        witness = Path(run_dir) / "witness" / f"step-{index:08d}.safetensors"
        save_training_step(step, witness)
        spec = self.spec_for(step)
        return ProofJob(
            step=index,
            kind=spec.kind,
            circuit=spec.to_dict(),
            witness_path=str(witness),
            cache_dir=str(self.cache_dir),
            output_dir=str(Path(run_dir) / "proofs" / f"step-{index:08d}"),
            options={} if self.srs_path is None else {"srs_path": str(self.srs_path)},
        )

    def srs_for(self, spec: CircuitSpec):
        """The SRS that checks ``zk-halo2`` proofs of ``spec``: ``srs.path``, else the dev SRS."""
        from pot_zk.backends.ezkl import adapter as ezkl_adapter
        from pot_zk.backends.ezkl import halo2

        logrows = halo2.compiled_circuit(spec, self.cache_dir).logrows
        if self.srs_path is not None:
            return ezkl_adapter.configured_srs(self.srs_path, logrows)
        return ezkl_adapter.dev_srs(self.cache_dir, logrows)


@dataclass(frozen=True)
class StepProof(Mapping):
    """One step's proof outcome. Keys (and attributes): ``success``, ``status`` (``proved``,
    ``failed``, ``parked``), ``proof_type`` (None unless proved), ``proof`` (the proof file's
    bytes, None unless proved), ``proof_path``, ``strategy``, ``attempts``, ``error`` (a record,
    None unless failed), ``step``, ``epoch``, ``kind`` (``sgd`` / ``lora``), ``commitment`` and
    ``circuit`` (the statement, from the step itself)."""

    result: ProofResult
    statement: StepStatement
    epoch: int | None = None

    KEYS = ("success", "status", "proof_type", "proof", "proof_path", "strategy", "attempts", "error", "step", "epoch", "kind", "commitment", "circuit")

    @property
    def success(self) -> bool:
        return self.result.status == "proved"

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def proof_type(self) -> str | None:
        return self.result.proof_type

    @property
    def proof_path(self) -> Path | None:
        response = self.result.response
        return None if response is None or "proof" not in response.artifacts else Path(response.artifacts["proof"])

    @property
    def proof(self) -> bytes | None:
        return None if self.proof_path is None else self.proof_path.read_bytes()

    @property
    def strategy(self) -> str | None:
        return self.result.strategy

    @property
    def attempts(self) -> int:
        return self.result.attempts

    @property
    def error(self) -> dict[str, Any] | None:
        return self.result.error

    @property
    def response(self):
        return self.result.response

    @property
    def step(self) -> int:
        return self.result.step

    @property
    def kind(self) -> str:
        return self.statement.spec.kind

    @property
    def commitment(self) -> dict[str, Any]:
        return self.statement.commitment.to_dict()

    @property
    def circuit(self) -> dict[str, Any]:
        return self.statement.spec.to_dict()

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(f"{key!r}; a StepProof has {', '.join(self.KEYS)}")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

