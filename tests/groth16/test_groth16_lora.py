"""Exact LoRA steps and their zk-groth16 proofs (tiny 4-3-2 model, adapters on both layers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pot_zk.core import protocol
from pot_zk.backends.groth16 import adapter, keys
from pot_zk.backends.groth16.commit import StepCommitments
from pot_zk.backends.groth16.integers import dequantise
from pot_zk.backends.groth16.lora.exact import exact_lora_step
from pot_zk.backends.groth16.lora.statement import Groth16LoraStatement
from pot_zk.backends.groth16.prove import prove_step
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError

from groth16_support import honest_lora_step, lora_integers, lora_signals, tiny_lora_spec

REPO = Path(__file__).resolve().parents[2]


def float64_lora_step(spec: Groth16LoraStatement, base, adapters, x, y) -> np.ndarray:
    """torch's SGD step on the adapters, same grid values, float64, in grid units."""
    grid = 2.0**spec.scale

    def tensors(flat, shapes, offsets, grad):
        return [torch.tensor(flat[o : o + int(np.prod(s))].reshape(s) / grid, requires_grad=grad) for o, s in zip(offsets, shapes)]

    w0 = tensors(base, spec.base_shapes, spec.base_offsets, False)
    ab = tensors(adapters, spec.adapter_shapes, spec.adapter_offsets, True)
    pairs = {layer: (ab[2 * i], ab[2 * i + 1]) for i, layer in enumerate(spec.adapted)}
    h = torch.tensor(x / grid)
    for layer in range(spec.num_layers):
        z = h @ w0[2 * layer].T + w0[2 * layer + 1]
        if layer in pairs:
            z = z + spec.alpha / spec.rank * (h @ pairs[layer][0].T) @ pairs[layer][1].T
        h = torch.relu(z) if layer < spec.num_layers - 1 else z
    torch.nn.functional.mse_loss(h, torch.tensor(y / grid)).backward()
    return np.concatenate([(p - spec.learning_rate * p.grad).detach().numpy().reshape(-1) for p in ab]) * grid


@pytest.mark.parametrize("dims,adapted", [((4, 3, 2), (0, 1)), ((4, 3, 2), (1,)), ((5, 4, 3, 2), (1,))])
def test_exact_lora_step_is_within_three_grid_steps_of_a_float64_step(dims, adapted):
    spec = tiny_lora_spec(dims=dims, adapted=adapted)
    worst, moved = 0.0, 0
    for seed in range(20):
        base, adapters, x, y, after = honest_lora_step(spec, seed)
        worst = max(worst, float(np.abs(after - float64_lora_step(spec, base, adapters, x, y)).max()))
        moved += not np.array_equal(after, adapters)  # all-dead hidden units leave a step with no gradient
    assert worst <= 3.0  # measured up to 2.06: one more floor than SGD on each adapter path
    assert moved >= 15


def test_exact_lora_error_is_rounding_it_shrinks_with_the_grid():
    """16-8-10 with both layers adapted: a few grid steps off float64 (floors compound through
    the low-rank path), and the same few steps at a 16x finer grid, i.e. 16x less in value."""
    errors = {}
    for scale, bits in ((12, 16), (16, 20)):
        spec = tiny_lora_spec(dims=(16, 8, 10), scale=scale, value_bits=bits, quotient_bits=bits + 8, param_scale=24)
        worst = max(
            float(np.abs(after - float64_lora_step(spec, base, adapters, x, y)).max())
            for base, adapters, x, y, after in (honest_lora_step(spec, seed) for seed in range(10))
        )
        errors[scale] = worst / 2.0**scale
        assert worst <= 8.0
    assert errors[16] < errors[12] / 4


def test_frozen_base_layer_below_the_adapters_shapes_their_step():
    spec = tiny_lora_spec(adapted=(1,))
    base, adapters, x, y, after = honest_lora_step(spec)
    moved = base.copy()
    moved[12:15] += 2 * 4096  # layer-1 biases +2: the hidden units (layer 2's inputs) come alive
    assert not np.array_equal(exact_lora_step(spec, moved, adapters, x, y), after)


@pytest.mark.parametrize("tensor,index", [("base weights", 0), ("adapters", 1), ("X", 2), ("Y", 3)])
def test_out_of_range_lora_input_names_the_tensor(tensor, index):
    spec = tiny_lora_spec()
    inputs = [t.copy() for t in honest_lora_step(spec)[:4]]
    inputs[index].reshape(-1)[0] = -(2**15) - 1
    with pytest.raises(WitnessBuilderError) as caught:
        exact_lora_step(spec, *inputs)
    assert caught.value.context["tensor"] == tensor


