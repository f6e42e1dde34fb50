"""The seed's ``lora_config``: the adapters a LoRA step is declared to have.

``AutoProver(lora_config=...)`` takes a peft ``LoraConfig`` (its ``r``, ``lora_alpha`` and
``target_modules``; pot-zk never imports peft itself) or a dict with ``rank`` (or ``r``),
``alpha`` (or ``lora_alpha``) and ``target_modules``, each optional. A LoRA step whose adapters
differ from what is declared is an :class:`~pot_zk.exceptions.InvalidModelStateError` before
any prover runs. ``target_modules`` selects modules as peft does (a name listed, or a name
ending in ``.`` + a name listed; a single string is a regular expression the whole name must
match), among the linear layers of the MLP, named by their ``nn.Sequential`` index (``"0"``,
``"2"``, ...): the layers it selects must be exactly the adapted ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pot_zk.exceptions import ConfigurationError, InvalidModelStateError
from pot_zk.kinds.lora.step import LoraTrainingStep

DICT_KEYS = {"rank": "rank", "r": "rank", "alpha": "alpha", "lora_alpha": "alpha", "target_modules": "target_modules"}
"""The keys a ``lora_config`` dict may have, and the setting each one is."""


@dataclass(frozen=True)
class LoraSettings:
    """Declared adapters; a None field is not declared (not checked)."""

    rank: int | None = None
    alpha: float | None = None
    target_modules: tuple[str, ...] | str | None = None
    """Module names (a tuple) or one regular expression (a string)."""

    def __post_init__(self) -> None:
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1):
            raise ConfigurationError(f"lora_config rank must be an integer >= 1, not {self.rank!r}", key="lora_config.rank")
        if self.alpha is not None and not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            raise ConfigurationError(f"lora_config alpha must be a number > 0, not {self.alpha!r}", key="lora_config.alpha")
        if isinstance(self.target_modules, str):
            try:
                re.compile(self.target_modules)
            except re.error as error:
                raise ConfigurationError(f"lora_config target_modules {self.target_modules!r} is not a regular expression: {error}",
                                         key="lora_config.target_modules") from error

    @classmethod
    def of(cls, lora_config: Any) -> "LoraSettings | None":
        """The settings of a peft ``LoraConfig`` or a dict; None for None. Anything else, or a
        dict key other than those of :data:`DICT_KEYS`, is a ConfigurationError."""
        if lora_config is None:
            return None
        if isinstance(lora_config, Mapping):
            unknown = sorted(set(map(str, lora_config)) - set(DICT_KEYS))
            if unknown:
                raise ConfigurationError(f"unknown lora_config keys {unknown}", key="lora_config", options=sorted(DICT_KEYS))
            values = {DICT_KEYS[key]: value for key, value in lora_config.items()}
        elif all(hasattr(lora_config, name) for name in ("r", "lora_alpha", "target_modules")):
            values = {"rank": lora_config.r, "alpha": lora_config.lora_alpha, "target_modules": lora_config.target_modules}
        else:
            raise ConfigurationError(
                f"lora_config must be a peft LoraConfig or a dict, not {type(lora_config).__name__}",
                key="lora_config",
                options=sorted(DICT_KEYS),
            )
        return cls(values.get("rank"), values.get("alpha"), _targets(values.get("target_modules")))

    def check(self, step: LoraTrainingStep) -> None:
        """InvalidModelStateError naming every declared setting the step's adapters differ in."""
        architecture = step.architecture
        adapted = [str(2 * layer) for layer in architecture.adapted]
        differences: dict[str, dict[str, Any]] = {}
        if self.rank is not None and architecture.rank != self.rank:
            differences["rank"] = {"declared": self.rank, "found": architecture.rank}
        if self.alpha is not None and architecture.alpha != float(self.alpha):
            differences["alpha"] = {"declared": float(self.alpha), "found": architecture.alpha}
        if self.target_modules is not None:
            linear = [str(2 * layer) for layer in range(len(architecture.base.dims) - 1)]
            targeted = [name for name in linear if self._targets(name)]
            if targeted != adapted:
                differences["target_modules"] = {"declared": targeted, "found": adapted}
        if differences:
            raise InvalidModelStateError(
                f"the models' LoRA adapters differ from lora_config in {', '.join(differences)}: {differences}",
                expected={name: value["declared"] for name, value in differences.items()},
                actual={name: value["found"] for name, value in differences.items()},
            )

    def _targets(self, name: str) -> bool:
        """Whether ``target_modules`` selects the module ``name``, as peft selects them."""
        targets = self.target_modules
        if isinstance(targets, str):
            return re.fullmatch(targets, name) is not None
        assert targets is not None
        return any(name == target or name.endswith(f".{target}") for target in targets)


def _targets(target_modules: Any) -> tuple[str, ...] | str | None:
    if target_modules is None or isinstance(target_modules, str):
        return target_modules
    if isinstance(target_modules, Iterable):
        targets = tuple(sorted(map(str, target_modules)))
        if targets:
            return targets
    raise ConfigurationError(
        f"lora_config target_modules must be module names or a regular expression, not {target_modules!r}",
        key="lora_config.target_modules",
    )
