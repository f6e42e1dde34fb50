"""The zk-groth16 witness under wasmtime: circom's own witness program, read out of the proving
key, computes the witness groth16py would (its proofs verify; one wire changed and they do not),
refuses inputs the program refuses, and without wasmtime the prover falls back to groth16py's wasmi."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest

from pot_zk.backends.groth16 import adapter, witness
from pot_zk.backends.groth16.prove import load_key, make_proof, prove_step
from pot_zk.exceptions import ProofGenerationError, WitnessBuilderError

from groth16_support import honest_ce_step, honest_lora_step, honest_step, lora_integers, sgd_integers, sgd_signals, tiny_ce_spec, tiny_lora_spec, tiny_spec

pytestmark = pytest.mark.prover

WTNS_HEADER = 76
"""Bytes before wire 0 in a .wtns of a BN254 circuit: magic, version, section count, section 1
(n8, prime, wire count) and section 2's header."""


@pytest.fixture(scope="module")
def tiny_key(tiny_keys):
    return load_key(tiny_keys)


def _witness_file(key, inputs, path: Path) -> bytes:
    key.witness.program.write_wtns(adapter.field_inputs(inputs), path)
    return path.read_bytes()


def test_the_key_file_holds_the_witness_program_and_wasmtime_runs_it(tiny_keys, tiny_key):
    wasm, wires = adapter.read_witness_wasm(tiny_keys.path / "pk.bin")
    assert wasm.startswith(b"\0asm") and wires == tiny_keys.record["constraints"]["wires"]
    assert tiny_key.witness.name.startswith("wasmtime ")
    assert tiny_key.witness.program.wires == wires


def test_a_wasmtime_witness_proves_an_honest_step(tiny_keys, tiny_key):
    spec = tiny_spec()
    integers = sgd_integers(*honest_step(spec, seed=31))
    proof = prove_step(spec, tiny_keys, integers, key=tiny_key)
    assert proof.witness_engine == tiny_key.witness.name and "witness_s" in proof.timings
    held = spec.commitments(integers).public_inputs()
    assert adapter.verify(tiny_keys.load_verifying_key(), proof.proof, held) == (True, None)


@pytest.mark.parametrize("wire", [1, 7, -1], ids=["public-output", "early-wire", "last-wire"])
def test_a_witness_with_one_wire_changed_gives_a_proof_that_fails(tiny_keys, tiny_key, tmp_path, wire):
    spec = tiny_spec()
    integers = sgd_integers(*honest_step(spec, seed=32))
    data = bytearray(_witness_file(tiny_key, spec.circuit_inputs(integers), tmp_path / "w.wtns"))
    wires = (len(data) - WTNS_HEADER) // 32
    at = WTNS_HEADER + 32 * (wire % wires)
    data[at : at + 32] = ((int.from_bytes(data[at : at + 32], "little") + 1) % adapter.FIELD_MODULUS).to_bytes(32, "little")
    (tmp_path / "moved.wtns").write_bytes(data)
    held = spec.commitments(integers).public_inputs()
    vk = tiny_keys.load_verifying_key()
    assert adapter.verify(vk, adapter.prove_wtns(tiny_key.pk, tmp_path / "w.wtns"), held) == (True, None)
    assert adapter.verify(vk, adapter.prove_wtns(tiny_key.pk, tmp_path / "moved.wtns"), held)[0] is False


def test_the_prover_refuses_to_answer_when_the_witness_program_is_wrong(tiny_keys, tiny_key, monkeypatch):
    """A witness program that computes one wire wrong gets a proof from groth16py; the prover's
    own verification must catch it (groth16py proves violating witnesses)."""
    program = tiny_key.witness.program
    honest_write = program.write_wtns

    def one_wire_off(inputs, path):
        honest_write(inputs, path)
        data = bytearray(Path(path).read_bytes())
        data[-32] ^= 1
        Path(path).write_bytes(data)

    monkeypatch.setattr(program, "write_wtns", one_wire_off)
    spec = tiny_spec()
    with pytest.raises(ProofGenerationError) as caught:
        prove_step(spec, tiny_keys, sgd_integers(*honest_step(spec, seed=33)), key=tiny_key)
    assert caught.value.retryable is False