def test_lora_spec_round_trips_and_its_id_covers_the_adapters():
    spec = tiny_lora_spec()
    data = spec.to_dict()
    assert (data["kind"], data["backend"], data["architecture"]["adapted"]) == ("lora", "groth16", [0, 1])
    assert Groth16LoraStatement.from_dict(data) == spec
    ids = {spec.circuit_id()} | {tiny_lora_spec(**c).circuit_id() for c in ({"rank": 3}, {"alpha": 2.0}, {"adapted": (1,)})}
    assert len(ids) == 4
    assert spec.sigma == 2 * 2**20 and spec.c_fix == round(2 * 0.1 * 2 / 4 * 2**20)


@pytest.mark.parametrize("change,key", [({"adapted": (2,)}, "adapted"), ({"adapted": (1, 0)}, "adapted"), ({"rank": 0}, "rank"), ({"alpha": 0.0}, "alpha")])
def test_bad_lora_specs_are_configuration_errors(change, key):
    with pytest.raises(ConfigurationError) as caught:
        tiny_lora_spec(**change)
    assert caught.value.key == key


@pytest.fixture(scope="module")
def lora_keys(groth16_cache):
    return keys.ensure_keys(tiny_lora_spec(), groth16_cache)


@pytest.fixture(scope="module")
def lora_proof(lora_keys):
    spec = tiny_lora_spec()
    tensors = honest_lora_step(spec)
    return spec, tensors, prove_step(spec, lora_keys, lora_integers(*tensors))


def _verify(spec, proof, commitments, key_dir):
    return verify_groth16(spec, proof, commitments, keys.load_verifying_key(spec, key_dir))


@pytest.mark.prover
def test_honest_lora_step_proves_and_its_four_commitments_are_the_native_ones(lora_proof, lora_keys):
    spec, tensors, proof = lora_proof
    held = spec.commitments(lora_integers(*tensors))
    assert held.names == ("w_before", "batch", "w_after", "base") and proof.commitments == held
    assert _verify(spec, proof.proof, held, lora_keys.path).ok
    public = held.public_inputs()
    for index in range(4):
        moved = list(public)
        moved[index] += 1
        assert adapter.verify(lora_keys.load_verifying_key(), proof.proof, moved)[0] is False


@pytest.mark.prover
def test_lora_statement_needs_the_base_commitment(lora_proof, lora_keys):
    spec, tensors, proof = lora_proof
    held = spec.commitments(lora_integers(*tensors))
    without_base = StepCommitments({name: held.values[name] for name in ("w_before", "batch", "w_after")})
    assert _verify(spec, proof.proof, without_base, lora_keys.path).reason == "malformed-commitment"
    other_base = spec.commitments(lora_integers(honest_lora_step(spec, seed=1)[0], *tensors[1:]))
    assert _verify(spec, proof.proof, other_base, lora_keys.path).reason == "invalid-proof"


@pytest.mark.prover
def test_adapters_moved_by_one_grid_step_are_refused_and_a_forced_proof_fails(lora_proof, lora_keys):
    spec, (base, before, x, y, after), _ = lora_proof
    moved = after.copy()
    moved[3] -= 1
    with pytest.raises(WitnessBuilderError):
        prove_step(spec, lora_keys, lora_integers(base, before, x, y, moved))
    forced = adapter.prove(lora_keys.load_proving_key(), lora_signals(base, before, x, y, moved))
    for claimed in (spec.commitments(lora_integers(base, before, x, y, moved)), spec.commitments(lora_integers(base, before, x, y, after))):
        assert _verify(spec, forced, claimed, lora_keys.path).reason == "invalid-proof"


@pytest.mark.prover
def test_lora_proof_does_not_verify_under_another_alphas_key(lora_proof, groth16_cache):
    spec, tensors, proof = lora_proof
    other_spec = tiny_lora_spec(alpha=2.0)
    other = keys.ensure_keys(other_spec, groth16_cache)
    assert _verify(other_spec, proof.proof, spec.commitments(lora_integers(*tensors)), other.path).reason == "invalid-proof"


