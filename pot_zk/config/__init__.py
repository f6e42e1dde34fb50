"""Hydra configuration: schema (``schema``), composition (``compose``) and the typed boundary
(``build``). The names below are imported on first use: importing ``pot_zk.config.schema`` or
``pot_zk.config.compose`` does not import ``build`` (and with it torch and every backend)."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_LAZY = {
    "DataSettings": "pot_zk.config.plan",
    "TrainingPlan": "pot_zk.config.plan",
    "PotZkConfig": "pot_zk.config.schema",
    "Runtime": "pot_zk.config.build",
    "build": "pot_zk.config.build",
    "retry_schedule": "pot_zk.config.build",
    "compose_config": "pot_zk.config.compose",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pot_zk.config' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


class _ConfigPackage(types.ModuleType):
    """``pot_zk.config.build`` stays the function :func:`~pot_zk.config.build.build` (as when this
    package imported it eagerly): the import system binds the submodule of that name on the
    package when it first loads it, whoever imports it; the function is bound instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "build" and isinstance(value, types.ModuleType):
            value = value.build
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _ConfigPackage
