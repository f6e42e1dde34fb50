"""Prover strategies and the registry that names them.

A prover strategy is a callable ``(job: ProverRequest) -> ProverResponse`` with a ``name``; it
raises a :class:`~pot_zk.exceptions.PotZkError` subclass on failure. Config names strategies
("zk-halo2", "freivalds", "reexec"); :class:`StrategyRegistry` turns names into callables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from pot_zk.backends.registry import PROOF_TYPES
from pot_zk.exceptions import ConfigurationError
from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.core.runner import run_prover


@runtime_checkable
class ProverStrategy(Protocol):
    name: str

    def __call__(self, job: ProverRequest) -> ProverResponse: ...


@dataclass(frozen=True)
class ProgramStrategy:
    """Prove by running a prover program (protocol v1) through :mod:`pot_zk.core.runner`."""

    name: str
    """The proof type the program produces, e.g. ``"zk-halo2"``."""
    binary: str
    search_paths: tuple[str, ...] = ()
    timeout_s: float = 1800.0
    args: tuple[str, ...] = ()

    def __call__(self, job: ProverRequest) -> ProverResponse:
        return run_prover(
            self.binary,
            job,
            search_paths=self.search_paths,
            timeout_s=self.timeout_s,
            args=self.args,
        )

    def to_spec(self) -> dict[str, Any]:
        """A JSON description from which :meth:`from_spec` rebuilds the same strategy."""
        return {"program": {**asdict(self), "search_paths": list(self.search_paths), "args": list(self.args)}}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "ProgramStrategy":
        program = spec["program"]
        return cls(
            name=str(program["name"]),
            binary=str(program["binary"]),
            search_paths=tuple(program.get("search_paths", ())),
            timeout_s=float(program["timeout_s"]),
            args=tuple(program.get("args", ())),
        )


class LazyStrategy:
    """The in-process strategy of proof type ``name`` (:data:`~pot_zk.backends.registry.PROOF_TYPES`),
    imported on first use, so config can name strategies whose modules are heavy or optional."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._strategy: ProverStrategy | None = None

    def __call__(self, job: ProverRequest) -> ProverResponse:
        if self._strategy is None:
            strategy = PROOF_TYPES.get(self.name)
            if not callable(strategy):
                raise ConfigurationError(
                    f"proof type {self.name!r} is not proven in-process: its backend's prover program proves it "
                    f"(configure prover=<that backend>)",
                    key="handler.fallback_chain",
                )
            self._strategy = strategy
        return self._strategy(job)

    def unserved(self, spec: Any) -> str | None:
        """Why this strategy cannot stand in for a proof of ``spec`` (None: it can)."""
        target = PROOF_TYPES.get(self.name)
        if not callable(target):
            return "it is not proven in-process: its backend's prover program proves it (configure prover=<that backend>)"
        return getattr(target, "unserved", lambda _spec: None)(spec)

    def __repr__(self) -> str:
        return f"LazyStrategy({self.name!r})"


StrategyFactory = Callable[[], ProverStrategy]


class StrategyRegistry:
    """Strategy name -> factory, for the fallback chain and parked jobs. Without ``factories``
    the names are the proof types of :data:`~pot_zk.backends.registry.PROOF_TYPES`, made lazily
    (the certificates ``freivalds`` and ``reexec`` prove in-process); :func:`~pot_zk.config.build.build`
    adds the configured prover program under its proof type."""

    def __init__(self, factories: Mapping[str, StrategyFactory] | None = None) -> None:
        self._factories: dict[str, StrategyFactory] = dict(factories or {})
        self._builtins = factories is None

    def register(self, name: str, factory: StrategyFactory) -> None:
        self._factories[name] = factory

    def copy(self) -> "StrategyRegistry":
        copied = StrategyRegistry(self._factories)
        copied._builtins = self._builtins
        return copied

    def names(self) -> list[str]:
        return sorted(set(self._factories) | (set(PROOF_TYPES.names()) if self._builtins else set()))

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def create(self, name: str) -> ProverStrategy:
        if name in self._factories:
            return self._factories[name]()
        if self._builtins and name in PROOF_TYPES:
            return LazyStrategy(name)
        raise ConfigurationError(f"unknown prover strategy {name!r}; known: {', '.join(self.names())}", key=name)


def strategy_spec(strategy: ProverStrategy) -> dict[str, Any]:
    """How a parked job remembers which strategy to retry it with."""
    if isinstance(strategy, ProgramStrategy):
        return strategy.to_spec()
    return {"name": strategy.name}


def strategy_from_spec(spec: Mapping[str, Any], registry: StrategyRegistry) -> ProverStrategy:
    if "program" in spec:
        return ProgramStrategy.from_spec(spec)
    return registry.create(str(spec["name"]))
