"""Learning-rate schedules a run declares: each step's learning rate is a function of the step
number, recomputed by whoever checks the run.

A schedule is declared as a dict (config ``optimizer.schedule``, the manifest's
``training.schedule``) naming one of torch's schedulers, stepped once after each optimizer step:

    {"name": "step", "step_size": 30, "gamma": 0.1}                      StepLR
    {"name": "multistep", "milestones": [30, 80], "gamma": 0.1}          MultiStepLR
    {"name": "cosine", "T_max": 100, "eta_min": 0.0}                     CosineAnnealingLR
    {"name": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5}    LinearLR (warm-up)
    {"name": "sequential", "schedules": [<schedule>, ...], "milestones": [5]}        SequentialLR

The learning rate of step t is what torch's own scheduler gives on an optimizer whose learning
rate starts at the run's base rate, after t ``scheduler.step()`` calls (:meth:`Schedule.rates`:
the same code, so the same float64 values as the loop's own scheduler). A schedule may not make
the rate grow past the base rate (gamma and factors at most 1, ``eta_min`` at most the base):
the base rate bounds every step's, which is what a statement's circuit is sized for.
:func:`declared_schedule` reads the declaration off a loop's own scheduler object.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch.optim import lr_scheduler

from pot_zk.exceptions import ConfigurationError

_FIELDS: Mapping[str, Mapping[str, type]] = {
    "step": {"step_size": int, "gamma": float},
    "multistep": {"milestones": list, "gamma": float},
    "cosine": {"T_max": int, "eta_min": float},
    "linear": {"start_factor": float, "end_factor": float, "total_iters": int},
    "sequential": {"schedules": list, "milestones": list},
}
_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "step": {"gamma": 0.1},
    "multistep": {"gamma": 0.1},
    "cosine": {"eta_min": 0.0},
    "linear": {"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5},
}
NAMES = tuple(_FIELDS)
TORCH_NAMES = {"step": "StepLR", "multistep": "MultiStepLR", "cosine": "CosineAnnealingLR", "linear": "LinearLR", "sequential": "SequentialLR"}


def canonical(declaration: Mapping[str, Any], key: str = "optimizer.schedule") -> dict[str, Any]:
    """The declaration checked, with its defaults filled in and its numbers typed (ConfigurationError
    naming ``key`` otherwise)."""
    if not isinstance(declaration, Mapping) or declaration.get("name") not in _FIELDS:
        raise ConfigurationError(
            f"{key} must name a schedule, one of {', '.join(NAMES)} (or constant: none); "
            f"got {dict(declaration) if isinstance(declaration, Mapping) else declaration!r}", key=key,
        )
    name = str(declaration["name"])
    given = {k: v for k, v in declaration.items() if k != "name"}
    unknown = sorted(set(given) - set(_FIELDS[name]))
    if unknown:
        raise ConfigurationError(f"{key}: a {name} schedule takes {', '.join(_FIELDS[name])}, not {', '.join(unknown)}", key=key)
    values = {**_DEFAULTS.get(name, {}), **given}
    missing = sorted(set(_FIELDS[name]) - set(values))
    if missing:
        raise ConfigurationError(f"{key}: a {name} schedule needs {', '.join(missing)}", key=key)
    out: dict[str, Any] = {"name": name}
    try:
        for field_name, kind in _FIELDS[name].items():
            value = values[field_name]
            if kind is int:
                out[field_name] = _integer(value)
            elif kind is float:
                out[field_name] = float(value)
            elif field_name == "schedules":
                out[field_name] = [canonical(child, f"{key}.schedules[{i}]") for i, child in enumerate(value)]
            else:
                out[field_name] = sorted(_integer(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{key}: {exc}", key=key) from exc
    _check_bounded(out, key)
    return out


def _integer(value: Any) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _check_bounded(declaration: Mapping[str, Any], key: str) -> None:
    name = declaration["name"]
    if name in ("step", "multistep") and not 0 < declaration["gamma"] <= 1:
        raise ConfigurationError(f"{key}: gamma must be in (0, 1] (the rate may not grow past the base rate), got {declaration['gamma']}", key=key)
    if name == "step" and declaration["step_size"] < 1:
        raise ConfigurationError(f"{key}: step_size must be >= 1", key=key)
    if name == "cosine" and (declaration["T_max"] < 1 or not 0 <= declaration["eta_min"]):
        raise ConfigurationError(f"{key}: a cosine schedule needs T_max >= 1 and eta_min >= 0", key=key)
    if name == "linear" and not (0 < declaration["start_factor"] <= 1 and 0 <= declaration["end_factor"] <= 1 and declaration["total_iters"] >= 0):
        raise ConfigurationError(f"{key}: a linear schedule needs factors in (0, 1] and total_iters >= 0 (the rate may not grow past the base rate)", key=key)
    if name == "sequential" and (not declaration["schedules"] or len(declaration["milestones"]) != len(declaration["schedules"]) - 1):
        raise ConfigurationError(f"{key}: a sequential schedule needs its schedules and one milestone fewer", key=key)


def _cosines(declaration: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The cosine schedules of a declaration, those inside a sequential one included."""
    if declaration["name"] == "sequential":
        return [cosine for child in declaration["schedules"] for cosine in _cosines(child)]
    return [declaration] if declaration["name"] == "cosine" else []


