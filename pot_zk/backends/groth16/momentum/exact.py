"""The exact fixed-point step of SGD with momentum: one integer arithmetic for training,
proving and reexec.

For a :class:`~pot_zk.backends.groth16.momentum.spec.Groth16MomentumSpec` with
``P = 2**param_scale``, ``S = 2**scale`` and G the gradients of the SGD statement's backward
pass at S**2, not rounded (:func:`~pot_zk.backends.groth16.sgd.exact.unscaled_gradients`, the
same forward pass, output delta and rescales, every ``//`` a floor)::

    V' = (mu_fix S V + g_fix G + wd_fix S W) // (P S)   torch: V' = mu V + (g + lambda W)
    W' = W - (lr_fix V') // P                          torch: W' = W - lr V'

(the gradient is rounded once, in the velocity's update).

Bounds (what the circuit range-checks): W, V, X, Y, W' and V' in the signed ``value_bits``
range, the SGD step's rescaled values in the ``quotient_bits`` range. A value out of bound is a
:class:`WitnessBuilderError` naming the tensor and layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pot_zk.backends.groth16.sgd.exact import check_params, unscaled_gradients
from pot_zk.exceptions import WitnessBuilderError

if TYPE_CHECKING:
    from pot_zk.backends.groth16.momentum.spec import Groth16MomentumSpec


def exact_momentum_step(spec: Groth16MomentumSpec, w_int: np.ndarray, x_int: np.ndarray, y_int: np.ndarray, v_int: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W_t+1, V_t+1), flat in canonical order (int64), from W_t, X, Y and V_t."""
    gradient = unscaled_gradients(spec, w_int, x_int, y_int)
    w = np.asarray(w_int).astype(np.int64).astype(object)
    v = check_velocity(spec, v_int).astype(object)
    unit = 2**spec.scale
    v_after = (spec.mu_fix * unit * v + spec.c_fix * gradient + spec.wd_fix * unit * w) // (2**spec.param_scale * unit)
    check_params(spec, v_after, "velocity after the step")
    w_after = w - (spec.lr_fix * v_after) // 2**spec.param_scale
    check_params(spec, w_after, "after the update")
    return w_after.astype(np.int64), v_after.astype(np.int64)


def check_velocity(spec: Groth16MomentumSpec, v_int: np.ndarray) -> np.ndarray:
    """V_t as int64: one integer per parameter, in the signed ``value_bits`` range."""
    v = np.asarray(v_int)
    if v.shape != (spec.num_params,) or v.dtype.kind not in "iu":
        raise WitnessBuilderError(
            "the velocity must be one integer per parameter",
            expected=[spec.num_params, "integers"],
            actual=[list(v.shape), str(v.dtype)],
            tensor="velocity",
        )
    v = v.astype(np.int64)
    check_params(spec, v, "velocity before the step")
    return v
