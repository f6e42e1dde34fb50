"""The key holder (pot_zk/backends/groth16/warm.py): proofs from a proving key loaded once are
the same proofs, a dead holder is replaced, and an idle holder exits."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pot_zk.backends.groth16.prove import prove_sgd_step
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.backends.groth16.keys import load_verifying_key
from pot_zk.backends.groth16.commit import commit_sgd_step
from pot_zk.backends.groth16.warm import socket_path
from pot_zk.exceptions import WitnessBuilderError

from groth16_support import honest_step, tiny_spec

pytestmark = pytest.mark.prover


def _holder_pid(tiny_keys) -> int:
    return int(socket_path(tiny_keys.path, tiny_keys.record["vk_sha256"]).with_suffix(".sock.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pid: int) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_held_key_proves_verifiable_steps_without_reloading_and_a_dead_holder_is_replaced(tiny_keys):
    spec = tiny_spec()
    vk = load_verifying_key(spec, tiny_keys.path)
    steps = [honest_step(spec, seed=seed) for seed in (11, 12, 13)]
    first = prove_sgd_step(spec, tiny_keys, *steps[0], keep_key_s=30)
    holder = _holder_pid(tiny_keys)
    try:
        second = prove_sgd_step(spec, tiny_keys, *steps[1], keep_key_s=30)
        assert "key_load_s" not in second.timings and second.timings["key_wait_s"] < 1.0
        assert _holder_pid(tiny_keys) == holder
        for proof, step in ((first, steps[0]), (second, steps[1])):
            assert verify_groth16(spec, proof.proof, commit_sgd_step(spec, *step), vk).ok
        os.kill(holder, signal.SIGKILL)
        time.sleep(0.2)
        third = prove_sgd_step(spec, tiny_keys, *steps[2], keep_key_s=30)
        assert verify_groth16(spec, third.proof, commit_sgd_step(spec, *steps[2]), vk).ok
        assert _holder_pid(tiny_keys) != holder
    finally:
        _stop(holder)
        _stop(_holder_pid(tiny_keys))


def test_an_idle_holder_exits_and_removes_its_socket(tiny_keys):
    spec = tiny_spec()
    prove_sgd_step(spec, tiny_keys, *honest_step(spec, seed=14), keep_key_s=1.0)
    holder = _holder_pid(tiny_keys)
    try:
        deadline = time.monotonic() + 20
        while _alive(holder) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(holder)
        assert not socket_path(tiny_keys.path, tiny_keys.record["vk_sha256"]).exists()
    finally:
        _stop(holder)


def test_a_wrong_step_is_refused_before_it_reaches_the_holder(tiny_keys):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=15)
    w_after[0] += 1
    with pytest.raises(WitnessBuilderError, match="not the exact step"):
        prove_sgd_step(spec, tiny_keys, w, x, y, w_after, keep_key_s=30)
