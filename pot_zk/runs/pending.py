"""``pot-zk prove-pending RUN``: prove the jobs the ``retry`` handler parked in a run, into its bundle.

A parked job names the step; what is proven is rebuilt from the bundle: the run's statement,
the step's witness in the run's own ``witness/`` (checked against the step's recorded
commitments first, as ``respond`` checks it) and the run's own proof directory, so a run that
was moved or copied proves its own steps and a swapped witness is refused before proving. A
step whose last recorded outcome is already ``proved`` (say, by ``respond``) is not proven
again: its parked file is removed. Each outcome is recorded in the bundle before the parked
file is removed, so an interrupted ``prove-pending`` loses none.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pot_zk.backends.registry import backend_of, spec_from_dict
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.core.audit import AuditLog
from pot_zk.core.protocol import ProverRequest
from pot_zk.exceptions import ConfigurationError
from pot_zk.proving.parking import parked_jobs, prove_pending
from pot_zk.proving.pipeline import ProofResult
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.proven_run import record_outcome
from pot_zk.runs.respond import check_witness
from pot_zk.runs.witnesses import declared_retention


def prove_parked(
    bundle: RunBundle, runtime: Any, audit: AuditLog, stats: Any, *, cache_dir: Path | None = None, options: dict[str, Any] | None = None
) -> list[ProofResult]:
    """Prove ``bundle``'s parked jobs with ``runtime``'s retry schedule and strategies (the
    module docstring); the outcomes, in the order proven. ``cache_dir``, ``options``: where the
    keys are now, given on the command line (:func:`~pot_zk.runs.respond.named_key_location`),
    instead of where each job was parked with. The keys are checked by :func:`check_parked_keys`
    first."""
    manifest = bundle.manifest()
    spec = spec_from_dict(manifest["circuit"])
    by_step = {int(r["step"]): r for r in bundle.commitments()}
    keep = declared_retention(manifest).keeps_all
    last_status = {r.get("step"): r.get("status") for r in bundle.proofs()}  # read once: this command records only parked steps' outcomes

    def prepare(job: ProverRequest) -> ProverRequest | None:
        if last_status.get(job.step) == "proved":
            return None
        if job.step not in by_step:
            raise ConfigurationError(f"a job is parked for step {job.step}, which {bundle.root} did not commit", key="park_dir")
        check_witness(bundle, spec, by_step[job.step])
        return dataclasses.replace(
            job, kind=spec.kind, circuit=spec.to_dict(), witness_path=str(bundle.witness_path(job.step)), output_dir=str(bundle.proof_dir(job.step)),
            cache_dir=str(cache_dir) if cache_dir is not None else job.cache_dir, options=options if options is not None else job.options,
        )

    return prove_pending(
        bundle.park_dir, schedule=runtime.schedule, audit=audit, stats=stats, registry=runtime.registry,
        prepare=prepare, record=lambda result: record_outcome(bundle, result, keep_witness=keep), configured=runtime.strategy,
        check=ReceiptCheck(backend_of(spec), by_step.get, manifest),
    )


def check_parked_keys(bundle: RunBundle, *, cache_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
    """ConfigurationError unless the run's own keys are where each parked job still to prove
    will look for them (``cache_dir``, ``options``: as for :func:`prove_parked`): checked before
    :func:`prove_parked` and before the command writes anything into the run (review40: a new
    setup proved under another key; review42: the refusal came after a ``pending.start``)."""
    manifest = bundle.manifest()
    spec = spec_from_dict(manifest["circuit"])
    last_status = {r.get("step"): r.get("status") for r in bundle.proofs()}
    for parked_cache, parked_options in _key_locations(bundle, last_status):
        backend_of(spec).check_keys_at_hand(
            spec, cache_dir if cache_dir is not None else Path(parked_cache), options if options is not None else json.loads(parked_options), manifest
        )


def _key_locations(bundle: RunBundle, last_status: dict[Any, Any]) -> set[tuple[str, str]]:
    """(cache directory, prover options as JSON) of each parked job still to prove; a file that
    does not read as a parked job is left for ``prove_pending`` to report."""
    locations = set()
    for path in parked_jobs(bundle.park_dir):
        try:
            job = json.loads(path.read_text())["job"]
            if last_status.get(job["step"]) != "proved":
                locations.add((str(job["cache_dir"]), json.dumps(job.get("options") or {}, sort_keys=True)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return locations
