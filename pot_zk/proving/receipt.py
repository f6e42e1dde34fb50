"""The trainer's check of a prover program's answer, before the step counts as proved.

A prover program is a separate program that answers "ok" and names a proof file; until this
check, "proved" in the run's records and summary was that program's word (a program that lied
was caught only by ``pot-zk verify``). :class:`ReceiptCheck`, for every "ok" answer:

* refuses an answer whose ``proof_type`` is not the one the strategy makes (a program run as the
  ``zk-groth16`` strategy that answers ``zk-halo2``, ``reexec`` or ``""`` would otherwise be
  recorded, unchecked, as a proof of that type: review55);
* for the backend's own proof type, verifies the named proof against the commitments the
  trainer itself recorded for the step, with the backend's verifier and the key the step was
  proven with, which must be the key the run declares
  (:meth:`~pot_zk.backends.base.ProverBackend.check_on_receipt`).

A refused answer is a failed attempt (``ProverProtocolError``: retried as every protocol error
is, then handed to the mode's failure handler). Where the backend's verification costs too much
per proof (``zk-halo2``), and for the in-process certificates (``reexec``, ``freivalds``, which
the trainer computes itself), nothing is verified and the attempt's audit record says
``checked_on_receipt: false``; a checked one names the SHA-256 of the proof bytes it checked
(``checked_sha256``: the file is recorded by path, and could change afterwards).

This is not an auditor's check: the key is the trainer's (a dev key it made, or the auditor's
key directory it was given). ``pot-zk verify`` checks every proof again with keys the verifier
chose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.exceptions import PotZkError, ProofVerificationError, ProverProtocolError

if TYPE_CHECKING:  # backends.base imports torch: a configuration error is refused before torch's import (tests/test_cli_errors.py)
    from pot_zk.backends.base import ProverBackend

Recorded = Callable[[int], "Mapping[str, Any] | None"]


class ReceiptCheck:
    """Check answers against ``recorded(step)``, the step's commitment record, and ``declared``,
    the run's manifest (None: no run declares a key, as for the seed's single-step APIs). A
    step without a record is refused when ``required``, else left unchecked (a witness file
    proven as it is: ``ZkIntegration.prove_job``)."""

    def __init__(self, backend: "ProverBackend", recorded: Recorded, declared: Mapping[str, Any] | None, *, required: bool = True) -> None:
        self.backend = backend
        self.recorded = recorded
        self.declared = declared
        self.required = required

    def __call__(self, job: ProverRequest, response: ProverResponse, strategy: str) -> str | None:
        """The SHA-256 of the proof bytes checked; None when the answer is not one the check
        verifies (the module docstring). Raises ProverProtocolError when it refuses the answer."""
        if response.proof_type != strategy:
            raise ProverProtocolError(
                f"the {strategy} strategy answered step {job.step} with a proof of type {response.proof_type!r}, not {strategy!r}",
                retryable=False, step=job.step,
            )
        if response.proof_type != self.backend.proof_type:
            return None
        record = self.recorded(job.step)
        if record is None and not self.required:
            return None
        try:
            if record is None:
                raise ProofVerificationError(f"the run has no commitment record of step {job.step}", reason="malformed-commitment")
            return self.backend.check_on_receipt(job, response, record, self.declared)
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
