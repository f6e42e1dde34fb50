"""Prover backends: the registries agree with what they name, the ezkl backend checks its circuit
settings, and a new backend is one module plus one prover option file: the run commits with
its scheme and trains with its arithmetic, and verify checks the bundle with its scheme."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import pytest
import torch

from pot_zk.backends.base import KeySettings, ProverBackend, StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.registry import BACKENDS, PROOF_TYPES, spec_from_dict
from pot_zk.config import compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.core.registry import Registry
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.encoding import from_fixed_point, to_fixed_point
from pot_zk.kinds.mlp import MlpArchitecture, flatten
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.backends.ezkl.sgd import SgdCircuitSpec
from pot_zk.runs.bundle import RunBundle, load_model
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

GRID = 8


def test_every_registered_name_is_the_name_its_implementation_declares():
    for name, kind in STEP_KINDS.items():
        assert (kind.name, kind.step_type.kind) == (name, name)
    for name, backend in BACKENDS.items():
        assert backend.name == name
        assert PROOF_TYPES.get(backend.proof_type) is backend
        for kind, statement in backend.statements.items():
            assert (statement.kind, statement.backend) == (kind, name)
    for proof_type, verifier in PROOF_TYPES.items():
        assert verifier.proof_type == proof_type


def test_an_unknown_backend_is_a_configuration_error_naming_the_valid_ones():
    with pytest.raises(ConfigurationError, match="unknown prover backend 'halo3'; valid: ezkl") as raised:
        BACKENDS.get("halo3")
    assert raised.value.context["key"] == "prover.backend"


@pytest.mark.parametrize(("settings", "message"), [
    ({"tolerance_ulp": 2}, r"unknown circuit setting\(s\) \['tolerance_ulp'\] for the ezkl backend; valid: scale, param_scale"),
    ({"scale": "12"}, r"circuit.scale must be an integer, got '12'"),
    ({"scale": 40}, r"scale must be in 1..24"),
])
def test_the_ezkl_backend_checks_its_circuit_settings(settings, message):
    sgd = STEP_KINDS.get("sgd")
    with pytest.raises(ConfigurationError, match=message):
        BACKENDS.get("ezkl").circuit_spec(sgd, MlpArchitecture((4, 3, 2)), 2, 0.1, settings)


def test_a_misspelt_circuit_setting_fails_at_compose_time():
    assert compose_config(["prover=ezkl", "circuit.tolerance_ulps=2"]).circuit.tolerance_ulps == 2
    with pytest.raises(ConfigurationError, match=r"^unknown key circuit.tolerance_ulp \(did you mean circuit.tolerance_ulps\?\)$"):
        compose_config(["prover=ezkl", "circuit.tolerance_ulp=2"])


@dataclass(frozen=True)
class ToySpec(SgdCircuitSpec):
    """The sgd check statement, owned by the toy backend (named in its dict)."""

    backend: ClassVar[str] = "toy"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "backend": self.backend}


@dataclass(frozen=True)
class Sha256OnGrid:
    """Values on the 2**-GRID grid, committed as the SHA-256 of their integers."""

    def tensor(self, name: str) -> "Sha256OnGrid":
        return self  # every tensor on the one grid

    def snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        return from_fixed_point(to_fixed_point(values, GRID, 64.0, what), GRID)

    def commit(self, values: torch.Tensor, what: str) -> str:
        return "0x" + hashlib.sha256(repr(to_fixed_point(values, GRID, 64.0, what)).encode()).hexdigest()

    @staticmethod
    def is_commitment(text: object) -> bool:
        return isinstance(text, str) and re.fullmatch("0x[0-9a-f]{64}", text) is not None


class GridArithmetic:
    """Training on the grid: the initial weights and every update are rounded onto it."""

    def start(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(torch.round(parameter * 2**GRID) / 2**GRID)

    def step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: BatchStep) -> BatchStep:
        self.start(model)
        after = {key: value.detach().double().clone() for key, value in model.state_dict().items()}
        return type(step)(step.architecture, step.learning_rate, step.weights_before, after, step.inputs, step.targets, step.loss)


class ToyBackend(ProverBackend):
    """A backend that commits and trains its own way and proves nothing (proving disabled)."""

    name = "toy"
    proof_type = "toy-proof"
    zero_knowledge = False
    exact = True
    description = "a toy that proves nothing"
    statements = Registry("toy statement", "model.kind", {"sgd": ToySpec})

    def commitments(self, spec: ToySpec) -> Sha256OnGrid:
        return Sha256OnGrid()

    def training_arithmetic(self, spec: ToySpec) -> GridArithmetic:
        return GridArithmetic()

    def check_key_policy(self, keys: KeySettings, mode: str) -> None:
        raise AssertionError("proving is disabled: no keys are needed")

    def prepare(self, spec: ToySpec, cache_dir: Path, keys: KeySettings) -> dict[str, Any]:
        raise AssertionError("proving is disabled: nothing to prepare")

    def prover_options(self, keys: KeySettings) -> dict[str, Any]:
        return {}

    def prove(self, spec: ToySpec, step: BatchStep, cache_dir: Path, out_dir: Path, options: Mapping[str, Any]):
        raise AssertionError("proving is disabled")

    def verifier_keys(self, spec: ToySpec, declared: Mapping[str, Any] | None, options: VerifierOptions) -> None:
        return None

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        raise AssertionError("no toy proofs exist")

    def new_keys(self, statements, out_dir: Path, cache_dir: Path):
        raise AssertionError("the toy has no keys")

    def auditor_key_path(self, keys, circuit_id):
        raise AssertionError("the toy has no keys")

    def check_run_keys(self, report, manifest, proofs, keys):
        raise AssertionError("the toy has no keys")


@pytest.fixture
def toy_conf(tmp_path: Path) -> str:
    BACKENDS.register("toy", ToyBackend(), replace=True)
    (tmp_path / "conf" / "prover").mkdir(parents=True)
    (tmp_path / "conf" / "prover" / "toy.yaml").write_text(
        "# @package _global_\nprover:\n  backend: toy\n  binary: pot-zk-toy-prover\ncircuit:\n  scale: 8\n  tolerance_ulps: 0\n"
    )
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


def test_a_new_backend_is_a_module_and_a_prover_option_file(toy_conf, tmp_path):
    run = tmp_path / "run"
    overrides = [toy_conf, "prover=toy", "mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2",
                 "train.max_steps=3", f"run_dir={run}", f"cache_dir={tmp_path / 'cache'}", "train.progress=false"]
    summary = train(compose_config(overrides))
    assert summary.status == "completed"
    bundle = RunBundle.open(run)
    spec = spec_from_dict(bundle.manifest()["circuit"])
    assert isinstance(spec, ToySpec) and spec.scale == GRID and spec.tolerance_ulps == 0
    records = bundle.commitments()
    assert len(records) == 3 and all(r[name].startswith("0x") for r in records for name in ("w_before", "batch", "w_after"))
    final, _ = load_model(bundle.path("model_final.safetensors"))
    flat = flatten({k: v.double() for k, v in final.items()}, spec.architecture.param_shapes)
    assert torch.equal(flat * 2**GRID, torch.round(flat * 2**GRID)), "the backend's arithmetic did not train the model"
    report = verify_run(run, cache_dir=tmp_path / "verifier", accept_settings={"scale": str(GRID)})  # the toy grid is not the statement default
    assert report.ok, report.summary()
    assert {"commitment-chain", "initial-model", "final-model"} <= set(report.passed)
