"""Tiny statements and honest integer steps shared by the zk-groth16 tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement

TINY_DIMS = (4, 3, 2)
BATCH = 2
LR = 0.1


def tiny_spec(**overrides) -> Groth16SgdStatement:
    return Groth16SgdStatement(**{"dims": TINY_DIMS, "batch_size": BATCH, "learning_rate": LR, **overrides})


def honest_step(spec: Groth16SgdStatement, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(W_t, X, Y, W_t+1) as integers: weights ~ N(0, 0.5), inputs U(-1, 1), targets N(0, 1),
    on the 2**-scale grid, and W_t+1 the exact step."""
    rng = np.random.default_rng(seed)
    grid = 2.0**spec.scale
    w = np.round(rng.normal(0, 0.5, spec.num_params) * grid).astype(np.int64)
    x = np.round(rng.uniform(-1, 1, (spec.batch_size, spec.dims[0])) * grid).astype(np.int64)
    y = np.round(rng.normal(0, 1, (spec.batch_size, spec.dims[-1])) * grid).astype(np.int64)
    return w, x, y, exact_sgd_step(spec, w, x, y)


def tiny_lora_spec(**overrides):
    """4-3-2 with rank-2 adapters on both layers: every path (adapter forward, gradients, and
    back-propagation through an adapter) is in the circuit."""
    from pot_zk.backends.groth16.lora.statement import Groth16LoraStatement

    values = {"dims": TINY_DIMS, "adapted": (0, 1), "rank": 2, "alpha": 4.0, "batch_size": BATCH, "learning_rate": LR, **overrides}
    return Groth16LoraStatement(**values)


def honest_lora_step(spec, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(base, adapters before, X, Y, adapters after) as integers, the last the exact step."""
    from pot_zk.backends.groth16.lora.exact import exact_lora_step

    rng = np.random.default_rng(seed)
    grid = 2.0**spec.scale
    base = np.round(rng.normal(0, 0.5, spec.num_base_params) * grid).astype(np.int64)
    adapters = np.round(rng.normal(0, 0.5, spec.num_adapter_params) * grid).astype(np.int64)
    x = np.round(rng.uniform(-1, 1, (spec.batch_size, spec.dims[0])) * grid).astype(np.int64)
    y = np.round(rng.normal(0, 1, (spec.batch_size, spec.dims[-1])) * grid).astype(np.int64)
    return base, adapters, x, y, exact_lora_step(spec, base, adapters, x, y)


def tiny_ce_spec(**overrides) -> Groth16SgdStatement:
    """4-3-3 with softmax cross-entropy on 3 classes, batch 2."""
    return Groth16SgdStatement(**{"dims": (4, 3, 3), "batch_size": BATCH, "learning_rate": LR, "loss": "cross_entropy", **overrides})


def honest_ce_step(spec: Groth16SgdStatement, seed: int = 0, labels: tuple[int, ...] | None = None) -> tuple[np.ndarray, ...]:
    """(W_t, X, labels k * 2**scale, W_t+1) as integers, the last the exact cross-entropy step."""
    rng = np.random.default_rng(seed)
    grid = 2**spec.scale
    w = np.round(rng.normal(0, 0.5, spec.num_params) * grid).astype(np.int64)
    x = np.round(rng.uniform(-1, 1, (spec.batch_size, spec.dims[0])) * grid).astype(np.int64)
    classes = np.array(labels) if labels is not None else rng.integers(0, spec.dims[-1], spec.batch_size)
    y = classes.astype(np.int64) * grid
    return w, x, y, exact_sgd_step(spec, w, x, y)


def sgd_integers(w_before: np.ndarray, x: np.ndarray, y: np.ndarray, w_after: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """An SGD step's integers by name (:data:`pot_zk.backends.groth16.statement.Integers`)."""
    return {"w_before": w_before, "x": x, "y": y, **({} if w_after is None else {"w_after": w_after})}


def lora_integers(base: np.ndarray, a_before: np.ndarray, x: np.ndarray, y: np.ndarray, a_after: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A LoRA step's integers by name (the adapters are ``w_before``/``w_after``)."""
    return {"base": base, "w_before": a_before, "x": x, "y": y, **({} if a_after is None else {"w_after": a_after})}


def sgd_signals(w_before: np.ndarray, x: np.ndarray, y: np.ndarray, w_after: np.ndarray) -> dict[str, list]:
    """The SGD circuit's private input signals (what a cheating prover hands the engine)."""
    return {"w_before": w_before.reshape(-1).tolist(), "x": x.tolist(), "y": y.tolist(), "w_after": w_after.reshape(-1).tolist()}


def lora_signals(base: np.ndarray, a_before: np.ndarray, x: np.ndarray, y: np.ndarray, a_after: np.ndarray) -> dict[str, list]:
    """The LoRA circuit's private input signals."""
    return {"a_before": a_before.reshape(-1).tolist(), "x": x.tolist(), "y": y.tolist(), "a_after": a_after.reshape(-1).tolist(), "base": base.reshape(-1).tolist()}


def stop_holders(cache: Path, circuit: dict) -> None:
    """Stop the key holder a run's prover program left for ``circuit`` (it would linger 60 s)."""
    from provers.groth16_held import socket_path

    pid_file = Path(f"{socket_path(str(cache), circuit)}.pid")
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of the (began, ended) intervals that overlap at one instant."""
    events = sorted([(began, 1) for began, _ in intervals] + [(ended, -1) for _, ended in intervals], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def auditor_pins(verify_command: str) -> dict:
    """verify_run's keywords for the references a user loop hands over
    (:meth:`pot_zk.hooks.ProvenTraining.verify_command`): head, root, initial model, the
    accepted batch order."""
    words = verify_command.split()
    value = {flag: words[words.index(flag) + 1] for flag in ("--expect-head", "--expect-root", "--expect-initial")}
    return {"expect_head": value["--expect-head"], "expect_root": value["--expect-root"], "expect_initial": value["--expect-initial"],
            "accept_settings": {"batch_order": "recorded"}}
