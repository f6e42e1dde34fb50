"""Shared by the non-ZK proof types: the revealed witness and its binding to the commitments.

A certificate directory holds ``certificate.json`` (proof_type, circuit spec, commitment) and
``witness.safetensors`` with the step's values *on the commitment grid* (the spec's hashed
inputs -- w_before, batch, w_after and, for LoRA, base -- as flat float64 vectors, plus any
type-specific tensors). Values are snapped and committed with the commitment scheme of the
spec's backend, so a certificate binds to the same commitments as the run.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pot_zk.core.atomic import atomic_path, write_json_atomic
from pot_zk.backends.base import Statement
from pot_zk.backends.certificates import WITNESS
from pot_zk.backends.registry import commitments_of
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.exceptions import ProofVerificationError, WitnessBuilderError
from pot_zk.core.protocol import ProverResponse
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.registry import load_training_step

CERTIFICATE = "certificate.json"


Named = dict[str, torch.Tensor]


def grid_step(step: BatchStep, spec: Statement) -> Named:
    """The step's values snapped to the commitment grid (what the commitments bind), by input name."""
    scheme = commitments_of(spec)
    return {x.name: scheme.tensor(x.name).snap(x.values, x.label) for x in spec.encode(step)}


def public_rate(spec: Statement, learning_rate: float | None) -> Named:
    """For a statement whose rate is public (a scheduled run's), the step's ``learning_rate`` as
    the residual takes it (the verifier's: the rate it recomputed); nothing otherwise."""
    if not getattr(spec, "rate_public", False):
        return {}
    if learning_rate is None:
        raise ProofVerificationError("the step has no learning rate and its statement's rate is public", reason="malformed-commitment")
    return {"learning_rate": torch.tensor(float(learning_rate), dtype=torch.float64)}


def commitment_of(grid: Named, spec: Statement) -> StepCommitment:
    """The commitments of revealed values under the scheme of ``spec``'s backend."""
    scheme = commitments_of(spec)
    return StepCommitment(scale=spec.scale, **{name: scheme.tensor(name).commit(value, name) for name, value in grid.items()})


def write_certificate(out_dir: Path, proof_type: str, spec: Statement, grid: Named, extra: Named) -> tuple[Path, StepCommitment]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    commitment = commitment_of(grid, spec)
    tensors = {**grid, **extra}
    with atomic_path(out_dir / WITNESS) as tmp:
        save_file({k: v.contiguous().to(torch.float64) for k, v in tensors.items()}, str(tmp))
    path = out_dir / CERTIFICATE
    write_json_atomic(path, {"proof_type": proof_type, "circuit": spec.to_dict(), "commitment": commitment.to_dict()})
    return path, commitment


MAX_CERTIFICATE_BYTES = 1 << 20
"""certificate.json holds a statement and its commitments: a few kilobytes."""
MAX_WITNESS_BYTES = 256 << 20
"""witness.safetensors holds a step's revealed tensors in float64: a megabyte for the largest
statements pot-zk proves; a larger file is refused before it is read."""


def load_certificate(
    certificate: Path, proof_type: str, spec: Statement, commitment: StepCommitment
) -> dict[str, torch.Tensor]:
    """Load a certificate's revealed tensors after checking they bind to ``commitment``."""
    certificate = Path(certificate)
    witness = certificate.parent / WITNESS
    if witness.is_symlink() or (witness.exists() and not witness.is_file()):
        # review31: a named pipe there blocked verify for ever; a link was followed out of the bundle
        raise ProofVerificationError(f"the {proof_type} certificate's {WITNESS} is not a regular file of the bundle", reason="malformed-proof")
    for path, limit in ((certificate, MAX_CERTIFICATE_BYTES), (witness, MAX_WITNESS_BYTES)):
        size = path.stat().st_size if path.is_file() else 0
        if size > limit:  # review33: a 1 GiB certificate.json was read whole (2.3 GB of verify's memory)
            raise ProofVerificationError(f"the {proof_type} certificate's {path.name} has {size:,} bytes, above the {limit:,} any holds", reason="malformed-proof")
    try:
        header = json.loads(certificate.read_text())
        tensors = load_file(str(witness))
    except Exception as exc:  # json, OS and safetensors errors all mean an unusable certificate
        raise ProofVerificationError(f"unreadable {proof_type} certificate {certificate}: {exc}", reason="malformed-proof") from exc
    if header.get("proof_type") != proof_type:
        raise ProofVerificationError(
            f"certificate says proof_type {header.get('proof_type')!r}, expected {proof_type!r}", reason="proof-type-mismatch"
        )
    if header.get("circuit") != spec.to_dict():
        raise ProofVerificationError("certificate was made for another statement", reason="wrong-circuit")
    for key, size in spec.input_sizes().items():
        if key not in tensors or tuple(tensors[key].shape) != (size,):
            raise ProofVerificationError(f"certificate tensor {key} missing or misshapen", reason="malformed-proof")
        if not torch.isfinite(tensors[key]).all():
            raise ProofVerificationError(f"certificate tensor {key} has NaN/Inf", reason="malformed-proof")
    revealed = {name: tensors[name] for name in spec.input_names}
    try:
        recommitted = commitment_of(revealed, spec)
    except WitnessBuilderError as exc:  # outside the committed range: no honest commitment binds it
        raise ProofVerificationError(f"revealed witness is outside the committed range: {exc.message}", reason="commitment-mismatch") from exc
    if recommitted != replace(commitment, learning_rate=None):  # the rate is no commitment
        raise ProofVerificationError(
            "revealed witness does not match the declared commitments", reason="commitment-mismatch"
        )
    return tensors


def worst_ulps(residual: torch.Tensor, spec: Statement) -> float:
    """Largest |residual| in units of 2**-scale."""
    return float(residual.abs().max()) * 2.0**spec.scale if residual.numel() else 0.0


def refuse_untrue_update(residual: torch.Tensor, spec: Statement) -> None:
    """Prover side: a step whose W_t+1 is not the update is an invalid witness."""
    worst = worst_ulps(residual, spec)
    if worst > spec.tolerance_ulps:
        raise WitnessBuilderError(
            f"W_t+1 is not the SGD update of W_t on this batch: off by {worst:.3g} ulps",
            expected=f"<= {spec.tolerance_ulps} ulps of 2**-{spec.scale}",
            actual=worst,
        )


def within_tolerance(residual: torch.Tensor, spec: Statement, proof_type: str) -> None:
    """Verifier side: reject an update outside the declared tolerance."""
    worst = worst_ulps(residual, spec)
    if worst > spec.tolerance_ulps:
        raise ProofVerificationError(
            f"{proof_type}: W_t+1 differs from the recomputed update by {worst:.3g} ulps (tolerance {spec.tolerance_ulps})",
            reason="update-out-of-tolerance",
        )


def load_job_step(spec: Statement, witness_path: str) -> BatchStep:
    return load_training_step(Path(witness_path), spec.kind)


def certify(
    job, proof_type: str, spec: Statement, grid: Named, extra: Named, residual: torch.Tensor, started: float
) -> ProverResponse:
    """Prover side of a non-ZK type: refuse an untrue update, else write the certificate and
    answer like a prover program would."""
    refuse_untrue_update(residual, spec)
    path, commitment = write_certificate(Path(job.output_dir), proof_type, spec, grid, extra)
    return ProverResponse(
        proof_type=proof_type,
        artifacts={"proof": str(path)},
        public={"commitment": commitment.to_dict()},
        timings={"prove_s": time.perf_counter() - started},
        sizes={"proof_bytes": path.stat().st_size + (path.parent / WITNESS).stat().st_size},
    )
