"""``freivalds``: a non-ZK certificate whose matrix products are checked by random projection.

The prover reveals the witness (on the commitment grid) and the products of the step's forward
and backward pass (its step kind's :meth:`~pot_zk.kinds.base.StepKind.backprop`, float64).
The verifier:

1. checks the revealed W_t, batch, W_t+1 (and a LoRA step's base) hash to the declared
   commitments;
2. derives its randomness from the commitments and a SHA-256 of the revealed tensors
   (Fiat-Shamir), and checks every product with ``ROUNDS`` rounds of Gaussian vectors, each
   up to float64 round-off (``ROUNDOFF`` times the same products taken in absolute value):
   the checks of the step's kind (:mod:`pot_zk.backends.certificates.sgd_freivalds`,
   :mod:`pot_zk.backends.certificates.lora_freivalds`);
3. recomputes the element-wise parts (ReLU, its mask, the output error, bias gradients) and
   accepts when W_t+1 is within ``tolerance_ulps`` of the update the checked products imply.

Cost: O(N (d_in + d_out) + d_in d_out) per layer instead of O(N d_in d_out).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from pot_zk.backends.base import Statement, StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.certificates.products import PRODUCT_CHECKS
from pot_zk.backends.certificates.revealed import WITNESS, certify, grid_step, load_certificate, load_job_step, within_tolerance
from pot_zk.backends.registry import spec_from_dict
from pot_zk.core.protocol import ProverResponse
from pot_zk.exceptions import ProofVerificationError
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.kinds.registry import STEP_KINDS

PROOF_TYPE = "freivalds"
ROUNDS = 8
ROUNDOFF = 1e-9


class FreivaldsCertificate:
    """Proves in-process (a strategy: a ``ProverRequest`` callable) and verifies (a
    :class:`~pot_zk.backends.base.StepVerifier`; no keys) ``freivalds`` certificates."""

    name = PROOF_TYPE
    proof_type = PROOF_TYPE
    zero_knowledge = False

    def __call__(self, job) -> ProverResponse:
        started = time.perf_counter()
        spec = spec_from_dict(job.circuit)
        grid = grid_step(load_job_step(spec, job.witness_path), spec)
        extra = STEP_KINDS.get(spec.kind).backprop(spec.architecture, spec.batch_size, grid)
        residual = PRODUCT_CHECKS.get(spec.kind).update_residual(spec, {**grid, **extra})
        return certify(job, PROOF_TYPE, spec, grid, extra, residual, started)

    def unserved(self, spec: Statement) -> str | None:
        """Why it cannot stand in for a proof of ``spec`` (None: it can)."""
        if spec.tolerance_ulps == 0:
            return ("freivalds checks a float update within a tolerance, and this statement is exact "
                    f"({spec.backend}): its certificate could not show the declared update")
        return None

    def verifier_keys(self, spec: Statement, declared: Mapping[str, Any] | None, options: VerifierOptions) -> None:
        return None

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        verify_freivalds(statement.spec, statement.commitment, proof)


def _challenge_seed(commitment: StepCommitment, certificate: Path) -> int:
    digest = hashlib.sha256(json.dumps(commitment.to_dict(), sort_keys=True).encode())
    digest.update((certificate.parent / WITNESS).read_bytes())
    return int.from_bytes(digest.digest()[:8], "little")


def verify_freivalds(spec: Statement, commitment: StepCommitment, certificate: Path) -> None:
    """Raise ProofVerificationError unless the certificate shows the declared update."""
    certificate = Path(certificate)
    tensors = load_certificate(certificate, PROOF_TYPE, spec, commitment)
    checks = PRODUCT_CHECKS.get(spec.kind)
    for key, shape in checks.expected_shapes(spec).items():
        if key not in tensors or tuple(tensors[key].shape) != shape or not torch.isfinite(tensors[key]).all():
            raise ProofVerificationError(f"freivalds certificate tensor {key} missing or malformed", reason="malformed-proof")
    generator = torch.Generator().manual_seed(_challenge_seed(commitment, certificate))
    for _ in range(ROUNDS):
        checks.check_products(spec, tensors, generator, ROUNDOFF)
    within_tolerance(checks.update_residual(spec, tensors), spec, PROOF_TYPE)


FREIVALDS = FreivaldsCertificate()
