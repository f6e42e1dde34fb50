"""The parameters of one exactly proven Adam or AdamW step: :class:`Groth16AdamwSpec` (the
statement is :class:`~pot_zk.backends.groth16.adamw.statement.Groth16AdamwStatement`).

The SGD statement's parameters (:class:`~pot_zk.backends.groth16.sgd.spec.Groth16SgdSpec`:
architecture, loss, batch size, learning rate, the weights' grid and bounds) plus torch's
``betas``, ``eps``, ``weight_decay`` and whether the decay is decoupled (AdamW) or added to the
gradient (Adam). The moments and the step count are committed on grids of their own (fixed by
the circuit version, :data:`GRIDS`): the gradient and the first moment m at 2**-18 within 22
signed bits (|m| < 8), the second moment v at 2**-46 within [0, 2**52) (v < 64: fine enough
that (1 - b2) g^2 of the smallest gradient that moves m is a hundred units of v, and exact in
the float64 copies training keeps), the step count t as an integer in [0, 2**23).

Constants, each the exact binary value of the float rounded half away from zero:
``g_fix = round(c 2**p)`` (c = 2 / (N d_out) for mse, 1 / N for cross_entropy),
``b1_fix = round(b1 2**p)``, ``b2_fix = round(b2 2**p)``, ``lr_fix = round(lr 2**p)``, Adam's
``wd_fix = round(lambda 2**p)``, AdamW's ``lr_wd_fix = round(lr lambda 2**p)``,
``eps_fix = round(eps 2**29)`` (eps on the grid of sqrt(v)) and the powers of the betas
``C_i = round(C_(i-1)^2 / 2**32)``, ``C_0 = round(b 2**32)`` (b^(2^i) at 2**-32). A constant of
a non-zero setting that rounds to 0 is refused (``ConfigurationError``), as are betas that
round to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Mapping

from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec
from pot_zk.backends.groth16.statement import BACKEND, round_half_away, strict_int
from pot_zk.exceptions import ConfigurationError

VERSIONS = {"mse": "groth16-adamw/1", "cross_entropy": "groth16-adamw-ce/1"}
"""The circuit version of each loss the AdamW circuit states."""
KIND = "adamw"

MOMENT_SCALE = 18
"""The gradient g and the first moment m are integers at 2**-18."""
MOMENT_BITS = 22
SECOND_SCALE = 2 * MOMENT_SCALE + 10
"""v at 2**-46: 10 bits finer than g^2."""
SECOND_BITS = 53
"""v in [0, 2**52): committed as a signed 53-bit value, range-checked unsigned."""
ROOT_SCALE = SECOND_SCALE // 2 + 6
"""sqrt(v) at 2**-29: R = isqrt(v 2**12)."""
COUNT_BITS = 24
"""t in [0, 2**23): committed as a signed 24-bit value; the exponent has 23 bits."""
BIAS_SCALE = 32
"""b^t, 1 - b^t and sqrt(1 - b2^t) at 2**-32."""
FACTOR_SCALE = 32
"""The step factor f = sqrt(1 - b2^t) / (1 - b1^t) at 2**-32."""
GRIDS: Mapping[str, tuple[int, int]] = {
    **{name: (MOMENT_SCALE, MOMENT_BITS) for name in ("m_before", "m_after")},
    **{name: (SECOND_SCALE, SECOND_BITS) for name in ("v_before", "v_after")},
    **{name: (0, COUNT_BITS) for name in ("t_before", "t_after")},
}
"""(scale, bits) of the committed state besides the weights."""


@dataclass(frozen=True)
class Groth16AdamwSpec(Groth16SgdSpec):
    """One exact Adam or AdamW step of a ReLU MLP with MSE or softmax cross-entropy loss."""

    takes_schedule: ClassVar[bool] = False
    """Its circuit holds the rate as a constant: a schedule is refused."""
    update_floored: ClassVar[bool] = False
    versions: ClassVar[Mapping[str, str]] = VERSIONS

    kind: ClassVar[str] = KIND
    public_names: ClassVar[tuple[str, ...]] = ("w_before", "batch", "w_after", "m_before", "m_after", "v_before", "v_after", "t_before", "t_after")
    after_names: ClassVar[tuple[str, ...]] = ("w_after", "m_after", "v_after", "t_after")
    signal_names: ClassVar[Mapping[str, str]] = {name: name for name in ("w_before", "x", "y", "w_after", "m_before", "m_after", "v_before", "v_after", "t_before", "t_after")}
    tensor_grids: ClassVar[Mapping[str, tuple[int, int]]] = GRIDS

    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"setting": False})
    """Hyper-parameters of the training, not fixed-point settings."""
    eps: float = field(default=1e-8, metadata={"setting": False})
    weight_decay: float = field(default=0.0, metadata={"setting": False})
    decoupled_weight_decay: bool = field(default=True, metadata={"setting": False})
    """AdamW (the decay scales the weights); False: Adam (the decay is added to the gradient)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if len(self.betas) != 2 or not all(isinstance(b, float) and 0.0 <= b < 1.0 for b in self.betas):
            raise ConfigurationError(f"betas must be two floats in [0, 1), not {self.betas!r}", key="optimizer.betas")
        if not (isinstance(self.eps, float) and self.eps > 0.0 and self.eps < 1.0):
            raise ConfigurationError(f"eps must be a float in (0, 1), not {self.eps!r}", key="optimizer.eps")
        if not (isinstance(self.weight_decay, float) and 0.0 <= self.weight_decay < 1.0):
            raise ConfigurationError(f"weight_decay must be a float in [0, 1), not {self.weight_decay!r}", key="optimizer.weight_decay")
        if not isinstance(self.decoupled_weight_decay, bool):
            raise ConfigurationError(f"decoupled_weight_decay must be a bool, not {self.decoupled_weight_decay!r}", key="optimizer.name")
        super().__post_init__()
        if self.gradient_shift < 1:
            raise ConfigurationError(f"param_scale + scale must exceed {MOMENT_SCALE} (the gradient's grid)", key="circuit.param_scale")
        for name, value, fixed in (
            ("learning_rate", self.learning_rate, self.lr_fix),
            ("eps", self.eps, self.eps_fix),
            ("weight_decay", self.weight_decay, self.wd_fix if not self.decoupled_weight_decay else self.lr_wd_fix),
        ):
            if value and fixed == 0:
                raise ConfigurationError(f"{name} {value!r} rounds to 0 in the adamw statement at param_scale={self.param_scale}", key=f"optimizer.{name}" if name != "learning_rate" else "train.learning_rate")
        if max(self.beta_fix) >= 2**self.param_scale or max(self.powers[0][0], self.powers[1][0]) >= 2**BIAS_SCALE:
            raise ConfigurationError(f"betas {list(self.betas)} round to 1 at param_scale={self.param_scale}", key="optimizer.betas")

    @property
    def p(self) -> int:
        return self.param_scale

    @property
    def architecture(self) -> Any:
        """The step kind's :class:`~pot_zk.kinds.adamw.step.AdamwArchitecture` (imported here)."""
        from pot_zk.kinds.adamw.step import AdamwArchitecture
        from pot_zk.kinds.mlp import MlpArchitecture

        return AdamwArchitecture(MlpArchitecture(self.dims, loss=self.loss), self.betas, self.eps, self.weight_decay, self.decoupled_weight_decay)

    def input_sizes(self) -> dict[str, int]:
        sizes = {"m_before": self.num_params, "m_after": self.num_params, "v_before": self.num_params, "v_after": self.num_params}
        return {**super().input_sizes(), **sizes, "t_before": 1, "t_after": 1}

    @property
    def step_constant(self) -> Fraction:
        """c, the gradient constant (``c_fix`` is ``g_fix``)."""
        return super().step_constant / Fraction(self.learning_rate)

    def _fixed(self, value: float | Fraction, bits: int | None = None) -> int:
        return round_half_away(Fraction(value) * 2 ** (self.param_scale if bits is None else bits))

    @property
    def beta_fix(self) -> tuple[int, int]:
        return self._fixed(self.betas[0]), self._fixed(self.betas[1])

    @property
    def lr_fix(self) -> int:
        return self._fixed(self.learning_rate)

    @property
    def wd_fix(self) -> int:
        """Adam: lambda at 2**-p (added to the gradient); 0 for AdamW."""
        return 0 if self.decoupled_weight_decay else self._fixed(self.weight_decay)

    @property
    def lr_wd_fix(self) -> int:
        """AdamW: lr lambda at 2**-p (the weights' decay); 0 for Adam."""
        return self._fixed(Fraction(self.learning_rate) * Fraction(self.weight_decay)) if self.decoupled_weight_decay else 0

    @property
    def eps_fix(self) -> int:
        return self._fixed(self.eps, ROOT_SCALE)

    @property
    def gradient_shift(self) -> int:
        """g = round((g_fix G + wd_fix S W) / 2**k), k = p + 2 scale - 18 (G at S**2)."""
        return self.param_scale + 2 * self.scale - MOMENT_SCALE

    @property
    def powers(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """For each beta, b^(2^i) at 2**-32 for i < 23 (each the rounded square of the one before)."""
        out = []
        for beta in self.betas:
            chain = [self._fixed(beta, BIAS_SCALE)]
            while len(chain) < COUNT_BITS - 1:
                chain.append((chain[-1] * chain[-1] + 2 ** (BIAS_SCALE - 1)) // 2**BIAS_SCALE)
            out.append(tuple(chain))
        return out[0], out[1]

    @property
    def factor_bits(self) -> int:
        """Bits of the step factor f 2**32 <= 2**32 sqrt(1) / (1 - b1) + 1 (at t = 1, 1 - b1^t is smallest)."""
        smallest = 2**BIAS_SCALE - self.powers[0][0]
        return (2 ** (BIAS_SCALE + FACTOR_SCALE) // smallest + 1).bit_length()

    @property
    def update_remainder_bits(self) -> int:
        """n with 2 den < 2**n for the update's denominator den = (R 2**32 + eps_fix s2) 2**-e,
        R < 2**32, s2 <= 2**32 (and e the update exponent, when negative)."""
        exponent = ROOT_SCALE + BIAS_SCALE + self.scale - self.param_scale - MOMENT_SCALE - FACTOR_SCALE
        largest = ((2**32 - 1) * 2**BIAS_SCALE + self.eps_fix * 2**BIAS_SCALE) * 2 ** max(-exponent, 0)
        return (2 * largest).bit_length()

    def update_bound(self) -> int:
        """The gradient's rescale ``g_fix G + wd_fix S W`` (G at S**2: the SGD step's products
        times S bound it), AdamW's ``lr_wd_fix W`` and both sides of the update's division
        ``2 num + den == 2 u den + r`` (num = lr_fix m' f 2**max(e, 0): the learning rate's
        constant is in it, so a large enough rate is refused here rather than let the division
        pass the field modulus; a review found it unbounded before). The moments' arithmetic
        stays far below (its inputs are range-checked)."""
        v, unit = 2 ** (self.value_bits - 1), 2**self.scale
        exponent = ROOT_SCALE + BIAS_SCALE + self.scale - self.param_scale - MOMENT_SCALE - FACTOR_SCALE
        numerator = self.lr_fix * 2 ** (MOMENT_BITS - 1) * 2**self.factor_bits * 2 ** max(exponent, 0)
        division = max(2 * numerator, 2**self.quotient_bits * 2**self.update_remainder_bits) + 2**self.update_remainder_bits
        return max(super().update_bound() * unit + self.wd_fix * unit * v, self.lr_wd_fix * v, division)

    def to_dict(self) -> dict[str, Any]:
        mlp = {"dims": list(self.dims), "activation": "relu", "loss": self.loss}
        architecture = {"mlp": mlp, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay, "decoupled_weight_decay": self.decoupled_weight_decay}
        return {"kind": KIND, "backend": BACKEND, "circuit_version": self.circuit_version, "architecture": architecture, **self._fixed_point_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Groth16AdamwSpec":
        try:
            architecture = cls._check_header(data)
            mlp = architecture["mlp"]
            if mlp.get("activation") != "relu" or mlp.get("loss") not in cls.losses:
                raise ValueError(f"only ReLU MLPs with loss {' or '.join(cls.losses)}, not {mlp}")
            decoupled = architecture["decoupled_weight_decay"]
            if not isinstance(decoupled, bool):
                raise ValueError(f"decoupled_weight_decay must be true or false, not {decoupled!r}")
            return cls(
                dims=tuple(strict_int(d) for d in mlp["dims"]),
                loss=str(mlp["loss"]),
                betas=tuple(float(b) for b in architecture["betas"]),
                eps=float(architecture["eps"]),
                weight_decay=float(architecture["weight_decay"]),
                decoupled_weight_decay=decoupled,
                **cls._fixed_point_fields(data),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"malformed groth16 adamw spec: {exc!r}", key="circuit") from exc
