"""The failure handlers, small callables registered by name in :data:`HANDLERS` (``handler.name``
in config): ``fail_fast``, ``continue``, ``retry`` (:class:`~pot_zk.proving.parking.ParkForLater`)
and ``fallback``.

A handler receives the :class:`~pot_zk.proving.pipeline.ProofFailure` of the primary strategy (after
its retry schedule) and the pipeline, and returns a :class:`~pot_zk.proving.pipeline.ProofResult`
or raises to halt the caller. A handler class is made from the ``handler`` settings by its
``from_settings(settings, registry)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pot_zk.core.registry import Registry
from pot_zk.proving.pipeline import FailureHandler, ProofFailure, ProofResult, ProvingPipeline, failed, proved
from pot_zk.proving.strategies import ProverStrategy, StrategyRegistry


@dataclass(frozen=True)
class HandlerSettings:
    """The ``handler`` config group, typed."""

    park_dir: Path
    """Where ``retry`` parks failed jobs."""
    fallback_chain: tuple[str, ...] = ()
    """The strategies ``fallback`` tries, in order."""


HANDLERS: Registry[type] = Registry(
    "failure handler",
    "handler.name",
    {
        "fail_fast": "pot_zk.proving.handlers:FailFast",
        "continue": "pot_zk.proving.handlers:ContinueOnFailure",
        "retry": "pot_zk.proving.parking:ParkForLater",
        "fallback": "pot_zk.proving.handlers:FallbackChain",
    },
)


def create_handler(name: str, settings: HandlerSettings, registry: StrategyRegistry) -> FailureHandler:
    """The handler ``name`` (ConfigurationError naming the valid ones if there is none)."""
    return HANDLERS.get(name).from_settings(settings, registry)


class FailFast:
    """Raise the final error: the caller (the training loop) halts."""

    name = "fail_fast"

    @classmethod
    def from_settings(cls, settings: HandlerSettings, registry: StrategyRegistry) -> "FailFast":
        return cls()

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        raise failure.error


class ContinueOnFailure:
    """Record the failure and return a ``failed`` result: training goes on."""

    name = "continue"

    @classmethod
    def from_settings(cls, settings: HandlerSettings, registry: StrategyRegistry) -> "ContinueOnFailure":
        return cls()

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        return failed(failure)


@dataclass(frozen=True)
class FallbackChain:
    """Try each strategy of the chain in order, each through the retry schedule. The first
    that succeeds produces the result, labelled with its own strategy and proof type. When
    every one fails, the result is ``failed`` and its error lists every strategy's error."""

    strategies: tuple[ProverStrategy, ...]
    name: str = "fallback"

    @classmethod
    def from_settings(cls, settings: HandlerSettings, registry: StrategyRegistry) -> "FallbackChain":
        return cls(tuple(registry.create(name) for name in settings.fallback_chain))

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        attempts = failure.attempts
        errors = [{"strategy": failure.strategy.name, **failure.error.to_record()}]
        previous = failure.strategy.name
        for strategy in self.strategies:
            pipeline.audit.event("fallback", step=failure.job.step, from_strategy=previous, to_strategy=strategy.name,
                                 reason=errors[-1]["error_class"])
            outcome = pipeline.run_strategy(strategy, failure.job)
            attempts += outcome.attempts
            if outcome.error is None:
                return proved(failure.job, outcome, attempts)
            errors.append({"strategy": strategy.name, **outcome.error.to_record()})
            previous = strategy.name
        last = errors[-1]
        return failed(failure, error={**last, "chain": errors}, attempts=attempts)
