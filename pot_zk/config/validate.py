"""Every configuration error at once, before anything runs (torchtune's ``_validate`` style).

:func:`config_errors` checks a composed config against the schema without building anything:
keys the schema does not know (a ``+key`` override adds one silently; the nearest known key is
suggested), names that select an implementation (``handler.name``, ``prover.backend``, ...:
looked up in their registries, nothing imported), and the range of every number. Each error
names its key and value (``train.learning_rate must be > 0, got -1``). :func:`override_error`
says the same of an override Hydra cannot apply (an unknown key without ``+``, a value of the
wrong type). :class:`ConfigurationErrors` carries several at once; :class:`ErrorCollector`
gathers the errors of independent steps of :func:`pot_zk.config.build.build`.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from pot_zk.backends.registry import BACKENDS
from pot_zk.bundle.layout import MODES
from pot_zk.config.schema import PotZkConfig
from pot_zk.core.registry import Registry
from pot_zk.data.catalog import DATASETS, PARTS
from pot_zk.exceptions import ConfigurationError
from pot_zk.proving.executors import EXECUTORS
from pot_zk.proving.handlers import HANDLERS
from pot_zk.proving.policy import POLICIES

T = TypeVar("T")

FREE_FORM = ("circuit",)
"""Sections whose keys the schema leaves open: the prover backend checks ``circuit.*``."""


class ConfigurationErrors(ConfigurationError):
    """Several configuration errors found in one pass; ``errors`` holds each (``key`` is the first's)."""

    def __init__(self, errors: Sequence[ConfigurationError]) -> None:
        super().__init__(
            f"{len(errors)} configuration errors: " + "; ".join(e.message for e in errors),
            key=errors[0].key,
            errors=[e.to_record() for e in errors],
        )
        self.errors = list(errors)


def combined(errors: Sequence[ConfigurationError]) -> ConfigurationError:
    """One error for ``errors`` (itself when there is one; an error found twice counts once)."""
    distinct = list({error.message: error for error in errors}.values())
    return distinct[0] if len(distinct) == 1 else ConfigurationErrors(distinct)


class ErrorCollector:
    """Runs independent checks, keeping every ConfigurationError they raise."""

    def __init__(self, errors: Sequence[ConfigurationError] = ()) -> None:
        self.errors = list(errors)

    def attempt(self, check: Callable[..., T], *args: Any) -> T | None:
        try:
            return check(*args)
        except ConfigurationError as error:
            self.errors.extend(error.errors if isinstance(error, ConfigurationErrors) else [error])
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise combined(self.errors)


@dataclass(frozen=True)
class Bound:
    key: str
    requirement: str
    holds: Callable[[Any], bool]
    optional: bool = False
    """None is allowed (e.g. ``train.max_steps``: no limit)."""


BOUNDS = (
    Bound("train.learning_rate", "> 0", lambda v: math.isfinite(v) and v > 0),
    Bound("train.batch_size", ">= 1", lambda v: v >= 1),
    Bound("train.epochs", ">= 1", lambda v: v >= 1),
    Bound("train.max_steps", ">= 1", lambda v: v >= 1, optional=True),
    Bound("optimizer.momentum", "in [0, 1)", lambda v: 0 <= v < 1),
    Bound("optimizer.weight_decay", "in [0, 1)", lambda v: 0 <= v < 1),
    Bound("optimizer.betas", "two numbers in [0, 1)", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)),
    Bound("optimizer.eps", "> 0", lambda v: math.isfinite(v) and v > 0),
    Bound("model.dims", "a list of >= 2 widths, each >= 1", lambda v: len(v) >= 2 and all(d >= 1 for d in v)),
    Bound("model.lora_rank", ">= 1", lambda v: v >= 1),
    Bound("model.lora_alpha", "> 0", lambda v: math.isfinite(v) and v > 0),
    Bound("policy.k", ">= 1", lambda v: v >= 1),
    Bound("policy.fraction", "in [0, 1]", lambda v: 0 <= v <= 1),
    Bound("executor.workers", ">= 1", lambda v: v >= 1, optional=True),
    Bound("retry.max_retries", ">= 0", lambda v: v >= 0),
    Bound("retry.max_attempts", ">= 1", lambda v: v >= 1, optional=True),
    Bound("retry.initial_delay_s", ">= 0", lambda v: v >= 0),
    Bound("retry.multiplier", ">= 1", lambda v: v >= 1),
    Bound("retry.max_delay_s", ">= 0", lambda v: v >= 0),
    Bound("retry.jitter_s", ">= 0", lambda v: v >= 0),
    Bound("prover.timeout_s", "> 0", lambda v: v > 0),
    Bound("data.num_samples", ">= 1", lambda v: v >= 1),
    Bound("data.holdout", "in [0, 1)", lambda v: 0 <= v < 1),
    Bound("witness.max_step_bytes", ">= 0", lambda v: v >= 0),
    Bound("proving.mode", f"one of {', '.join(MODES)} (the mode presets; choose one with mode=NAME)", lambda v: v in MODES),
)

