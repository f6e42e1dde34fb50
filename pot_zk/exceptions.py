"""The pot-zk error hierarchy, under the seed's names.

The seed's flow: a :class:`ProofGenerationError` (its subclasses included: a crash, a timeout,
garbage on stdout, a deterministic failure) is retried on the configured schedule and ends as
:class:`RetryExhaustedError` (itself a ProofGenerationError) when every attempt failed; every
other error (:class:`ProverNotFoundError`, :class:`InvalidModelStateError`,
:class:`WitnessBuilderError`, :class:`ConfigurationError`, ...) is never retried and surfaces as
itself (:mod:`pot_zk.proving.retry`).

Every error carries its context as attributes, says whether its cause is transient
(``retryable``: a crash, a timeout or exit 75 may not recur; garbage output or a deterministic
failure will; recorded in the audit trail, it does not decide what is retried) and serialises
itself for the audit trail with :meth:`PotZkError.to_record`. The seed's constructor keywords are explicit
parameters and become attributes and record keys of the same name: ``binary_name``,
``search_paths``, ``exit_code``, ``stderr``, ``expected_format`` / ``actual_format``,
``model_type``, ``proof_type``, ``attempts``, ``last_error``. Any other keyword is extra
context: it lands in ``context`` and in the record, not as an attribute.
"""

from __future__ import annotations

from typing import Any, Sequence

STDERR_TAIL_CHARS = 2000


