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

import json
from typing import TYPE_CHECKING, Any, Callable, Mapping

from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.exceptions import PotZkError, ProofVerificationError, ProverProtocolError

if TYPE_CHECKING:  # backends.base imports torch: a configuration error is refused before torch's import (tests/test_cli_errors.py)
    from pot_zk.backends.base import ProverBackend

Recorded = Callable[[int], "Mapping[str, Any] | None"]


class ReceiptCheck:
    """Check answers against ``recorded(step)``, the step's commitment record, under the key
    ``declared`` (the run's manifest) declares. Without a manifest (the seed's single-step APIs)
    the key found before the first program runs (:meth:`pin`), else the key of the first answer
    verified, is pinned for the rest of the command: a key swapped into the cache is refused
    (review56); only a cache with no key yet takes the first program's setup, whose maker knows
    its trapdoor (a dev key, labelled so). A step without a record is refused when
    ``required``, else left unchecked."""

    def __init__(self, backend: "ProverBackend", recorded: Recorded, declared: Mapping[str, Any] | None, *, required: bool = True) -> None:
        self.backend = backend
        self.recorded = recorded
        self.declared = None if declared is None else backend.declared_key(declared)
        self.required = required
        self._pinned: dict[str, str] = {}
        """Circuit (its spec as JSON) -> the key its first verified answer was checked under."""

    def pin(self, job: ProverRequest) -> None:
        """Before ``job``'s program runs: pin the key it would be proven with now, when no run
        declares one and none is pinned yet (review56: a program of the seed's APIs that swapped a
        setup of its own into the cache before its first proof had that key pinned)."""
        circuit = json.dumps(job.circuit, sort_keys=True)
        if self.declared is None and circuit not in self._pinned:
            key = self.backend.current_key(job)
            if key is not None:
                self._pinned[circuit] = key

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
        circuit = json.dumps(job.circuit, sort_keys=True)
        try:
            if record is None:
                raise ProofVerificationError(f"the run has no commitment record of step {job.step}", reason="malformed-commitment")
            receipt = self.backend.check_on_receipt(job, response, record, self.declared or self._pinned.get(circuit))
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
        if receipt is None:
            return None
        self._pinned.setdefault(circuit, receipt.key)
        return receipt.proof_sha256