@pytest.mark.prover
def test_prover_program_proves_a_lora_step_file(lora_keys, groth16_cache, tmp_path):
    from pot_zk.kinds.lora.step import LoraArchitecture, LoraTrainingStep
    from pot_zk.kinds.mlp import MlpArchitecture
    from pot_zk.kinds.registry import save_training_step

    spec = tiny_lora_spec()
    base, before, x, y, after = honest_lora_step(spec, seed=4)
    architecture = LoraArchitecture(MlpArchitecture(spec.dims), spec.adapted, spec.rank, spec.alpha)

    def named(flat, shapes, offsets, names):
        return {name: torch.tensor(dequantise(flat[o : o + int(np.prod(s))], spec.scale).reshape(s)) for (name, _), o, s in zip(names, offsets, shapes)}

    step = LoraTrainingStep(
        architecture=architecture,
        learning_rate=spec.learning_rate,
        base=named(base, spec.base_shapes, spec.base_offsets, architecture.base_shapes),
        adapters_before=named(before, spec.adapter_shapes, spec.adapter_offsets, architecture.adapter_shapes),
        adapters_after=named(after, spec.adapter_shapes, spec.adapter_offsets, architecture.adapter_shapes),
        inputs=torch.tensor(dequantise(x, spec.scale)),
        targets=torch.tensor(dequantise(y, spec.scale)),
    )
    save_training_step(step, tmp_path / "step.safetensors")
    request = {
        "protocol": protocol.PROTOCOL, "kind": "lora", "step": 0, "circuit": spec.to_dict(), "options": {},
        "witness_path": str(tmp_path / "step.safetensors"), "cache_dir": str(groth16_cache), "output_dir": str(tmp_path / "out"),
    }
    done = subprocess.run([sys.executable, "-m", "provers.groth16_prover"], input=json.dumps(request), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == protocol.EXIT_OK, done.stdout + done.stderr
    response = json.loads(done.stdout)
    held = spec.commitments(lora_integers(base, before, x, y, after))
    assert {k: response["public"]["commitment"][k] for k in held.names} == held.to_dict()
    verdict = _verify(spec, Path(response["artifacts"]["proof"]).read_bytes(), held, lora_keys.path)
    assert verdict.ok, verdict.message


Z_HINT = "z <-- (acc + offset) \\ (2 ** k) - offset \\ (2 ** k) + add;"
R_HINT = "r <-- (acc + offset) % (2 ** k);"
REMAINDER_CHECK = ("    remainder.in <== r;\n    component quotient = Num2Bits(B);", "    remainder.in <== 0;\n    component quotient = Num2Bits(B);")


def _accepted(tmp_path: Path, name: str, source: str, inputs: dict, public: list[int]) -> bool:
    """Compile, set up, prove and verify; False when the witness generator refuses (a failed assert)."""
    path = tmp_path / f"{name}.circom"
    path.write_text(source)
    pk, vk, _ = adapter.setup(path)
    try:
        proof = adapter.prove(pk, inputs)
    except Exception:  # noqa: BLE001 - the tampered witness breaks a constraint while it is computed
        return False
    return adapter.verify(vk, proof, public)[0]


@pytest.mark.prover
@pytest.mark.parametrize("offset", [1, 2**14])
def test_a_forged_scaled_adapter_term_has_no_proof_and_proves_once_its_remainder_check_is_removed(tmp_path, offset, monkeypatch):
    """A cheating prover on the adapter path (found missing by the circuit review): layer 1's
    scaled adapter term floor(sigma v / 2^p) (sample 0, unit 0) moved by ``offset`` units (2^14:
    4 real units, enough to claim other adapters after the step), the rest of the step the
    reference's from there, the remainder solved for. The witness generator is the circuit's own
    with the floor's hints changed (the same constraint system). No proof; a proof once
    FloorDivCheck's remainder range check is removed, so the forgery reaches the proof."""
    from pot_zk.backends.groth16.lora import exact as lora_exact

    spec = Groth16LoraStatement((4, 3, 2), (0, 1), 2, 4.0, 2, 0.1)
    integers = spec.sample_step(0)
    inputs = {k: v for k, v in integers.items() if k != "w_after"}
    original, seen = lora_exact._scaled, []
    monkeypatch.setattr(lora_exact, "_scaled", lambda acc, s, what: seen.append((what, np.array(acc))) or original(acc, s, what))
    spec.exact_step(inputs)
    forged_what, accumulator = seen[0]
    target = int(accumulator[0][0])

    def forged_scaled(acc, s, what):
        out = original(acc, s, what)
        if what == forged_what:
            out = out.copy()
            out[0][0] += offset
        return out

    monkeypatch.setattr(lora_exact, "_scaled", forged_scaled)
    forged = {**inputs, **spec.exact_step(inputs)}
    monkeypatch.setattr(lora_exact, "_scaled", original)
    if offset == 2**14:
        assert not np.array_equal(forged["w_after"], integers["w_after"]), "the forgery claims other adapters"
    source = spec.circuit_source()
    assert source.count(Z_HINT) == 1 and source.count(R_HINT) == 1 and source.count(REMAINDER_CHECK[0]) == 1
    tampered = source.replace(Z_HINT, Z_HINT[:-1] + f" + (k == {spec.param_scale} && acc == {target} ? {offset} : 0);")
    tampered = tampered.replace(R_HINT, "r <-- acc - (z - add) * (2 ** k);")
    claimed = spec.commitments(forged).public_inputs()
    assert not _accepted(tmp_path, "forged", tampered, spec.circuit_inputs(forged), claimed)
    assert _accepted(tmp_path, "weakened", tampered.replace(*REMAINDER_CHECK), spec.circuit_inputs(forged), claimed)
