"""Three-layer statements (the other groth16 tests prove two layers): an honest step of each
statement kind proves and verifies, and W_t+1 one unit off in the first layer -- the end of the
longest back-propagation path -- does not. A wiring slip that shows only in a third layer
(parameter offsets, the ReLU mask a back-propagation uses, LoRA's path through a layer it does
not adapt) would make the circuit state another function than the reference. Adapted from a
circuit review's consistency script."""

from __future__ import annotations

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.adamw.statement import Groth16AdamwStatement
from pot_zk.backends.groth16.lora.statement import Groth16LoraStatement
from pot_zk.backends.groth16.momentum.statement import Groth16MomentumStatement
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
from pot_zk.exceptions import WitnessBuilderError

pytestmark = pytest.mark.prover

CASES = {
    "sgd-ce-public-rate": lambda: Groth16SgdStatement((3, 3, 2, 3), 2, 0.3, loss="cross_entropy", rate_public=True),
    "lora-mse-adapting-first-and-last": lambda: Groth16LoraStatement((3, 3, 2, 2), (0, 2), 1, 2.0, 2, 0.1),
    "lora-ce-adapting-the-middle": lambda: Groth16LoraStatement((3, 3, 2, 3), (1,), 1, 2.0, 2, 0.3, loss="cross_entropy"),
    "momentum-ce": lambda: Groth16MomentumStatement((3, 3, 2, 3), 2, 0.1, loss="cross_entropy", momentum=0.9, weight_decay=0.01),
    "adam-coupled-decay-mse": lambda: Groth16AdamwStatement((2, 2, 2, 2), 2, 0.01, weight_decay=0.01, decoupled_weight_decay=False),
}


def _accepted(pk, vk, spec, integers) -> bool:
    try:
        proof = adapter.prove(pk, spec.circuit_inputs(integers))
    except WitnessBuilderError:  # the witness program's own assertions refused it
        return False
    return adapter.verify(vk, proof, spec.commitments(integers).public_inputs())[0]


@pytest.mark.parametrize("name", list(CASES))
def test_a_three_layer_step_proves_and_one_unit_off_in_its_first_layer_does_not(name, tmp_path):
    spec = CASES[name]()
    integers = next(step for step in (spec.sample_step(seed) for seed in range(8)) if step["w_after"][0] != step["w_before"][0])
    path = tmp_path / "circuit.circom"
    path.write_text(spec.circuit_source())
    pk, vk, _ = adapter.setup(path)
    assert _accepted(pk, vk, spec, integers), f"an honest {name} step does not prove"
    forged = {**integers, "w_after": integers["w_after"] + (np.arange(integers["w_after"].size) == 0)}
    assert not _accepted(pk, vk, spec, forged), f"CRITICAL: a {name} step with W_t+1 one unit off proves"
