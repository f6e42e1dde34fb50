"""zk-groth16 proofs of the tiny SGD step with the real engine: honest steps verify, nothing else does."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter, keys
from pot_zk.backends.groth16.circuit_writer import gadget_source

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step
from pot_zk.backends.groth16.prove import prove_step
from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.exceptions import ConfigurationError, ProofGenerationError, WitnessBuilderError

from groth16_support import honest_step, sgd_integers, sgd_signals, tiny_spec

pytestmark = pytest.mark.prover


@pytest.fixture(scope="module")
def honest(tiny_keys):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec)
    return spec, (w, x, y, w_after), prove_step(spec, tiny_keys, sgd_integers(w, x, y, w_after))


def _verify(spec, proof: bytes, commitments, key_dir: Path):
    return verify_groth16(spec, proof, commitments, keys.load_verifying_key(spec, key_dir))


def _forced_proof(key_dir: keys.KeyDirectory, w, x, y, w_after) -> bytes:
    """What a cheating prover gets from groth16py when it skips the reference check."""
    return adapter.prove(key_dir.load_proving_key(), sgd_signals(w, x, y, w_after))


def test_honest_step_proves_and_verifies(honest, tiny_keys):
    spec, tensors, proof = honest
    assert len(proof.proof) == 256
    assert proof.key_provenance == "dev"
    verdict = _verify(spec, proof.proof, spec.commitments(sgd_integers(*tensors)), tiny_keys.path)
    assert verdict.ok, verdict.message


def test_native_commitments_are_the_circuits_public_outputs(honest, tiny_keys):
    spec, tensors, proof = honest
    vk = tiny_keys.load_verifying_key()
    native = spec.commitments(sgd_integers(*tensors)).public_inputs()
    assert adapter.verify(vk, proof.proof, native) == (True, None)
    for index in range(3):  # each output is pinned: any other value in its slot fails
        moved = list(native)
        moved[index] = (moved[index] + 1) % FIELD_MODULUS
        assert adapter.verify(vk, proof.proof, moved)[0] is False


def test_edited_commitment_is_rejected(honest, tiny_keys):
    spec, tensors, proof = honest
    held = spec.commitments(sgd_integers(*tensors)).to_dict()
    other = spec.commitments(sgd_integers(*honest_step(spec, seed=1)))
    for name in ("w_before", "batch", "w_after"):
        verdict = _verify(spec, proof.proof, {**held, name: other.values[name]}, tiny_keys.path)
        assert (verdict.ok, verdict.reason) == (False, "invalid-proof")


def test_flipped_proof_byte_is_rejected(honest, tiny_keys):
    spec, tensors, proof = honest
    held = spec.commitments(sgd_integers(*tensors))
    for position in (0, 100, 255):
        tampered = bytearray(proof.proof)
        tampered[position] ^= 1
        verdict = _verify(spec, bytes(tampered), held, tiny_keys.path)
        assert not verdict.ok and verdict.reason in ("invalid-proof", "malformed-proof")
    assert _verify(spec, proof.proof[:-1], held, tiny_keys.path).reason == "malformed-proof"


def test_weights_moved_by_one_grid_step_are_refused_before_proving(honest, tiny_keys, monkeypatch):
    spec, (w, x, y, w_after), _ = honest

    def no_proving(*args, **kwargs):
        raise AssertionError("the prover must refuse before proving")

    monkeypatch.setattr(adapter, "prove", no_proving)
    monkeypatch.setattr(adapter, "prove_wtns", no_proving)
    moved = w_after.copy()
    moved[5] += 1
    with pytest.raises(WitnessBuilderError) as caught:
        prove_step(spec, tiny_keys, sgd_integers(w, x, y, moved))
    assert caught.value.context["first_index"] == 5


def test_forced_proof_of_weights_moved_by_one_grid_step_does_not_verify(honest, tiny_keys):
    spec, (w, x, y, w_after), _ = honest
    moved = w_after.copy()
    moved[5] += 1
    forced = _forced_proof(tiny_keys, w, x, y, moved)
    for claimed in (spec.commitments(sgd_integers(w, x, y, moved)), spec.commitments(sgd_integers(w, x, y, w_after))):
        assert _verify(spec, forced, claimed, tiny_keys.path).reason == "invalid-proof"


def test_prover_never_answers_with_a_proof_its_own_key_rejects(honest, tiny_keys, monkeypatch):
    spec, tensors, proof = honest
    flipped = bytes(proof.proof[:-1]) + bytes([proof.proof[-1] ^ 1])
    monkeypatch.setattr(adapter, "prove", lambda pk, inputs: flipped)  # either witness engine
    monkeypatch.setattr(adapter, "prove_wtns", lambda pk, path: flipped)
    with pytest.raises(ProofGenerationError) as caught:
        prove_step(spec, tiny_keys, sgd_integers(*honest_step(spec, seed=2)))
    assert caught.value.retryable is False


def test_proof_does_not_verify_under_another_learning_rates_key(honest, groth16_cache):
    spec, tensors, proof = honest
    other_spec = tiny_spec(learning_rate=0.05)
    other = keys.ensure_keys(other_spec, groth16_cache)
    held = spec.commitments(sgd_integers(*tensors))
    assert _verify(other_spec, proof.proof, held, other.path).reason == "invalid-proof"
    assert adapter.verify(other.load_verifying_key(), proof.proof, held.public_inputs())[0] is False
    mislabelled = keys.load_verifying_key(other_spec, other.path)
    assert verify_groth16(spec, proof.proof, held, mislabelled).reason == "wrong-circuit"
    with pytest.raises(ConfigurationError):
        keys.load_verifying_key(spec, other.path)


def test_out_of_range_input_is_a_typed_error_before_proving(tiny_keys, monkeypatch):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec)
    monkeypatch.setattr(adapter, "prove", lambda *a, **k: pytest.fail("proved an out-of-range step"))
    monkeypatch.setattr(adapter, "prove_wtns", lambda *a, **k: pytest.fail("proved an out-of-range step"))
    x = x.copy()
    x[0, 0] = 2**15
    with pytest.raises(WitnessBuilderError) as caught:
        prove_step(spec, tiny_keys, sgd_integers(w, x, y, w_after))
    assert caught.value.context["tensor"] == "X"


def test_an_out_of_range_batch_value_cannot_borrow_a_commitment(honest, tiny_keys, tmp_path):
    """Trap: a value 2**16 too large in one packing slot, with its neighbour one lower, packs
    to the honest batch's field element. Only the range check on the batch stops a proof of a
    step on that other batch under the honest batch commitment."""
    spec, (w, x, y, _), _ = honest
    carried = x.copy()
    carried[0, 0] += 2**16
    carried[0, 1] -= 1
    wide = tiny_spec(value_bits=18)  # same arithmetic, wider checks: computes the carried step
    w_carried = exact_sgd_step(wide, w, carried, y)
    claimed = spec.commitments(sgd_integers(w, x, y, w_carried))  # the honest batch's commitment
    inputs = sgd_signals(w, carried, y, w_carried)
    forced = adapter.prove(tiny_keys.load_proving_key(), inputs)
    assert _verify(spec, forced, claimed, tiny_keys.path).reason == "invalid-proof"

    # the same forced witness against the circuit without the batch range check: it verifies,
    # so the attack is real and the check above is what stops it
    source = spec.circuit_source()
    weakened = source.replace(" range_batch.in[i] <== batch[i];", "").replace(
        f"component range_batch = SignedRangeArray({spec.num_batch_values}, {spec.value_bits});", ""
    )
    assert weakened.count("range_batch") == 0 and weakened != source
    (tmp_path / "weak.circom").write_text(weakened)
    weak_pk, weak_vk, _ = adapter.setup(tmp_path / "weak.circom")
    assert adapter.verify(weak_vk, adapter.prove(weak_pk, inputs), claimed.public_inputs()) == (True, None)


@pytest.mark.parametrize("inner", [5, 6])
def test_paired_products_are_the_matrix_product_with_fewer_constraints(inner, tmp_path):
    """Winograd's pairing (odd and even inner width, signed values at both ends of 16 bits):
    the proof verifies with a @ b^T as its public output and not with one entry moved."""
    rng = np.random.default_rng(inner)
    a, b = rng.integers(-(2**15), 2**15, (3, inner)), rng.integers(-(2**15), 2**15, (4, inner))
    a[0, 0], b[0, 0] = -(2**15), 2**15 - 1
    expected = [int(v) % FIELD_MODULUS for v in (a @ b.T).reshape(-1)]
    counts = {}
    for template in ("MatMul", "MatMulPaired"):
        (tmp_path / f"{template}.circom").write_text(gadget_source(f"component main = {template}(3, {inner}, 4);"))
        pk, vk, report = adapter.setup(tmp_path / f"{template}.circom")
        proof = adapter.prove(pk, {"a": a.tolist(), "b": b.tolist()})
        assert adapter.verify(vk, proof, expected) == (True, None)
        assert adapter.verify(vk, proof, [expected[0] + 1] + expected[1:])[0] is False
        counts[template] = report.constraints
    assert counts == {"MatMul": 3 * 4 * inner, "MatMulPaired": (3 * 4 + 3 + 4) * (inner // 2) + 3 * 4 * (inner % 2)}


UPDATE_HINT = "r <-- (c * g + offset) % (2 ** p);"


@pytest.mark.parametrize("moved_by", [1, -1])
def test_a_weight_one_grid_step_off_has_no_proof_without_the_update_remainder_check(honest, moved_by, tmp_path):
    """The weight gradient is rounded once, in the update: c' GW == (W - W') 2^k + r. A cheater
    claims W' one grid step off at a layer-1 weight and solves for r (2^k above the range, or
    negative): only the remainder's range check refuses it (the quotient W - W' is bounded by
    the range checks of W and W')."""
    spec, (w, x, y, w_after), _ = honest
    moved = w_after.copy()
    moved[5] += moved_by
    claimed = spec.commitments(sgd_integers(w, x, y, moved)).public_inputs()
    tampered = spec.circuit_source().replace(UPDATE_HINT, "r <-- c * g - (w - w_new) * (2 ** p);")
    weakened = tampered.replace("remainder.in <== r;\n    c * g ===", "remainder.in <== 0;\n    c * g ===")
    assert tampered.count("r <-- c * g - (w - w_new)") == 1 and weakened != tampered
    outcomes = []
    for name, source in (("tampered", tampered), ("weakened", weakened)):
        (tmp_path / f"{name}.circom").write_text(source)
        pk, vk, _ = adapter.setup(tmp_path / f"{name}.circom")
        outcomes.append(adapter.verify(vk, adapter.prove(pk, sgd_signals(w, x, y, moved)), claimed)[0])
    assert outcomes == [False, True]


