"""Scalars where ML people look: the ``logger`` config group (docs/configuration.md).

``logger=none`` (the default) writes nothing. ``logger=tensorboard`` writes TensorBoard event
files into ``logger.log_dir`` through ``torch.utils.tensorboard``, which needs the
``tensorboard`` package (the extra ``pot-zk[tensorboard]``); :func:`check_logger` refuses the
configuration before anything runs when it is missing. A run's scalars are what its records
say (:class:`~pot_zk.runs.session.TrainingSession` adds them as it writes the records); none
of them is checked by anything: ``pot-zk verify`` checks the bundle.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

from pot_zk.core.registry import Registry
from pot_zk.exceptions import ConfigurationError


class ScalarLogger(Protocol):
    requires: tuple[tuple[str, str], ...]
    """(module, what ``pip install`` installs it) for every package the logger needs."""

    def add(self, tag: str, value: float, step: int) -> None: ...

    def close(self) -> None: ...


class NoScalars:
    """``logger=none``: scalars go nowhere."""

    requires: tuple[tuple[str, str], ...] = ()

    def __init__(self, log_dir: Path) -> None:
        """Writes nowhere: ``log_dir`` is not made."""

    def add(self, tag: str, value: float, step: int) -> None:
        """Nothing to write."""

    def close(self) -> None:
        """Nothing to close."""


class TensorBoardScalars:
    """``logger=tensorboard``: one event file per process in ``log_dir``."""

    requires = (("tensorboard", "pot-zk[tensorboard]"),)

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir))

    def add(self, tag: str, value: float, step: int) -> None:
        self._writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        self._writer.close()


SCALAR_LOGGERS: Registry[type[ScalarLogger]] = Registry(
    "logger",
    "logger.name",
    {"none": "pot_zk.core.scalars:NoScalars", "tensorboard": "pot_zk.core.scalars:TensorBoardScalars"},
)
"""``logger.name`` -> a class taking the log directory."""


def check_logger(name: str) -> str:
    """``name`` when its logger is registered and what it needs is installed; otherwise a
    one-line ConfigurationError naming the ``pip install`` that fixes it."""
    for module, extra in SCALAR_LOGGERS.get(name).requires:
        if importlib.util.find_spec(module) is None:
            raise ConfigurationError(
                f"logger={name} needs the {module} package, which is not installed: pip install '{extra}'",
                key="logger.name",
                install=extra,
            )
    return name


def open_logger(name: str, log_dir: Path) -> ScalarLogger:
    return SCALAR_LOGGERS.get(name)(log_dir)
