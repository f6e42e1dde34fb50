"""The groth16 prover backend as the configuration sees it: prover=groth16 composes into an exact
statement for each step kind, its circuit settings are checked, and its scheme is the circuit's."""

from __future__ import annotations

import pytest

from pot_zk.backends.groth16.lora.statement import Groth16LoraStatement
from pot_zk.backends.groth16.momentum.statement import Groth16MomentumStatement
from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
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
    assert plan.spec == Groth16SgdStatement((16, 8, 10), 8, 0.05)
    assert spec_from_dict(plan.spec.to_dict()) == plan.spec
    assert plan.commitments == PackedPoseidon(12, 16)
    assert isinstance(plan.backend.training_arithmetic(plan.spec), ExactTraining)
    assert runtime.config["prover"]["args"] == ["--keep-key-s", "60"]


def test_a_lora_statement_comes_from_the_lora_kind():
    lora = STEP_KINDS.get("lora")
    architecture = LoraArchitecture(MlpArchitecture((16, 8, 10)), (0, 1), 2, 4.0)
    spec = BACKENDS.get("groth16").circuit_spec(lora, architecture, 8, 0.05, {"scale": 12, "param_scale": 20, "value_bits": 16, "quotient_bits": 24})
    assert spec == Groth16LoraStatement((16, 8, 10), (0, 1), 2, 4.0, 8, 0.05)
    assert spec.architecture == architecture


@pytest.mark.parametrize(("settings", "message"), [
    ({"tolerance_ulps": 4}, r"unknown circuit setting\(s\) \['tolerance_ulps'\] for the groth16 backend; valid: scale, param_scale, value_bits, quotient_bits"),
    ({"value_bits": "16"}, r"circuit.value_bits must be an integer, got '16' \(or null: the statement's own\)"),
    ({"quotient_bits": 8}, r"quotient_bits must be >= value_bits"),
])
def test_the_groth16_backend_checks_its_circuit_settings(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        BACKENDS.get("groth16").circuit_spec(STEP_KINDS.get("sgd"), MlpArchitecture((4, 3, 2)), 2, 0.1, settings)


def test_a_misspelt_groth16_setting_fails_at_compose_time():
    assert compose_config(["prover=groth16", "circuit.quotient_bits=20"]).circuit.quotient_bits == 20
    with pytest.raises(ConfigurationError, match=r"^unknown key circuit.quotient_bit \(did you mean circuit.quotient_bits\?\)$"):
        compose_config(["prover=groth16", "circuit.quotient_bit=20"])


def test_the_default_digits_classifier_builds_a_cross_entropy_statement_of_its_own(tmp_path):
    plan = build(compose_config(["prover=groth16"], run_dir=tmp_path)).plan
    assert plan.spec == Groth16SgdStatement((16, 8, 10), 8, 0.3, loss="cross_entropy")
    assert (plan.spec.circuit_version, plan.spec.value_bits) == ("groth16-sgd-ce/2", 17)  # label 9 at 2**-12 needs 17 bits
    assert plan.commitments == PackedPoseidon(12, 17)
    assert spec_from_dict(plan.spec.to_dict()) == plan.spec
    mse = Groth16SgdStatement((16, 8, 10), 8, 0.3)
    assert (mse.circuit_version, mse.value_bits) == ("groth16-sgd/2", 16) and mse.circuit_id() != plan.spec.circuit_id()


def test_a_cross_entropy_statement_whose_labels_do_not_fit_is_refused():
    with pytest.raises(ConfigurationError, match=r"label 9 needs value_bits >= 17 \(circuit.value_bits=17\)") as raised:
        build(compose_config(["prover=groth16", "circuit.value_bits=16"]))
    assert raised.value.context["key"] == "circuit.value_bits"


def test_a_spec_claiming_the_mse_circuit_for_cross_entropy_is_refused():
    data = Groth16SgdStatement((4, 3, 3), 2, 0.1, loss="cross_entropy").to_dict()
    with pytest.raises(ConfigurationError, match="unknown circuit version 'groth16-sgd/2'"):
        spec_from_dict({**data, "circuit_version": "groth16-sgd/2"})


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_sgd_with_momentum_builds_the_momentum_statement_of_its_own_circuit(loss, tmp_path):
    common = ["prover=groth16", f"model.loss={loss}", "train.learning_rate=0.05"]
    plan = build(compose_config([*common, "optimizer.momentum=0.9", "optimizer.weight_decay=0.01"], run_dir=tmp_path)).plan
    assert plan.spec == Groth16MomentumStatement((16, 8, 10), 8, 0.05, loss=loss, momentum=0.9, weight_decay=0.01)
    assert plan.spec.architecture == STEP_KINDS.get("momentum").architecture(plan.model)
    assert spec_from_dict(plan.spec.to_dict()) == plan.spec
    sgd = build(compose_config(common, run_dir=tmp_path)).plan.spec
    assert sgd.kind == "sgd" and sgd.circuit_id() != plan.spec.circuit_id()
    assert isinstance(plan.backend.training_arithmetic(plan.spec), ExactTraining)


def test_a_lora_step_on_a_cross_entropy_base_states_cross_entropy():
    lora = STEP_KINDS.get("lora")
    architecture = LoraArchitecture(MlpArchitecture((16, 8, 10), loss="cross_entropy"), (0, 1), 2, 4.0)
    spec = BACKENDS.get("groth16").circuit_spec(lora, architecture, 8, 0.05, {})
    assert (spec.loss, spec.circuit_version, spec.value_bits, spec.architecture) == ("cross_entropy", "groth16-lora-ce/2", 17, architecture)


def test_keys_of_another_statement_are_refused_naming_the_settings_that_differ(tmp_path):
    """review27: under keys made for another statement the message named circuit ids only, not
    which setting (rank, learning rate, layer sizes) differs."""
    import json

    from pot_zk.backends.groth16.keys import open_keys

    made_for = Groth16SgdStatement(dims=(4, 3, 2), batch_size=2, learning_rate=0.1)
    (tmp_path / "provenance.json").write_text(json.dumps({"circuit_id": made_for.circuit_id(), "provenance": "auditor", "spec": made_for.to_dict()}))
    (tmp_path / "circuit.circom").write_text(made_for.circuit_source())
    wanted = Groth16SgdStatement(dims=(4, 5, 2), batch_size=2, learning_rate=0.05)
    with pytest.raises(ConfigurationError, match=r"were made for another circuit .*; they differ in architecture\.dims: \[4, 3, 2\] \(the keys\) vs "
                       r"\[4, 5, 2\] \(this statement\), learning_rate: 0\.1 \(the keys\) vs 0\.05 \(this statement\)$"):
        open_keys(wanted, tmp_path)