QUOTIENT_GADGET = "component main = FloorDivCheck(12, 24);"
REMAINDER_ONLY_GADGET = """
template RemainderOnly(k) {
    signal input acc;
    signal input add;
    signal input z;
    signal input r;
    signal output nonneg;
    component remainder = Num2Bits(k);
    remainder.in <== r;
    acc === (z - add) * (2 ** k) + r;
    nonneg <== 1;
}
component main = RemainderOnly(12);
"""


def test_field_wrapped_quotient_with_an_in_range_remainder_has_no_valid_proof(tmp_path):
    acc, honest_q, honest_r = 5 * 4096 + 7, 5, 7
    wrapped_r = 8  # in range, but then q must be (acc - 8) / 4096 in the field: a huge element
    wrapped_q = (acc - wrapped_r) * pow(4096, -1, FIELD_MODULUS) % FIELD_MODULUS
    assert (wrapped_q * 4096 + wrapped_r) % FIELD_MODULUS == acc and wrapped_q >= 2**24
    witnesses = {"honest": (honest_q, honest_r), "wrapped": (wrapped_q, wrapped_r)}

    def prove_gadget(main: str, name: str, which: str) -> tuple[bool, bool]:
        (tmp_path / f"{name}.circom").write_text(gadget_source(main))
        pk, vk, _ = adapter.setup(tmp_path / f"{name}.circom")
        q, r = witnesses[which]
        proof = adapter.prove(pk, {"acc": acc, "add": 0, "z": q, "r": r})
        return tuple(adapter.verify(vk, proof, [bit])[0] for bit in (0, 1))

    assert prove_gadget(QUOTIENT_GADGET, "checked", "honest") == (False, True)
    assert prove_gadget(QUOTIENT_GADGET, "checked", "wrapped") == (False, False)
    # with the remainder checked alone, the wrapped quotient proves: the quotient bound is what stops it
    assert prove_gadget(REMAINDER_ONLY_GADGET, "remainder_only", "wrapped") == (False, True)


