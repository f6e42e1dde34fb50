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

from pot_zk.kinds.commitments import StepCommitment
from pot_zk.core.protocol import ProverResponse
from pot_zk.backends.certificates.revealed import certify, grid_step, load_certificate, load_job_step, within_tolerance
from pot_zk.kinds.spec_base import CircuitSpec
from pot_zk.kinds.registry import check_spec_from_dict

PROOF_TYPE = "reexec"


class ReexecStrategy:
    """Prover side: writes the certificate for a step (a ``ProofJob`` callable)."""

    name = PROOF_TYPE

    def __call__(self, job) -> ProverResponse:
        started = time.perf_counter()
        spec = check_spec_from_dict(job.circuit)
        grid = grid_step(load_job_step(spec, job.witness_path), spec)
        residual = spec.reference_output([grid[name] for name in spec.input_names])
        return certify(job, PROOF_TYPE, spec, grid, {}, residual, started)


def verify_reexec(spec: CircuitSpec, commitment: StepCommitment, certificate: Path) -> None:
    """Raise ProofVerificationError unless the certificate shows the declared update."""
    tensors = load_certificate(certificate, PROOF_TYPE, spec, commitment)
    residual = spec.reference_output([tensors[name] for name in spec.input_names])
    within_tolerance(residual, spec, PROOF_TYPE)
