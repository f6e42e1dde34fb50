"""The groth16 prover backend as the configuration sees it: prover=groth16 composes into an exact
statement for each step kind, its circuit settings are checked, and its scheme is the circuit's."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from pot_zk.backends.groth16.lora_spec import Groth16LoraSpec
from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.groth16.spec import Groth16SgdSpec
from pot_zk.backends.groth16.training import ExactTraining
from pot_zk.backends.registry import BACKENDS, PROOF_TYPES, spec_from_dict
from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.lora.step import LoraArchitecture
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import STEP_KINDS


def test_prover_groth16_builds_the_exact_statement_with_its_scheme_and_arithmetic(tmp_path):
    runtime = build(compose_config(["prover=groth16", "model.loss=mse", "train.learning_rate=0.05"], run_dir=tmp_path))
    plan = runtime.plan
    assert runtime.strategy.name == "zk-groth16" and plan.backend is BACKENDS.get("groth16") is PROOF_TYPES.get("zk-groth16")
    assert plan.spec == Groth16SgdSpec((16, 8, 10), 8, 0.05)
    assert spec_from_dict(plan.spec.to_dict()) == plan.spec
    assert plan.commitments == PackedPoseidon(12, 16)
    assert isinstance(plan.backend.training_arithmetic(plan.spec), ExactTraining)
    assert runtime.config["prover"]["args"] == ["--keep-key-s", "60"]


def test_a_lora_statement_comes_from_the_lora_kind():
    lora = STEP_KINDS.get("lora")
    architecture = LoraArchitecture(MlpArchitecture((16, 8, 10)), (0, 1), 2, 4.0)
    spec = BACKENDS.get("groth16").circuit_spec(lora, architecture, 8, 0.05, {"scale": 12, "param_scale": 20, "value_bits": 16, "quotient_bits": 24})
    assert spec == Groth16LoraSpec((16, 8, 10), (0, 1), 2, 4.0, 8, 0.05)
    assert spec.architecture == architecture


@pytest.mark.parametrize(("settings", "message"), [
    ({"tolerance_ulps": 4}, r"unknown circuit setting\(s\) \['tolerance_ulps'\] for the groth16 backend; valid: scale, param_scale, value_bits, quotient_bits"),
    ({"value_bits": "16"}, r"circuit.value_bits must be an integer, got '16'"),
    ({"quotient_bits": 8}, r"quotient_bits must be >= value_bits"),
])
def test_the_groth16_backend_checks_its_circuit_settings(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        BACKENDS.get("groth16").circuit_spec(STEP_KINDS.get("sgd"), MlpArchitecture((4, 3, 2)), 2, 0.1, settings)


def test_a_misspelt_groth16_setting_fails_at_compose_time():
    assert compose_config(["prover=groth16", "circuit.quotient_bits=20"]).circuit.quotient_bits == 20
    with pytest.raises(ConfigCompositionException):
        compose_config(["prover=groth16", "circuit.quotient_bit=20"])


def test_a_cross_entropy_model_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigurationError, match="MSE loss, not relu with cross_entropy") as raised:
        build(compose_config(["prover=groth16", "model.loss=cross_entropy"], run_dir=tmp_path))
    assert raised.value.context["key"] == "model.loss"