@dataclass(frozen=True)
class Schedule:
    """A declared schedule (canonical dict) from a base learning rate; :meth:`rate` is step t's."""

    declaration: Mapping[str, Any]
    base_rate: float
    _rates: list[float] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base_rate) and self.base_rate > 0):
            raise ConfigurationError(f"the base learning rate must be > 0, got {self.base_rate}", key="train.learning_rate")
        if any(cosine["eta_min"] > self.base_rate for cosine in _cosines(self.declaration)):
            raise ConfigurationError("optimizer.schedule: eta_min may not exceed the base learning rate", key="optimizer.schedule")

    def rate(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        self.rates(step + 1)
        return self._rates[step]

    def rates(self, count: int) -> list[float]:
        """The learning rates of steps 0..count-1, by torch's own scheduler."""
        if len(self._rates) < count:
            parameter = torch.nn.Parameter(torch.zeros(1))
            optimizer = torch.optim.SGD([parameter], lr=self.base_rate)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns of a scheduler stepped without gradients
                scheduler = build_scheduler(self.declaration, optimizer)
                rates = [float(optimizer.param_groups[0]["lr"])]
                while len(rates) < count:
                    optimizer.step()
                    scheduler.step()
                    rates.append(float(optimizer.param_groups[0]["lr"]))
            self._rates[:] = rates
        return self._rates[:count]

    def describe(self) -> str:
        """``StepLR(step_size=3, gamma=0.5) from lr 0.1``."""
        return f"{describe(self.declaration)} from lr {self.base_rate:g}"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dict(self.declaration)))


def describe(declaration: Mapping[str, Any]) -> str:
    name = declaration["name"]
    arguments = []
    for key, value in declaration.items():
        if key == "name":
            continue
        if key == "schedules":
            value = "[" + ", ".join(describe(child) for child in value) + "]"
        arguments.append(f"{key}={value}")
    return f"{TORCH_NAMES[name]}({', '.join(arguments)})"


def build_scheduler(declaration: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> Any:
    """torch's scheduler of a canonical declaration on ``optimizer``."""
    name = declaration["name"]
    if name == "step":
        return lr_scheduler.StepLR(optimizer, declaration["step_size"], declaration["gamma"])
    if name == "multistep":
        return lr_scheduler.MultiStepLR(optimizer, declaration["milestones"], declaration["gamma"])
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, declaration["T_max"], declaration["eta_min"])
    if name == "linear":
        return lr_scheduler.LinearLR(optimizer, declaration["start_factor"], declaration["end_factor"], declaration["total_iters"])
    children = [build_scheduler(child, optimizer) for child in declaration["schedules"]]
    return lr_scheduler.SequentialLR(optimizer, children, declaration["milestones"])


def scheduler_at(schedule: Schedule | None, optimizer: torch.optim.Optimizer, step: int) -> Any:
    """torch's scheduler of ``schedule`` on ``optimizer`` (whose rate is the base rate), stepped
    ``step`` times: the optimizer then trains step ``step`` at ``schedule.rate(step)``. None
    without a schedule."""
    if schedule is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepped without an optimizer step: a resumed run fast-forwards
        scheduler = build_scheduler(schedule.declaration, optimizer)
        for _ in range(step):
            scheduler.step()
    return scheduler


def declared_schedule(scheduler: Any) -> dict[str, Any]:
    """The declaration of a loop's own scheduler object, which must be fresh (not stepped yet).
    ConfigurationError for a scheduler pot-zk cannot declare."""
    declaration = _declaration_of(scheduler)  # its type first (review27: a ChainedScheduler was told it had been stepped "?" times)
    if getattr(scheduler, "last_epoch", None) != 0:
        raise ConfigurationError(
            f"the scheduler has been stepped {getattr(scheduler, 'last_epoch', '?')} times already: hand track() a fresh one", key="scheduler"
        )
    optimizer = getattr(scheduler, "optimizer", None)
    if optimizer is not None and any(isinstance(group.get("lr"), torch.Tensor) for group in optimizer.param_groups):
        raise ConfigurationError(  # review27: its state (tensors) could not be checkpointed: a traceback at step 0
            "the scheduler's optimizer has a tensor learning rate (lr=torch.tensor(...)): give the optimizer lr as a float", key="scheduler"
        )
    return canonical(declaration, "scheduler")


def _declaration_of(scheduler: Any) -> dict[str, Any]:
    if type(scheduler) is lr_scheduler.StepLR:
        return {"name": "step", "step_size": scheduler.step_size, "gamma": scheduler.gamma}
    if type(scheduler) is lr_scheduler.MultiStepLR:
        return {"name": "multistep", "milestones": sorted(scheduler.milestones.elements()), "gamma": scheduler.gamma}
    if type(scheduler) is lr_scheduler.CosineAnnealingLR:
        return {"name": "cosine", "T_max": scheduler.T_max, "eta_min": scheduler.eta_min}
    if type(scheduler) is lr_scheduler.LinearLR:
        return {"name": "linear", "start_factor": scheduler.start_factor, "end_factor": scheduler.end_factor, "total_iters": scheduler.total_iters}
    if type(scheduler) is lr_scheduler.SequentialLR:
        return {"name": "sequential", "schedules": [_declaration_of(child) for child in scheduler._schedulers], "milestones": list(scheduler._milestones)}
    raise ConfigurationError(
        f"a {type(scheduler).__name__} cannot be declared as a statement's schedule: StepLR, MultiStepLR, CosineAnnealingLR, "
        "LinearLR and their SequentialLR chain can",
        key="scheduler",
    )