def test_second_key_request_hits_the_cache(tiny_keys, groth16_cache, monkeypatch):
    monkeypatch.setattr(adapter, "setup", lambda *a: pytest.fail("ran a second setup"))
    again = keys.ensure_keys(tiny_spec(), groth16_cache)
    assert again.created is False and again.path == tiny_keys.path
    assert sorted(p.name for p in again.path.iterdir()) == ["circuit.circom", "pk.bin", "provenance.json", "vk.bin", "vk.json"]
    assert again.record["constraints"]["constraints"] > 0


def test_two_processes_asking_for_the_same_key_run_one_setup(tmp_path):
    """Two trainers (or test workers) sharing a cache: the second waits for the first's setup
    and opens its keys, instead of running the same setup beside it."""
    setups = tmp_path / "setups.log"
    program = (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from groth16_support import tiny_spec\n"
        "from pot_zk.backends.groth16 import adapter, keys\n"
        "real = adapter.setup\n"
        "def logged(source):\n"
        "    open(sys.argv[3], 'a').write('setup\\n'); time.sleep(2); return real(source)\n"
        "adapter.setup = logged\n"
        "print(keys.ensure_keys(tiny_spec(learning_rate=0.125), sys.argv[1]).created)\n"
    )
    here = str(Path(__file__).parent)
    processes = [
        subprocess.Popen([sys.executable, "-c", program, str(tmp_path / "cache"), here, str(setups)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    answers = sorted(p.communicate(timeout=600)[0].strip() for p in processes)
    assert [p.returncode for p in processes] == [0, 0]
    assert answers == ["False", "True"]
    assert setups.read_text() == "setup\n", "the setup ran once"
    assert len(list((tmp_path / "cache" / "groth16").iterdir())) == 1


def test_failed_setup_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(path):
        raise ProofGenerationError("simulated compiler failure", retryable=False)

    monkeypatch.setattr(adapter, "setup", broken)
    with pytest.raises(ProofGenerationError):
        keys.ensure_keys(tiny_spec(), tmp_path)
    assert list((tmp_path / "groth16").iterdir()) == []


def test_the_scratch_of_a_setup_killed_midway_is_removed_by_the_next_setup_not_that_of_a_running_one(tmp_path, monkeypatch):
    """review32: a key setup killed midway left its scratch directory (up to a partial 67 MB
    proving key) in the cache for good."""
    program = (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from groth16_support import tiny_spec\n"
        "from pot_zk.backends.groth16 import adapter, keys\n"
        "adapter.setup = lambda source: time.sleep(600)\n"
        "keys.ensure_keys(tiny_spec(learning_rate=float(sys.argv[3])), sys.argv[1])\n"
    )
    here = str(Path(__file__).parent)
    setups = [subprocess.Popen([sys.executable, "-c", program, str(tmp_path), here, rate]) for rate in ("0.5", "0.25")]
    killed, running = setups
    try:
        deadline = time.monotonic() + 60
        scratches: list[Path] = []
        while len(scratches) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            scratches = sorted((tmp_path / "groth16").glob(".*")) if (tmp_path / "groth16").is_dir() else []
        assert len(scratches) == 2, scratches
        killed.kill()
        killed.wait(timeout=30)
        [abandoned] = [path for path in scratches if f"-{killed.pid}-" in path.name]

        def broken(path):
            raise ProofGenerationError("simulated compiler failure", retryable=False)

        monkeypatch.setattr(adapter, "setup", broken)
        with pytest.raises(ProofGenerationError):
            keys.ensure_keys(tiny_spec(learning_rate=0.125), tmp_path)  # a third statement's setup
        assert sorted((tmp_path / "groth16").glob(".*")) == [path for path in scratches if path != abandoned]
    finally:
        for setup in setups:
            setup.kill()
            setup.wait(timeout=30)


def test_keys_of_another_circuit_source_are_refused(tiny_keys, tmp_path):
    import shutil

    copy = tmp_path / "keys"
    shutil.copytree(tiny_keys.path, copy)
    (copy / "circuit.circom").write_text((copy / "circuit.circom").read_text() + "\n")
    with pytest.raises(ConfigurationError):
        keys.load_verifying_key(tiny_spec(), copy)


def test_generated_source_is_deterministic():
    assert tiny_spec().circuit_source() == tiny_spec().circuit_source()
    assert tiny_spec().circuit_source() != tiny_spec(learning_rate=0.05).circuit_source()


def test_a_file_that_is_not_a_zkey_is_refused_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "ceremony.zkey").write_bytes(b"not a zkey")
    with pytest.raises(ConfigurationError) as caught:
        keys.import_zkey_keys(tiny_spec(), tmp_path / "ceremony.zkey", tmp_path / "keys")
    assert caught.value.key == "zkey"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ceremony.zkey"]
