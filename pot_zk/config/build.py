"""The one boundary where a DictConfig becomes typed objects (frozen dataclasses, callables).

:func:`compose_config` (:mod:`pot_zk.config.compose`, re-exported here) composes pot-zk's
config; :func:`build` turns it into a :class:`Runtime`: the proving side (mode, prover
strategy, retry schedule, failure handler), the :class:`~pot_zk.config.plan.TrainingPlan`
and the resolved configuration as plain data. Nothing past :func:`build` sees a DictConfig.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from pot_zk.backends.base import KeySettings
from pot_zk.backends.registry import BACKENDS
from pot_zk.config.compose import CONFIG_MODULE, canonical_override, compose_config, path_override, run_dir_override  # noqa: F401 (re-exported)
from pot_zk.config.plan import DataSettings, LoggerSettings, TrainingPlan, WitnessSettings
from pot_zk.config.validate import ErrorCollector, config_errors
from pot_zk.core.audit import AuditLog
from pot_zk.core.scalars import check_logger
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import ModelSettings
from pot_zk.kinds.optimizer import OptimizerSettings
from pot_zk.kinds.registry import kind_for
from pot_zk.kinds.schedule import Schedule, canonical
from pot_zk.proving.policy import create_policy
from pot_zk.data.datasets import DATASETS, PARTS
from pot_zk.proving.executors import EXECUTORS, resolve_workers
from pot_zk.proving.handlers import HandlerSettings, create_handler
from pot_zk.proving.pipeline import FailureHandler, ProvingPipeline
from pot_zk.proving.retry import RetrySchedule, Sleep
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import ProgramStrategy, ProverStrategy, StrategyRegistry


def load_run_config(path: Path, overrides: Sequence[str] = (), *, run_dir: Path | None = None) -> DictConfig:
    """A run's recorded configuration (its ``config.yaml``) as a typed config, with ``key=value``
    ``overrides`` applied (a selection of a config group such as ``retry=none`` replaces that
    group's node; ``data``, ``mode``, ``model`` and ``prover`` stay the run's) and ``run_dir``
    set: what resume, respond, prove-pending and replay continue from. ConfigurationError naming the file (and line) when it does not parse, and
    naming the key when it or an override does not fit the schema."""
    import yaml

    from pot_zk.config.schema import PotZkConfig

    path = Path(path)
    selections = [item for item in overrides if item.split("=", 1)[0].lstrip("+~") in CONFIG_GROUPS]
    overrides = [item for item in overrides if item not in selections]
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigurationError(f"{path}{where}: not YAML ({problem})", key="run", path=str(path)) from error
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(PotZkConfig), loaded)
        for item in selections:  # a group's option first, then the single keys over it (as Hydra composes them)
            _select(cfg, item, path)
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except ConfigurationError:
        raise
    except Exception as error:  # omegaconf raises its own validation errors for unknown keys and bad types
        raise ConfigurationError(f"{path} (with overrides {list(overrides)}) does not fit pot-zk's configuration: {error}", key="overrides", path=str(path)) from error
    if run_dir is not None:
        cfg.run_dir = str(Path(run_dir).absolute())
    return cfg


CONFIG_GROUPS = ("data", "executor", "handler", "logger", "mode", "model", "policy", "prover", "retry")
"""pot-zk's config groups (``conf/<group>/``): ``retry=none`` on a run's recorded configuration
replaces its ``retry`` node by the group's ``none`` option."""
WHOLE_RUN_GROUPS = ("data", "mode", "model", "prover")
"""Groups whose options set keys across the configuration (``@package _global_``) or define the
run's statement: a run keeps its own; their keys can still be overridden one by one."""


def _select(cfg: DictConfig, item: str, path: Path) -> None:
    """Apply the group selection ``item`` (``retry=none``) to a run's recorded ``cfg``."""
    group = item.split("=", 1)[0].lstrip("+~")
    if group in WHOLE_RUN_GROUPS:
        raise ConfigurationError(
            f"{item}: a run keeps the {group} it was trained with ({path.name})" + ("" if group == "mode" else f"; override single keys instead (e.g. {group}.KEY=VALUE)"),
            key="overrides", path=str(path),
        )
    composed = compose_config([item])
    OmegaConf.update(cfg, group, composed[group], merge=False)


@dataclass(frozen=True)
class Runtime:
    """Everything a composed config describes, typed."""

    mode: str
    proving_enabled: bool
    strategy: ProverStrategy
    schedule: RetrySchedule
    handler: FailureHandler
    registry: StrategyRegistry
    run_dir: Path
    audit_file: Path
    console_records: bool
    plan: TrainingPlan
    config: dict[str, Any]
    """The resolved configuration as plain data (``run_dir`` absolute): what config.yaml and
    the ``run.start`` audit record hold."""

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
    """The configured backend's prover program, named by the backend's proof type."""
    return ProgramStrategy(
        name=BACKENDS.get(str(prover.backend)).proof_type,
        binary=prover.binary,
        search_paths=tuple(prover.search_paths),
        timeout_s=float(prover.timeout_s),
        args=tuple(prover.args),
    )


