"""The four failure handlers, small callables keyed by name (``handler.name`` in config).

A handler receives the :class:`~pot_zk.proving.pipeline.ProofFailure` of the primary strategy (after
its retry schedule) and the pipeline, and returns a :class:`~pot_zk.proving.pipeline.ProofResult`
or raises to halt the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from pot_zk.proving.parking import ParkForLater
from pot_zk.proving.pipeline import FailureHandler, ProofFailure, ProofResult, ProvingPipeline, failed, proved
from pot_zk.proving.strategies import ProverStrategy, StrategyRegistry


class FailFast:
    """Raise the final error: the caller (the training loop) halts."""

    name = "fail_fast"

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        raise failure.error


class ContinueOnFailure:
    """Record the failure and return a ``failed`` result: training goes on."""

    name = "continue"

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        return failed(failure)


@dataclass(frozen=True)
class FallbackChain:
    """Try each strategy of the chain in order, each through the retry schedule. The first
    that succeeds produces the result, labelled with its own strategy and proof type. When
    every one fails, the result is ``failed`` and its error lists every strategy's error."""

    strategies: tuple[ProverStrategy, ...]
    name: str = "fallback"

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


HandlerFactory = Callable[[Path, Sequence[str], StrategyRegistry], FailureHandler]

HANDLERS: dict[str, HandlerFactory] = {
    "fail_fast": lambda park_dir, chain, registry: FailFast(),
    "continue": lambda park_dir, chain, registry: ContinueOnFailure(),
    "retry": lambda park_dir, chain, registry: ParkForLater(park_dir),
    "fallback": lambda park_dir, chain, registry: FallbackChain(tuple(registry.create(n) for n in chain)),
}


def create_handler(name: str, *, park_dir: str | Path, fallback_chain: Sequence[str], registry: StrategyRegistry) -> FailureHandler:
    return HANDLERS[name](Path(park_dir), fallback_chain, registry)
