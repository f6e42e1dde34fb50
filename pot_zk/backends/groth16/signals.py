"""The private input signals of the zk-groth16 circuits, from integer tensors."""

from __future__ import annotations

from typing import Any

import numpy as np


def circuit_inputs(w_before: np.ndarray, x: np.ndarray, y: np.ndarray, w_after: np.ndarray) -> dict[str, Any]:
    """The circuit's private input signals."""
    return {
        "w_before": np.asarray(w_before, dtype=np.int64).reshape(-1).tolist(),
        "x": np.asarray(x, dtype=np.int64).tolist(),
        "y": np.asarray(y, dtype=np.int64).tolist(),
        "w_after": np.asarray(w_after, dtype=np.int64).reshape(-1).tolist(),
    }


def lora_circuit_inputs(base: np.ndarray, a_before: np.ndarray, x: np.ndarray, y: np.ndarray, a_after: np.ndarray) -> dict[str, Any]:
    """The LoRA circuit's private input signals."""
    return {
        "a_before": np.asarray(a_before, dtype=np.int64).reshape(-1).tolist(),
        "x": np.asarray(x, dtype=np.int64).tolist(),
        "y": np.asarray(y, dtype=np.int64).tolist(),
        "a_after": np.asarray(a_after, dtype=np.int64).reshape(-1).tolist(),
        "base": np.asarray(base, dtype=np.int64).reshape(-1).tolist(),
    }