def build(cfg: DictConfig, registry: StrategyRegistry | None = None) -> Runtime:
    """Turn a composed config into a Runtime. Every error is found before anything is built:
    the schema's (:func:`~pot_zk.config.validate.config_errors`), then those of each part (the
    prover's program, the failure handler, the retry schedule, the backend's statement), raised
    together as one ConfigurationError. Strategies named in the fallback chain are looked up in
    ``registry`` (default: the built-in names), plus the configured prover under its proof type."""
    errors = ErrorCollector(config_errors(cfg))
    errors.raise_any()
    registry = (registry or StrategyRegistry()).copy()
    strategy = errors.attempt(program_strategy, cfg.prover)
    settings = HandlerSettings(Path(cfg.handler.park_dir), tuple(str(name) for name in cfg.handler.fallback_chain))
    handler = None
    if strategy is not None:
        registry.register(strategy.name, lambda: strategy)
        handler = errors.attempt(create_handler, str(cfg.handler.name), settings, registry)
    schedule = errors.attempt(retry_schedule, cfg.retry)
    plan = errors.attempt(training_plan, cfg)
    if handler is not None and plan is not None:
        errors.attempt(_check_chain_serves, settings.fallback_chain if str(cfg.handler.name) == "fallback" else (), registry, plan.spec)
    errors.raise_any()
    assert strategy is not None and handler is not None and schedule is not None and plan is not None
    run_dir = Path(cfg.run_dir)
    config = _resolved_container(cfg)
    config["run_dir"] = str(run_dir.absolute())
    return Runtime(
        mode=cfg.proving.mode,
        proving_enabled=bool(cfg.proving.enabled),
        strategy=strategy,
        schedule=schedule,
        handler=handler,
        registry=registry,
        run_dir=run_dir,
        audit_file=run_dir / cfg.audit.file_name,
        console_records=bool(cfg.console.records),
        plan=plan,
        config=config,
    )


def _check_chain_serves(chain: Sequence[str], registry: StrategyRegistry, spec: Any) -> None:
    """ConfigurationError when a strategy of the fallback chain cannot stand in for a proof of
    the run's statement (a certificate that says why through ``unserved``)."""
    for name in chain:
        reason = getattr(registry.create(name), "unserved", lambda _spec: None)(spec)
        if reason:
            raise ConfigurationError(
                f"handler.fallback_chain: {name} cannot serve the {spec.backend} {spec.kind} statement: {reason}; "
                f"the backend's own certificates are prover.certificates",
                key="handler.fallback_chain",
                strategy=name,
            )


def optimizer_settings(optimizer: Any) -> OptimizerSettings:
    """The config group ``optimizer`` as :class:`OptimizerSettings` (ConfigurationError naming a bad setting)."""
    return OptimizerSettings(
        str(optimizer.name), float(optimizer.momentum), float(optimizer.weight_decay), tuple(float(b) for b in optimizer.betas), float(optimizer.eps)
    )


def training_plan(cfg: DictConfig) -> TrainingPlan:
    optimizer = optimizer_settings(cfg.optimizer)
    kind = kind_for(str(cfg.model.kind), optimizer)
    model = ModelSettings(
        kind=kind.name,
        dims=tuple(cfg.model.dims),
        loss=str(cfg.model.loss),
        optimizer=optimizer,
        lora_layers=tuple(cfg.model.lora_layers),
        lora_rank=int(cfg.model.lora_rank),
        lora_alpha=float(cfg.model.lora_alpha),
        base_run=Path(cfg.model.base_run).expanduser().absolute() if cfg.model.base_run else None,
    )
    backend = BACKENDS.get(str(cfg.prover.backend))
    circuit = OmegaConf.to_container(cfg.circuit, resolve=True)
    assert isinstance(circuit, dict)
    rate = float(cfg.train.learning_rate)
    schedule = configured_schedule(cfg.optimizer.schedule, rate)
    if schedule is None:
        spec = backend.circuit_spec(kind, kind.architecture(model), int(cfg.train.batch_size), rate, circuit)
    else:
        spec = backend.scheduled_spec(kind, kind.architecture(model), int(cfg.train.batch_size), rate, circuit)
    policy = cfg.policy
    data = cfg.data
    return TrainingPlan(
        run_dir=Path(cfg.run_dir).absolute(),
        cache_dir=Path(cfg.cache_dir).expanduser().absolute(),
        model=model,
        spec=spec,
        backend=backend,
        circuit=circuit,
        keys=KeySettings(Path(cfg.srs.path) if cfg.srs.path else None, bool(cfg.srs.allow_dev_srs)),
        data=DataSettings(
            name=DATASETS.check(str(data.name)),
            num_samples=int(data.num_samples),
            seed=int(data.seed),
            part=PARTS.check(str(data.part)),
            holdout=float(data.holdout),
        ),
        epochs=int(cfg.train.epochs),
        max_steps=None if cfg.train.max_steps is None else int(cfg.train.max_steps),
        seed=int(cfg.train.seed),
        progress=bool(cfg.train.progress),
        policy=create_policy(str(policy.name), k=int(policy.k), fraction=float(policy.fraction), seed=int(policy.seed)),
        executor=EXECUTORS.check(str(cfg.executor.name)),
        workers=resolve_workers(cfg.executor.workers),
        scheduler_address=cfg.executor.scheduler_address,
        witness=WitnessSettings(cfg.witness.retain.name, int(cfg.witness.max_step_bytes)),
        logger=LoggerSettings(check_logger(str(cfg.logger.name)), Path(cfg.logger.log_dir).expanduser().absolute()),
        schedule=schedule,
        record_loss=bool(cfg.train.record_loss),
    )


def configured_schedule(schedule: Any, base_rate: float) -> Schedule | None:
    """The learning-rate schedule of config group ``optimizer.schedule`` (None: ``constant``)."""
    declared = {key: value for key, value in OmegaConf.to_container(schedule, resolve=True).items() if value is not None}
    return None if declared.get("name") == "constant" else Schedule(canonical(declared), base_rate)


def _resolved_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (for the audit trail's run.start)."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return {str(k): v for k, v in container.items()}
