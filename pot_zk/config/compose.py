"""Composing pot-zk's configuration and its schema errors, without torch.

:func:`compose_config` composes the config as the CLI apps do (the ``run_dir`` override is made
here and nowhere else); the overrides Hydra cannot apply are one ConfigurationError naming each,
with the schema errors (:func:`~pot_zk.config.validate.config_errors`) of the rest. This module,
``validate`` and what they import stay free of torch, the kinds and the backends'
implementations (tests/test_cli_errors.py): ``pot-zk train`` and ``show-config`` compose and
check the schema before they import :mod:`pot_zk.config.build`, so a mistyped key or value is
refused in a fraction of a second; ``build`` turns a composed config into a typed Runtime.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from pot_zk.config import schema
from pot_zk.config.validate import combined, config_errors, config_keys, override_error
from pot_zk.exceptions import ConfigurationError

CONFIG_MODULE = "pot_zk.conf"


def path_override(key: str, path: str | Path) -> str:
    """The Hydra override that sets ``key`` to a path, single-quoted: a quote is escaped, and
    so are the backslashes before a quote or at the end (Hydra's quoting rules)."""
    quoted = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), str(path))
    return f"{key}='{quoted}'"


def run_dir_override(run_dir: str | Path) -> str:
    """The Hydra override that sets ``run_dir`` to a path (:func:`path_override`)."""
    return path_override("run_dir", run_dir)


ANY_CASE_GROUPS = ("mode", "handler")
"""Config groups whose option may be given in any case, as the seed spells its modes and
failure actions (``handler=FAIL_FAST``, ``mode=Production``); their option files are lower case."""


def canonical_override(override: str) -> str:
    """``handler=FAIL_FAST`` -> ``handler=fail_fast`` for the groups of :data:`ANY_CASE_GROUPS`;
    any other override unchanged."""
    key, equals, value = override.partition("=")
    return f"{key}={value.lower()}" if equals and key.lstrip("+~") in ANY_CASE_GROUPS else override


def compose_config(overrides: Sequence[str] = (), config_name: str = "config", *, run_dir: str | Path | None = None) -> DictConfig:
    """Compose pot-zk's config programmatically, as the CLI apps would with these overrides
    (then ``run_dir``, if given). Works inside a running Hydra app too: its global state is set
    aside and restored. ``mode`` and ``handler`` take their option in any case
    (:func:`canonical_override`). Overrides Hydra cannot apply are one ConfigurationError naming
    each (an unknown option of a group, ``mode=explode``, with the valid options; an unknown key
    with the nearest known one; a value of the wrong type), with the schema errors of the rest
    (:func:`pot_zk.config.validate.config_errors`)."""
    overrides = [*map(canonical_override, overrides), *([run_dir_override(run_dir)] if run_dir is not None else [])]
    try:
        return _compose(config_name, overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise combined(_override_errors(config_name, overrides, error)) from error


def _compose(config_name: str, overrides: Sequence[str]) -> DictConfig:
    schema.register_schema()
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    finally:
        if running is not None:
            GlobalHydra.instance().initialize(running)


def _override_errors(config_name: str, overrides: Sequence[str], error: BaseException) -> list[ConfigurationError]:
    """Each override that cannot be applied on top of the ones before it that can, then the
    schema errors of the config those compose."""
    applied: list[str] = []
    refused: list[tuple[str, BaseException]] = []
    for override in overrides:
        try:
            _compose(config_name, [*applied, override])
        except (HydraException, OmegaConfBaseException) as cause:
            refused.append((override, cause))
            continue
        applied.append(override)
    if not refused:
        return [override_error(" ".join(overrides), error)]
    cfg = _compose(config_name, applied)
    known = config_keys(cfg)
    errors = [
        _missing_option(cause, override) if isinstance(cause, MissingConfigException) else override_error(override, cause, known)
        for override, cause in refused
    ]
    return errors + config_errors(cfg)


def _missing_option(error: MissingConfigException, override: str) -> ConfigurationError:
    group, _, option = str(error.missing_cfg_file).rpartition("/")
    if error.options is None or not group:
        return override_error(override, error)
    return ConfigurationError(f"unknown {group} {option!r}; valid: {', '.join(error.options)}", key=group, options=list(error.options))
