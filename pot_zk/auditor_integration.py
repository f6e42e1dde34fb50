"""The seed-compatible API: ``create_zk_integration(...)`` -> object with
``generate_training_proof(...)`` and ``get_stats()``, built on the config registry and pipeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from pot_zk.core.audit import AuditLog, run_start_fields
from pot_zk.config import Runtime, build, compose_config, resolved_container
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline
from pot_zk.proving.retry import Sleep
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import ProofJob, StrategyRegistry


class ZkIntegration:
    """Proves training steps of one run; writes the audit trail and statistics into its run dir."""

    def __init__(self, runtime: Runtime, config: dict[str, Any], *, sleep: Sleep = time.sleep) -> None:
        self.runtime = runtime
        self.stats = ProvingStats()
        self.audit = AuditLog(runtime.audit_file, console_records=runtime.console_records, mode=runtime.mode)
        self.audit.event("run.start", **run_start_fields(config))
        self.pipeline: ProvingPipeline = runtime.open_pipeline(audit=self.audit, stats=self.stats, sleep=sleep)

    def generate_training_proof(
        self,
        step: int,
        witness_path: str,
        *,
        circuit: dict[str, Any] | None = None,
        kind: str = "sgd",
        options: dict[str, Any] | None = None,
    ) -> ProofResult | None:
        """Prove one step; None when proving is disabled (nothing runs, nothing is counted)."""
        if not self.runtime.proving_enabled:
            return None
        run_dir = self.runtime.run_dir
        job = ProofJob(
            step=step,
            kind=kind,
            circuit=dict(circuit or {}),
            witness_path=str(witness_path),
            cache_dir=str(run_dir / "cache"),
            output_dir=str(run_dir / "proofs" / f"step-{step:08d}"),
            options=dict(options or {}),
        )
        return self.pipeline.prove(job)

    def get_stats(self) -> dict[str, Any]:
        return self.stats.get_stats()

    def close(self) -> None:
        """End the run: write stats.json / metrics.prom and the closing ``run.end`` record."""
        self.stats.write(self.runtime.run_dir)
        self.audit.event("run.end", stats=self.get_stats())
        self.audit.close()

    def __enter__(self) -> "ZkIntegration":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def create_zk_integration(
    enabled: bool = True,
    failure_action: str = "continue",
    max_retries: int = 3,
    *,
    run_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    registry: StrategyRegistry | None = None,
    sleep: Sleep = time.sleep,
) -> ZkIntegration:
    """``failure_action`` is a handler name (fail_fast, continue, retry, fallback);
    ``max_retries`` counts retries after the first attempt. ``overrides`` are Hydra overrides
    applied last (e.g. ``["prover.timeout_s=60"]``)."""
    composed = ["mode=development" if enabled else "mode=disabled", f"handler={failure_action}", f"retry.max_retries={max_retries}"]
    if run_dir is not None:
        composed.append(f"run_dir='{Path(run_dir).resolve()}'")
    cfg = compose_config([*composed, *overrides])
    return ZkIntegration(build(cfg, registry), resolved_container(cfg), sleep=sleep)
