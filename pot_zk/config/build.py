"""The one boundary where a DictConfig becomes typed objects (frozen dataclasses, callables)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf

from pot_zk.core.audit import AuditLog
from pot_zk.config import schema
from pot_zk.exceptions import ConfigurationError
from pot_zk.proving.handlers import create_handler
from pot_zk.proving.pipeline import FailureHandler, ProvingPipeline
from pot_zk.proving.retry import RetrySchedule, Sleep
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import ProgramStrategy, ProverStrategy, StrategyRegistry

CONFIG_MODULE = "pot_zk.conf"


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose pot-zk's config programmatically, as the CLI apps would with these overrides.
    Works inside a running Hydra app too: its global state is set aside and restored. An
    unknown option of a group (``mode=explode``, ``handler=explode``) is a ConfigurationError
    naming the valid options."""
    schema.register_schema()
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except MissingConfigException as error:
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        if error.options is None or not group:
            raise
        raise ConfigurationError(
            f"unknown {group} {option!r}; valid: {', '.join(error.options)}", key=group, options=list(error.options)
        ) from error
    finally:
        if running is not None:
            GlobalHydra.instance().initialize(running)


@dataclass(frozen=True)
class Runtime:
    mode: str
    proving_enabled: bool
    strategy: ProverStrategy
    schedule: RetrySchedule
    handler: FailureHandler
    registry: StrategyRegistry
    run_dir: Path
    audit_file: Path
    console_records: bool

    def open_pipeline(self, *, audit: AuditLog | None = None, stats: ProvingStats | None = None, sleep: Sleep = time.sleep) -> ProvingPipeline:
        """A pipeline writing to this run's audit trail (or the given one)."""
        audit = audit or AuditLog(self.audit_file, console_records=self.console_records, mode=self.mode)
        return ProvingPipeline(self.strategy, self.schedule, self.handler, audit, stats or ProvingStats(), sleep=sleep)


def retry_schedule(retry: Any) -> RetrySchedule:
    attempts = retry.max_attempts if retry.max_attempts is not None else retry.max_retries + 1
    return RetrySchedule(
        max_attempts=int(attempts),
        initial_delay_s=float(retry.initial_delay_s),
        multiplier=float(retry.multiplier),
        max_delay_s=float(retry.max_delay_s),
        jitter_s=float(retry.jitter_s),
    )


def program_strategy(prover: Any) -> ProgramStrategy:
    return ProgramStrategy(
        name=prover.proof_type,
        binary=prover.binary,
        search_paths=tuple(prover.search_paths),
        timeout_s=float(prover.timeout_s),
        args=tuple(prover.args),
    )


def build(cfg: DictConfig, registry: StrategyRegistry | None = None) -> Runtime:
    """Turn a composed config into a Runtime. Strategies named in the fallback chain are
    looked up in ``registry`` (default: the built-in names), plus the configured prover
    under its proof type."""
    strategy = program_strategy(cfg.prover)
    registry = (registry or StrategyRegistry()).copy()
    registry.register(strategy.name, lambda: strategy)
    handler = create_handler(
        cfg.handler.name.name,
        park_dir=cfg.handler.park_dir,
        fallback_chain=list(cfg.handler.fallback_chain),
        registry=registry,
    )
    run_dir = Path(cfg.run_dir)
    return Runtime(
        mode=cfg.proving.mode,
        proving_enabled=bool(cfg.proving.enabled),
        strategy=strategy,
        schedule=retry_schedule(cfg.retry),
        handler=handler,
        registry=registry,
        run_dir=run_dir,
        audit_file=run_dir / cfg.audit.file_name,
        console_records=bool(cfg.console.records),
    )


def resolved_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (for the audit trail's run.start)."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return {str(k): v for k, v in container.items()}