NAMES: tuple[tuple[str, Registry[Any]], ...] = (
    ("handler.name", HANDLERS),
    ("policy.name", POLICIES),
    ("executor.name", EXECUTORS),
    ("data.name", DATASETS),
    ("data.part", PARTS),
    ("prover.backend", BACKENDS),
)
"""(``model.kind`` names the model, ``sgd`` or ``lora``, not a step kind: which step kind a model
trained with the configured optimizer makes, and whether any, the kinds say when the plan is
built, :func:`pot_zk.kinds.registry.kind_for`; ``optimizer.name`` is checked there too.)"""


def shown(value: Any) -> str:
    """A value as a user typed it: ``-1`` for -1.0, ``'x'`` for a string."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (ListConfig, DictConfig)):
        value = OmegaConf.to_container(value)
    return repr(value) if isinstance(value, str) else str(value)


def config_errors(cfg: DictConfig) -> list[ConfigurationError]:
    """Every schema-level error of ``cfg``: unknown keys, unknown names, numbers out of range."""
    errors = unknown_keys(cfg)
    for key, registry in NAMES:
        try:
            registry.check(str(OmegaConf.select(cfg, key)))
        except ConfigurationError as unknown:
            errors.append(ConfigurationError(f"{key}: {unknown.message}", key=key, options=registry.names()))
    for bound in BOUNDS:
        value = OmegaConf.select(cfg, bound.key)
        if value is None and bound.optional:
            continue
        if value is None or not bound.holds(value):
            errors.append(ConfigurationError(f"{bound.key} must be {bound.requirement}, got {shown(value)}", key=bound.key, value=shown(value)))
    return errors


@functools.cache
def schema_keys() -> tuple[str, ...]:
    """Every dotted key the schema declares (the free-form sections as themselves)."""
    return tuple(_keys(OmegaConf.structured(PotZkConfig), ""))


def _keys(node: DictConfig, prefix: str) -> Iterator[str]:
    for key in node.keys():
        dotted = f"{prefix}{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and dotted not in FREE_FORM:
            yield from _keys(child, f"{dotted}.")
        else:
            yield dotted


def unknown_keys(cfg: DictConfig) -> list[ConfigurationError]:
    """Keys of ``cfg`` the schema does not declare (what a ``+key=value`` override adds)."""
    known = schema_keys()
    declared = set(known) | {k.rpartition(".")[0] for k in known}
    return [unknown_key_error(key, known) for key in _keys(cfg, "") if key not in declared and not key.startswith("hydra.")]


def unknown_key_error(key: str, known: Sequence[str] | None = None) -> ConfigurationError:
    """``unknown key train.max_step (did you mean train.max_steps?)``."""
    nearest = difflib.get_close_matches(key, known if known is not None else schema_keys(), n=1, cutoff=0.75)
    hint = f" (did you mean {nearest[0]}?)" if nearest else ""
    return ConfigurationError(f"unknown key {key}{hint}", key=key, suggestion=nearest[0] if nearest else None)


def config_keys(cfg: DictConfig) -> list[str]:
    """Every dotted key of a composed config, the free-form sections' keys included (the circuit
    settings its prover option declares): what an unknown key is compared with."""
    return [*_keys(cfg, ""), *(f"{section}.{key}" for section in FREE_FORM for key in (OmegaConf.select(cfg, section) or {}))]


def override_error(override: str, error: BaseException, known: Sequence[str] | None = None) -> ConfigurationError:
    """What is wrong with an override Hydra could not apply, in one line naming it (and, for an
    error inside a config file, the file: ``prover/typo.yaml: unknown key prover.timeout``); an
    unknown key comes with the nearest of ``known`` (default: the schema's keys)."""
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    cause = next((e for e in chain if getattr(e, "full_key", None)), chain[-1])
    everything = " ".join(" ".join(str(e).split()) for e in chain)
    named = re.search(r"full_key: (\S+)", everything)
    key = str(getattr(cause, "full_key", None) or (named.group(1) if named else override.lstrip("+~").split("=", 1)[0]))
    text = everything if named and not getattr(cause, "full_key", None) else " ".join(str(cause).split())
    in_file = re.search(r"In '([^']+)'", everything)
    where = f"{in_file.group(1)}.yaml: " if in_file else ""
    if "not in struct" in text or re.search(r"Key '[^']*' (is )?not in", text):
        found = unknown_key_error(key, known)
        return ConfigurationError(f"{where}{found.message}", key=key, **{k: v for k, v in found.context.items() if k not in ("key", "options")})
    converted = re.search(r"could not be converted to (\w+)", text)
    if converted:
        value = override.split("=", 1)[1] if "=" in override and not where else "?"
        return ConfigurationError(f"{where}{key} must be {_a(converted.group(1).lower())}, got {value!r}", key=key, value=value)
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return ConfigurationError(f"{where or override + ': '}{first}", key=key, override=override)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"
