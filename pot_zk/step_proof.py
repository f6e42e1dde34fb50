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

from pot_zk.backends.base import KeySettings, ProverBackend, VerifierKeys, VerifierOptions
from pot_zk.backends.registry import commit_step
from pot_zk.config.build import Runtime
from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.registry import kind_of, save_training_step
from pot_zk.backends.base import Statement
from pot_zk.proving.pipeline import ProofResult
from pot_zk.core.protocol import ProverRequest
from pot_zk.verify.step import StepStatement, step_keys

AnyStep = BatchStep
BatchData = Union[tuple[Any, Any], list, Mapping[str, Any]]


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
    """The configured backend, its circuit settings, key cache and key material; the jobs and
    statements of steps."""

    cache_dir: Path
    backend: ProverBackend
    circuit: Mapping[str, Any]
    keys: KeySettings

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> "ProvingSetup":
        """Settings from a built config; a mode that refuses dev keys (production) needs its
        own key material (``srs.path``) when it proves (ConfigurationError)."""
        plan = runtime.plan
        if runtime.proving_enabled:
            plan.backend.check_key_policy(plan.keys, runtime.mode)
        keys = KeySettings(plan.keys.path.expanduser().absolute() if plan.keys.path is not None else None, plan.keys.allow_dev)
        return cls(cache_dir=plan.cache_dir, backend=plan.backend, circuit=plan.circuit, keys=keys)

    def spec_for(self, step: AnyStep) -> Statement:
        """The configured backend's circuit spec for ``step``."""
        return self.backend.circuit_spec(kind_of(step), step.architecture, step.batch_size, step.learning_rate, self.circuit)

    def statement_for(self, step: AnyStep) -> StepStatement:
        """The step's circuit spec and its own commitments: the reference a proof is checked against."""
        spec = self.spec_for(step)
        return StepStatement(spec, commit_step(step, spec))

    def write_job(self, step: AnyStep, index: int, run_dir: Path) -> ProverRequest:
        """Write the step's witness into ``run_dir`` and describe its proof job."""
        witness = Path(run_dir) / "witness" / f"step-{index:08d}.safetensors"
        save_training_step(step, witness)
        spec = self.spec_for(step)
        return ProverRequest(
            step=index,
            kind=spec.kind,
            circuit=spec.to_dict(),
            witness_path=str(witness),
            cache_dir=str(self.cache_dir),
            output_dir=str(Path(run_dir) / "proofs" / f"step-{index:08d}"),
            options=self.backend.prover_options(self.keys),
        )

    def verifier_keys(self, spec: Statement, proof_type: str) -> VerifierKeys | None:
        """The key material that checks ``proof_type`` proofs of ``spec``: the configured key
        file (``srs.path``), else the dev keys in the cache (circuits derived in ``verifier/``)."""
        options = VerifierOptions(self.cache_dir, self.cache_dir / "verifier", self.keys.path, self.keys.allow_dev)
        return step_keys(spec, proof_type, options)


DISABLED = "disabled"
"""The status and proof type of a step that was not handed to a prover (proving disabled)."""


def disabled_result(step: int) -> ProofResult:
    """The result of a step when proving is disabled: no prover ran, nothing is proven, nothing
    is counted in the statistics."""
    return ProofResult(step=step, status=DISABLED, proof_type=DISABLED, strategy=None, response=None, error=None, attempts=0)


@dataclass(frozen=True)
class StepProof(Mapping):
    """One step's proof outcome. Keys (and attributes): ``success``, ``status`` (``proved``,
    ``failed``, ``parked``, ``disabled``), ``proof_type`` (the proof's when proved, ``disabled``
    when proving is disabled, else None), ``proof`` (the proof file's bytes, None unless proved),
    ``proof_path``, ``strategy``, ``attempts``, ``error`` (a record, None unless failed),
    ``step``, ``epoch``, ``kind`` (``sgd`` / ``lora``), ``commitment`` and ``circuit`` (the
    statement, from the step itself)."""

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

