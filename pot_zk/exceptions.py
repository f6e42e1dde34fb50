"""The pot-zk error hierarchy.

Every error carries its context as attributes, declares whether retrying can help
(``retryable``, an attribute, never inferred from catch order) and serialises itself for the
audit trail with :meth:`PotZkError.to_record`.
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


class ConfigurationError(PotZkError):
    """A configuration value is missing, unknown or inconsistent."""

    def __init__(self, message: str, *, key: str | None = None, **context: Any) -> None:
        super().__init__(message, key=key, **context)
        self.key = key


class ProverNotFoundError(PotZkError):
    """The prover program could not be located."""

    def __init__(self, binary: str, searched: Sequence[str]) -> None:
        searched = list(searched)
        message = (
            f"prover program {binary!r} not found; searched: {', '.join(searched) or '(nothing)'}. "
            "Install pot-zk (it provides the prover programs), or set prover.binary to an "
            "absolute path, or add its directory to prover.search_paths."
        )
        super().__init__(message, binary=binary, searched=searched)
        self.binary = binary
        self.searched = searched


class ProofGenerationError(PotZkError):
    """A prover program ran and did not produce a proof."""

    def __init__(
        self,
        message: str,
        *,
        binary: str | None = None,
        exit_code: int | None = None,
        stderr_tail: str = "",
        retryable: bool | None = None,
        **context: Any,
    ) -> None:
        super().__init__(
            message,
            retryable=retryable,
            binary=binary,
            exit_code=exit_code,
            stderr_tail=tail(stderr_tail),
            **context,
        )
        self.binary = binary
        self.exit_code = exit_code
        self.stderr_tail = tail(stderr_tail)


class ProverCrashError(ProofGenerationError):
    """The prover died (signal, unexpected exit code). Retryable: crashes such as an
    out-of-memory kill may not recur."""

    retryable = True


class ProverProtocolError(ProofGenerationError):
    """The prover exited but its output was not one valid protocol response
    (garbage, truncated JSON, wrong protocol version). A program bug: not retryable."""

    retryable = False


class ProverTimeoutError(ProofGenerationError):
    """The prover exceeded its time limit and was killed with its process group."""

    retryable = True

    def __init__(self, message: str, *, timeout_s: float, **context: Any) -> None:
        super().__init__(message, timeout_s=timeout_s, **context)
        self.timeout_s = timeout_s


class WitnessBuilderError(PotZkError):
    """The witness for a step cannot be built (values out of range, inconsistent shapes)."""

    def __init__(self, message: str, *, expected: Any = None, actual: Any = None, **context: Any) -> None:
        super().__init__(message, expected=expected, actual=actual, **context)
        self.expected = expected
        self.actual = actual


class InvalidModelStateError(PotZkError):
    """A captured model state is malformed: NaN/Inf, missing or extra keys, shape mismatch."""

    def __init__(self, message: str, *, expected: Any = None, actual: Any = None, **context: Any) -> None:
        super().__init__(message, expected=expected, actual=actual, **context)
        self.expected = expected
        self.actual = actual


class ProofVerificationError(PotZkError):
    """A proof or certificate does not verify. Never retryable: retrying cannot make a bad
    proof good."""

    def __init__(self, message: str, *, reason: str = "invalid-proof", **context: Any) -> None:
        super().__init__(message, reason=reason, **context)
        self.reason = reason


class RetryExhaustedError(PotZkError):
    """Every attempt the retry schedule allowed has failed."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(
            f"gave up after {attempts} attempt(s); last error: {type(last_error).__name__}: {last_error}",
            attempts=attempts,
            last_error=last_error,
        )
        self.attempts = attempts
        self.last_error = last_error


class AuditTrailError(PotZkError):
    """An audit trail cannot be appended to or does not verify."""