def tail(text: str | bytes | None, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last ``limit`` characters of a program's output, decoded leniently."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text[-limit:]


class PotZkError(Exception):
    """Base of every error pot-zk raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.context = context

    @property
    def error_class(self) -> str:
        return type(self).__name__

    def to_record(self) -> dict[str, Any]:
        """A JSON-serialisable description for the audit trail."""
        record: dict[str, Any] = {
            "error_class": self.error_class,
            "retryable": self.retryable,
            "message": self.message,
        }
        for key, value in self.context.items():
            record[key] = _jsonable(value)
        return record

    def __reduce__(self):
        """Pickle by state instead of re-calling ``__init__`` (whose signature differs per
        subclass), so an error raised on a Dask worker arrives intact: same class, message,
        ``retryable`` and context attributes."""
        return (_restore_error, (type(self), self.args), self.__dict__)


def _restore_error(cls: type[PotZkError], args: tuple[Any, ...]) -> PotZkError:
    return cls.__new__(cls, *args)


def _jsonable(value: Any) -> Any:
    if isinstance(value, PotZkError):
        return value.to_record()
    if isinstance(value, BaseException):
        return {"error_class": type(value).__name__, "message": str(value)}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


ZKProofError = PotZkError
"""The seed's name for the base class."""


class ConfigurationError(PotZkError):
    """A configuration value is missing, unknown or inconsistent. ``key`` names it; ``options``
    lists the valid values when there is a fixed set."""

    def __init__(self, message: str, *, key: str | None = None, options: Sequence[str] | None = None, **context: Any) -> None:
        options = None if options is None else list(options)
        super().__init__(message, key=key, options=options, **context)
        self.key = key
        self.options = options


class ProverNotFoundError(PotZkError):
    """The prover program could not be located."""

    def __init__(self, binary_name: str, search_paths: Sequence[str] = ()) -> None:
        search_paths = list(search_paths)
        message = (
            f"prover program {binary_name!r} not found; searched: {', '.join(search_paths) or '(nothing)'}. "
            "Install pot-zk (it provides the prover programs), or set prover.binary to an "
            "absolute path, or add its directory to prover.search_paths."
        )
        super().__init__(message, binary_name=binary_name, search_paths=search_paths)
        self.binary_name = binary_name
        self.search_paths = search_paths


class ProofGenerationError(PotZkError):
    """A prover program ran and did not produce a proof; retried on the configured schedule.
    ``stderr`` keeps the last STDERR_TAIL_CHARS characters of the program's standard error."""

    def __init__(
        self,
        message: str,
        *,
        binary_name: str | None = None,
        exit_code: int | None = None,
        stderr: str | bytes | None = None,
        retryable: bool | None = None,
        **context: Any,
    ) -> None:
        super().__init__(
            message,
            retryable=retryable,
            binary_name=binary_name,
            exit_code=exit_code,
            stderr=tail(stderr),
            **context,
        )
        self.binary_name = binary_name
        self.exit_code = exit_code
        self.stderr = tail(stderr)


class ProverCrashError(ProofGenerationError):
    """The prover died (signal, unexpected exit code). Transient (``retryable``): crashes such
    as an out-of-memory kill may not recur."""

    retryable = True


class ProverProtocolError(ProofGenerationError):
    """The prover exited but its output was not one valid protocol response
    (garbage, truncated JSON, wrong protocol version). A program bug: not transient (still
    retried, as every ProofGenerationError is)."""

    retryable = False


class ProverTimeoutError(ProofGenerationError):
    """The prover exceeded its time limit and was killed with its process group."""

    retryable = True

    def __init__(self, message: str, *, timeout_s: float, **context: Any) -> None:
        super().__init__(message, timeout_s=timeout_s, **context)
        self.timeout_s = timeout_s


class _StateError(PotZkError):
    """An error about values handed to pot-zk: what was expected and what was found.
    ``expected_format`` / ``actual_format`` (the seed's names) are ``expected`` / ``actual``."""

    def __init__(
        self,
        message: str,
        *,
        expected: Any = None,
        actual: Any = None,
        expected_format: Any = None,
        actual_format: Any = None,
        **context: Any,
    ) -> None:
        if (expected is not None and expected_format is not None) or (actual is not None and actual_format is not None):
            raise TypeError(f"{type(self).__name__}: pass expected=/actual= or expected_format=/actual_format=, not both")
        expected = expected if expected is not None else expected_format
        actual = actual if actual is not None else actual_format
        super().__init__(message, expected=expected, actual=actual, **context)
        self.expected = expected
        self.actual = actual

    @property
    def expected_format(self) -> Any:
        return self.expected

    @property
    def actual_format(self) -> Any:
        return self.actual


class WitnessBuilderError(_StateError):
    """The witness for a step cannot be built (values out of range, inconsistent shapes).
    ``model_type`` (the seed's keyword) names the step kind, ``sgd`` or ``lora``, when known."""

    def __init__(self, message: str, *, model_type: str | None = None, **context: Any) -> None:
        super().__init__(message, model_type=model_type, **context)
        self.model_type = model_type


class InvalidModelStateError(_StateError):
    """A captured model state is malformed: NaN/Inf, missing or extra keys, shape mismatch."""


class StepMismatchError(InvalidModelStateError):
    """A training step taken by the user's own loop is not the step the run declared (another
    learning rate, loss or batch; clipped, scaled or accumulated gradients; an optimizer step
    without a declared batch). ``step`` is the step number; ``differs`` names what differs."""

    def __init__(self, message: str, *, step: int, differs: str, **context: Any) -> None:
        super().__init__(message, step=step, differs=differs, **context)
        self.step = step
        self.differs = differs


class ProofVerificationError(PotZkError):
    """A proof or certificate does not verify. Never retryable: retrying cannot make a bad
    proof good."""

    def __init__(self, message: str, *, reason: str = "invalid-proof", proof_type: str | None = None, **context: Any) -> None:
        super().__init__(message, reason=reason, proof_type=proof_type, **context)
        self.reason = reason
        self.proof_type = proof_type


class RetryExhaustedError(ProofGenerationError):
    """Every attempt the retry schedule allowed has failed: ``attempts`` counts them,
    ``last_error`` is the final ProofGenerationError. A ProofGenerationError itself, so code
    catching either catches it; its ``binary_name``, ``exit_code`` and ``stderr`` are the last
    error's. The seed's signature: ``RetryExhaustedError(message, attempts, last_error)``;
    without a message one is made."""

    retryable = False

    def __init__(self, message: str | None = None, attempts: int = 0, last_error: BaseException | None = None) -> None:
        if message is None:
            last = "none" if last_error is None else f"{type(last_error).__name__}: {last_error}"
            message = f"gave up after {attempts} attempt(s); last error: {last}"
        PotZkError.__init__(self, message, attempts=attempts, last_error=last_error)
        self.attempts = attempts
        self.last_error = last_error

    @property
    def binary_name(self) -> str | None:
        return getattr(self.last_error, "binary_name", None)

    @property
    def exit_code(self) -> int | None:
        return getattr(self.last_error, "exit_code", None)

    @property
    def stderr(self) -> str:
        return getattr(self.last_error, "stderr", "")


class ChallengeError(PotZkError):
    """A challenge file does not fit the run it is applied to, or a challenged step cannot be
    answered. ``reason`` names the failure as ``pot-zk verify --challenge`` does."""

    def __init__(self, message: str, *, reason: str, **context: Any) -> None:
        super().__init__(message, reason=reason, **context)
        self.reason = reason


class AuditTrailError(PotZkError):
    """An audit trail cannot be appended to or does not verify."""


class BundleRecordsError(PotZkError, ValueError):
    """A JSON-lines file of a run bundle (commitments, proofs, scores) has a line that is not a
    JSON object: a damaged or edited bundle. A ValueError too, as the readers' callers catch."""
