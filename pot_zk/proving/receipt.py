"""The trainer's check of a prover program's answer, before the step counts as proved.

A prover program is a separate program that answers "ok" and names a proof file; until this
check, "proved" in the run's records and summary was that program's word (a program that lied
was caught only by ``pot-zk verify``). :class:`ReceiptCheck` verifies the named proof against
the commitments the trainer itself recorded for the step, with the backend's verifier and the
key the step was proven with (:meth:`~pot_zk.backends.base.ProverBackend.check_on_receipt`). A
proof that does not verify is a failed attempt (``ProverProtocolError``, not retried: a
program that answers with a bad proof does so again), handed to the mode's failure handler
like any other. Where the backend's verification costs too much per proof (``zk-halo2``), the
check is skipped and the attempt's audit record says ``checked_on_receipt: false``.

This is not an auditor's check: the key is the trainer's (a dev key it made, or the auditor's
key directory it was given). ``pot-zk verify`` checks every proof again with keys the verifier
chose.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pot_zk.backends.base import ProverBackend
from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.exceptions import PotZkError, ProofVerificationError, ProverProtocolError

Recorded = Callable[[int], "Mapping[str, Any] | None"]


class ReceiptCheck:
    """Check answers of ``backend``'s proof type against ``recorded(step)``, the step's
    commitment record (None: the step has none, which the check refuses)."""

    def __init__(self, backend: ProverBackend, recorded: Recorded) -> None:
        self.backend = backend
        self.recorded = recorded

    def __call__(self, job: ProverRequest, response: ProverResponse) -> bool:
        """True when the proof was checked and verifies; False when the backend does not check
        on receipt, or the answer is another proof type's (a fallback's own certificate).
        Raises ProverProtocolError when the proof does not verify."""
        if response.proof_type != self.backend.proof_type:
            return False
        record = self.recorded(job.step)
        try:
            if record is None:
                raise ProofVerificationError(f"the run has no commitment record of step {job.step}", reason="malformed-commitment")
            return self.backend.check_on_receipt(job, response, record)
        except ProofVerificationError as error:
            raise ProverProtocolError(
                f"the prover program answered ok for step {job.step}, but its {response.proof_type} proof does not verify "
                f"against the step's recorded commitments ({error.reason}: {error.message})",
                retryable=False, reason=error.reason, step=job.step,
            ) from None
        except PotZkError:
            raise
        except Exception as error:  # a key directory that cannot be read, say: the step is not counted as proved
            raise ProverProtocolError(
                f"checking the prover program's proof of step {job.step} raised {type(error).__name__}: {error}",
                retryable=False, step=job.step,
            ) from error