def test_inputs_the_witness_program_refuses_are_typed_errors(tiny_key, tmp_path):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=34)
    inputs = sgd_signals(w, x, y, w_after)
    name = next(iter(inputs))
    with pytest.raises(WitnessBuilderError) as caught:
        _witness_file(tiny_key, {**inputs, name: witness._flat(inputs[name])[:-1]}, tmp_path / "short.wtns")
    assert caught.value.context["signal"] == name
    moved = w_after.copy()
    moved[0] += 1  # not the step: one of the circuit's own checks fails while computing the witness
    with pytest.raises(WitnessBuilderError) as caught:
        _witness_file(tiny_key, sgd_signals(w, x, y, moved), tmp_path / "moved.wtns")
    assert caught.value.context["circom_code"] == 4
    assert not (tmp_path / "short.wtns").exists() and not (tmp_path / "moved.wtns").exists()
    honest = _witness_file(tiny_key, inputs, tmp_path / "again.wtns")  # the instance is still usable
    assert len(honest) == WTNS_HEADER + 32 * tiny_key.witness.program.wires


def test_cross_entropy_and_lora_steps_prove_with_wasmtime_witnesses(groth16_cache):
    from pot_zk.backends.groth16 import keys

    for spec, integers in ((tiny_ce_spec(), sgd_integers(*honest_ce_step(tiny_ce_spec(), seed=35))),
                           (tiny_lora_spec(), lora_integers(*honest_lora_step(tiny_lora_spec(), seed=36)))):
        key_dir = keys.ensure_keys(spec, groth16_cache)
        proof = prove_step(spec, key_dir, integers, key=load_key(key_dir))
        assert proof.witness_engine.startswith("wasmtime ")
        assert adapter.verify(key_dir.load_verifying_key(), proof.proof, spec.commitments(integers).public_inputs()) == (True, None)


def test_a_one_shot_proof_uses_wasmi_and_says_why(tiny_keys):
    """Without a loaded key (one proof per key load) compiling the program would cost more than it saves."""
    spec = tiny_spec()
    integers = sgd_integers(*honest_step(spec, seed=38))
    proof = prove_step(spec, tiny_keys, integers)
    assert "key_load_s" in proof.timings and "witness_s" not in proof.timings
    assert proof.witness_engine.startswith("wasmi (groth16py ") and "one proof per key load" in proof.witness_engine
    assert adapter.verify(tiny_keys.load_verifying_key(), proof.proof, spec.commitments(integers).public_inputs()) == (True, None)


def test_one_program_computes_witnesses_on_two_threads_at_once(tiny_keys, tiny_key):
    spec = tiny_spec()
    vk = tiny_keys.load_verifying_key()
    results: dict[int, tuple[bool, str | None]] = {}

    def prove(seed: int) -> None:
        integers = sgd_integers(*honest_step(spec, seed=seed))
        proof, _ = make_proof(tiny_key, spec.circuit_inputs(integers))
        results[seed] = adapter.verify(vk, proof, spec.commitments(integers).public_inputs())

    threads = [threading.Thread(target=prove, args=(seed,)) for seed in (41, 42, 43, 44)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {seed: (True, None) for seed in (41, 42, 43, 44)}


def test_without_wasmtime_the_prover_falls_back_to_groth16py_and_says_so(tiny_keys, monkeypatch):
    monkeypatch.setattr(witness, "wasmtime", None)
    key = load_key(tiny_keys)
    assert key.witness.program is None and key.witness.name == f"wasmi (groth16py {adapter.ENGINE_VERSION}): the wasmtime package is not installed"
    spec = tiny_spec()
    integers = sgd_integers(*honest_step(spec, seed=37))
    proof = prove_step(spec, tiny_keys, integers, key=key)
    assert proof.witness_engine == key.witness.name and "witness_s" not in proof.timings
    assert adapter.verify(tiny_keys.load_verifying_key(), proof.proof, spec.commitments(integers).public_inputs()) == (True, None)


def test_a_key_file_without_a_readable_program_falls_back_with_the_reason(tiny_keys, tmp_path):
    data = (tiny_keys.path / "pk.bin").read_bytes()
    (tmp_path / "foreign.bin").write_bytes(b"not a key")
    with pytest.raises(ValueError, match="magic"):
        adapter.read_witness_wasm(tmp_path / "foreign.bin")
    (tmp_path / "short.bin").write_bytes(data[:4096])
    assert witness.witness_engine(tmp_path / "short.bin").program is None
    vectors_end = data.index(b"\0asm") - 9
    no_program = data[:vectors_end] + b"\x00" + data[vectors_end + 9 :]
    (tmp_path / "none.bin").write_bytes(no_program)
    engine = witness.witness_engine(tmp_path / "none.bin")
    assert engine.program is None and "holds no witness program" in engine.name and engine.name.startswith("wasmi")
    assert struct.unpack("<Q", data[vectors_end + 1 : vectors_end + 9])[0] == len(adapter.read_witness_wasm(tiny_keys.path / "pk.bin")[0])
