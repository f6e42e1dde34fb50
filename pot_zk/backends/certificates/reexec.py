"""``reexec``: a non-ZK certificate checked by re-executing the step.

Certificate: the commitments plus the revealed witness (W_t, batch, W_t+1 -- for a LoRA step
the adapters, plus the frozen base -- on the commitment grid). The verifier checks the revealed
values hash to the declared commitments, recomputes the SGD update in float64 from W_t (and
the base) and the batch, and accepts when every entry of W_t+1 is
within ``tolerance_ulps`` units of 2**-scale of it. Reveals weights and data to the verifier.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.base import Statement, StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.certificates.revealed import certify, grid_step, load_certificate, load_job_step, public_rate, within_tolerance
from pot_zk.backends.registry import spec_from_dict
from pot_zk.core.protocol import ProverResponse
from pot_zk.kinds.encoding import StepCommitment

PROOF_TYPE = "reexec"


class ReexecCertificate:
    """Proves in-process (a strategy: a ``ProverRequest`` callable) and verifies (a
    :class:`~pot_zk.backends.base.StepVerifier`; no keys) ``reexec`` certificates."""

    name = PROOF_TYPE
    proof_type = PROOF_TYPE
    zero_knowledge = False

    def __call__(self, job) -> ProverResponse:
        started = time.perf_counter()
        spec = spec_from_dict(job.circuit)
        step = load_job_step(spec, job.witness_path)
        grid = grid_step(step, spec)
        residual = spec.residual({**grid, **public_rate(spec, step.learning_rate)})
        return certify(job, PROOF_TYPE, spec, grid, {}, residual, started)

    def unserved(self, spec: Statement) -> str | None:
        """None: it recomputes any statement's own update (``Statement.residual``)."""
        return None

    def verifier_keys(self, spec: Statement, declared: Mapping[str, Any] | None, options: VerifierOptions) -> None:
        return None

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        verify_reexec(statement.spec, statement.commitment, proof)


def verify_reexec(spec: Statement, commitment: StepCommitment, certificate: Path) -> None:
    """Raise ProofVerificationError unless the certificate shows the declared update."""
    tensors = load_certificate(certificate, PROOF_TYPE, spec, commitment)
    residual = spec.residual({**tensors, **public_rate(spec, commitment.learning_rate)})
    within_tolerance(residual, spec, PROOF_TYPE)


REEXEC = ReexecCertificate()
