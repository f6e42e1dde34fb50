"""Proving statistics: per attempt and per job, overall and per strategy.

Three rates, each 0.0 before anything was counted:

* ``success_rate`` = proofs delivered / proofs requested (the seed's): jobs that ended
  ``proved`` by any proof type (a labelled fallback certificate included) over every job handed
  to the pipeline (``proved``, ``failed``, ``parked``; a job that halted the run counts as
  ``failed``). A proof that succeeded on its third attempt counts once, as a success.
* ``zk_success_rate`` = zero-knowledge proofs delivered / proofs requested: only the proof types
  of the prover backends (``zk-halo2``, ``zk-groth16``) count. A run whose proofs all came from
  the ``freivalds`` or ``reexec`` fallback (which reveal the witness to the verifier) has a
  ``success_rate`` of 1.0 and a ``zk_success_rate`` of 0.0; ``proof_types`` counts the delivered
  proofs by type.
* ``attempt_success_rate`` = successful prover attempts / attempts, every retry and
  fallback attempt included (also per strategy, under ``by_strategy``).

A step that was not handed to a prover (proving disabled) is not counted at all.

In memory for ``get_stats()`` (exact latency percentiles), mirrored into a private
prometheus-client registry for the Prometheus text exposition format. The attempt-duration
histogram's buckets (:data:`LATENCY_BUCKETS_S`) run from 0.1 s to 1 h: a groth16 proof of a
small step takes a fraction of a second, an ezkl proof or a first key setup minutes.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram, generate_latest

from pot_zk.backends.registry import PROOF_TYPES

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf"))


def zero_knowledge_proof_types() -> frozenset[str]:
    """The proof types whose verifiers say their proofs are zero-knowledge
    (:data:`~pot_zk.backends.registry.PROOF_TYPES`, those installed: a backend whose extra is
    missing made no proof here); the certificates a fallback chain may deliver are not."""
    return frozenset(name for name, verifier in PROOF_TYPES.installed() if verifier.zero_knowledge)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class _Tally:
    def __init__(self) -> None:
        self.attempts = 0
        self.successes = 0
        self.failures: Counter[str] = Counter()
        self.latencies: list[float] = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "successes": self.successes,
            "failures": sum(self.failures.values()),
            "failures_by_class": dict(sorted(self.failures.items())),
            "attempt_success_rate": self.successes / self.attempts if self.attempts else 0.0,
            "latency_p50_s": percentile(self.latencies, 0.50),
            "latency_p95_s": percentile(self.latencies, 0.95),
        }


class ProvingStats:
    """Counts every attempt (with its latency and, on failure, its error class) and every
    job outcome (``proved`` / ``failed`` / ``parked``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _Tally()
        self._by_strategy: dict[str, _Tally] = {}
        self._outcomes: Counter[str] = Counter()
        self._proof_types: Counter[str] = Counter()
        self.registry = CollectorRegistry()
        self._attempts = PromCounter("pot_zk_proof_attempts", "Proof attempts", ["strategy", "outcome"], registry=self.registry)
        self._failures = PromCounter("pot_zk_proof_failures", "Failed proof attempts by error class", ["strategy", "error_class"], registry=self.registry)
        self._results = PromCounter("pot_zk_proof_results", "Proof jobs by final status", ["status"], registry=self.registry)
        self._latency = Histogram(
            "pot_zk_proof_attempt_seconds", "Duration of one proof attempt", ["strategy"], registry=self.registry, buckets=LATENCY_BUCKETS_S
        )

    def record_attempt(self, strategy: str, duration_s: float, error_class: str | None) -> None:
        with self._lock:
            tally = self._by_strategy.setdefault(strategy, _Tally())
            for target in (self._total, tally):
                target.attempts += 1
                target.latencies.append(duration_s)
                if error_class is None:
                    target.successes += 1
                else:
                    target.failures[error_class] += 1
        self._attempts.labels(strategy, "ok" if error_class is None else "failed").inc()
        if error_class is not None:
            self._failures.labels(strategy, error_class).inc()
        self._latency.labels(strategy).observe(duration_s)

    def record_result(self, status: str, proof_type: str | None = None) -> None:
        """Count one job's outcome; ``proof_type`` is the delivered proof's (``proved`` only)."""
        with self._lock:
            self._outcomes[status] += 1
            if status == "proved" and proof_type is not None:
                self._proof_types[proof_type] += 1
        self._results.labels(status).inc()

    def get_stats(self) -> dict[str, Any]:
        zero_knowledge_types = zero_knowledge_proof_types()
        with self._lock:
            stats = self._total.as_dict()
            requested = sum(self._outcomes.values())
            stats["requested"] = requested
            stats["delivered"] = self._outcomes["proved"]
            stats["success_rate"] = self._outcomes["proved"] / requested if requested else 0.0
            zero_knowledge = sum(n for name, n in self._proof_types.items() if name in zero_knowledge_types)
            stats["zk_delivered"] = zero_knowledge
            stats["zk_success_rate"] = zero_knowledge / requested if requested else 0.0
            stats["proof_types"] = dict(sorted(self._proof_types.items()))
            stats["results"] = dict(sorted(self._outcomes.items()))
            stats["by_strategy"] = {name: tally.as_dict() for name, tally in sorted(self._by_strategy.items())}
        return stats

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def write(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``stats.json`` and ``metrics.prom`` into ``directory`` (at run end)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, prom_path = directory / "stats.json", directory / "metrics.prom"
        from pot_zk.core.atomic import write_bytes_atomic

        write_bytes_atomic(json_path, (json.dumps(self.get_stats(), indent=2, sort_keys=True) + "\n").encode())
        write_bytes_atomic(prom_path, self.prometheus_text())
        return json_path, prom_path
