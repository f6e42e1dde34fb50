"""Run a prover program: locate it, send one JSON request, read one JSON response, classify.

The contract is protocol v1 (:mod:`pot_zk.core.protocol`, ``docs/protocol.md``). A prover runs in
its own session (process group) so that a timeout kills it *and* every process it started.

Interruption: a terminal's Ctrl-C does not reach a prover (its own session), so pot-zk kills
what it started: the group of a prover whose wait is interrupted (KeyboardInterrupt in the
waiting thread) at once, and every prover and helper process on
:func:`~pot_zk.core.prover_processes.stop_provers`, after which a prover that was killed or
would start raises :class:`~pot_zk.core.prover_processes.Interrupted` instead of being
classified as a crash to retry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from pot_zk.exceptions import (
    ConfigurationError,
    PotZkError,
    ProofGenerationError,
    ProverCrashError,
    ProverNotFoundError,
    ProverProtocolError,
    ProverTimeoutError,
    WitnessBuilderError,
    tail,
)
from pot_zk.core.prover_processes import Interrupted, forget, kill_group, start_prover, stopping
from pot_zk.core.protocol import (
    EXIT_BAD_REQUEST,
    EXIT_INVALID_WITNESS,
    EXIT_OK,
    EXIT_PROOF_FAILED,
    EXIT_TRANSIENT,
    PROTOCOL,
    ProverRequest,
    ProverResponse,
)

REAP_GRACE_S = 5.0


def search_directories(search_paths: Sequence[str]) -> list[str]:
    """Where a bare binary name is looked up, in order: configured search paths, the
    directory of the running interpreter (where pip installs console scripts), then PATH."""
    directories = [os.path.expanduser(p) for p in search_paths]
    directories.append(os.path.dirname(sys.executable))
    directories.extend(p for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    return directories


def locate_prover(binary: str, search_paths: Sequence[str] = ()) -> str:
    """The absolute path of an executable prover program, or ProverNotFoundError listing
    every path that was tried."""
    if os.sep in binary:
        candidates = [os.path.abspath(os.path.expanduser(binary))]
    else:
        candidates = [os.path.join(d, binary) for d in search_directories(search_paths)]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise ProverNotFoundError(binary, list(dict.fromkeys(candidates)))


@dataclass(frozen=True)
class CompletedProver:
    """What a finished prover process left behind."""

    binary: str
    exit_code: int
    stdout: str
    stderr: str


def run_prover(
    binary: str,
    request: ProverRequest,
    *,
    search_paths: Sequence[str] = (),
    timeout_s: float,
    args: Sequence[str] = (),
) -> ProverResponse:
    """Run one prover program on one request and return its response; raise the typed
    error that its exit code / output / timeout stands for."""
    path = locate_prover(binary, search_paths)
    completed = _execute(binary, path, list(args), json.dumps(request.to_json_dict()), timeout_s)
    return classify(completed, request.output_dir)


def _execute(binary: str, path: str, args: list[str], stdin: str, timeout_s: float) -> CompletedProver:
    try:
        process = start_prover([path, *args])
    except OSError as error:
        raise ProofGenerationError(
            f"could not start prover {path}: {error}. Check that it is an executable program.",
            binary_name=binary,
            retryable=False,
        ) from error
    try:
        return _wait(binary, process, stdin, timeout_s)
    finally:
        forget(process)


def _wait(binary: str, process: subprocess.Popen[bytes], stdin: str, timeout_s: float) -> CompletedProver:
    try:
        stdout, stderr = process.communicate(stdin.encode(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        stdout, stderr = _reap(process)
        if stopping():
            raise Interrupted("stopped") from None
        raise ProverTimeoutError(
            f"prover {binary} exceeded its {timeout_s} s limit and was killed with its process "
            "group; raise prover.timeout_s if the circuit needs more time.",
            timeout_s=timeout_s,
            binary_name=binary,
            exit_code=process.returncode,
            stderr=stderr,
        ) from None
    except BaseException:  # Ctrl-C while waiting: the prover's group goes too
        kill_group(process.pid)
        _reap_killed(process)
        raise
    kill_group(process.pid)
    if stopping():
        raise Interrupted("stopped")  # stopped by stop_provers: no outcome to record, nothing to retry
    return CompletedProver(
        binary=binary,
        exit_code=process.returncode,
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=stderr.decode("utf-8", errors="replace"),
    )


def _reap_killed(process: subprocess.Popen[bytes]) -> None:
    """Wait briefly for a killed prover to exit (its output is not wanted)."""
    try:
        process.wait(timeout=REAP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass


def _reap(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    try:
        return process.communicate(timeout=REAP_GRACE_S)
    except subprocess.TimeoutExpired:
        return b"", b""


def classify(completed: CompletedProver, output_dir: str | None = None) -> ProverResponse:
    """Turn a finished prover process into a response or the typed error of protocol v1; an
    artifact it names must be a file under the request's ``output_dir`` (when given)."""
    code = completed.exit_code
    context: dict[str, Any] = {
        "binary_name": completed.binary,
        "exit_code": code,
        "stderr": tail(completed.stderr),
    }
    if code == EXIT_OK:
        return _parse_response(completed, context, output_dir)
    reported = _error_message(completed.stdout)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        raise ProverCrashError(f"prover {completed.binary} was killed by signal {name}", signal=name, **context)
    if code == EXIT_BAD_REQUEST:
        raise ConfigurationError(
            f"prover {completed.binary} rejected the request as malformed: {reported}. "
            "Check the prover configuration and the protocol version.",
            **context,
        )
    if code == EXIT_INVALID_WITNESS:
        raise WitnessBuilderError(f"prover {completed.binary} rejected the witness: {reported}", **context)
    if code == EXIT_PROOF_FAILED:
        raise ProofGenerationError(f"prover {completed.binary} failed to prove: {reported}", retryable=False, **context)
    if code == EXIT_TRANSIENT:
        raise ProofGenerationError(
            f"prover {completed.binary} reported a transient failure: {reported}", retryable=True, **context
        )
    raise ProverCrashError(f"prover {completed.binary} crashed with exit code {code}: {reported}", **context)


def _parse_response(completed: CompletedProver, context: dict[str, Any], output_dir: str | None) -> ProverResponse:
    def protocol_error(why: str) -> PotZkError:
        return ProverProtocolError(
            f"prover {completed.binary} exited 0 but {why}; stdout starts with {completed.stdout[:200]!r}",
            **context,
        )

    try:
        data = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise protocol_error(f"its stdout is not one JSON document ({error.msg})") from None
    if not isinstance(data, dict):
        raise protocol_error("its response is not a JSON object")
    if data.get("protocol") != PROTOCOL:
        raise protocol_error(f"it speaks protocol {data.get('protocol')!r}, expected {PROTOCOL!r}")
    if data.get("status") != "ok":
        raise protocol_error(f"its status is {data.get('status')!r}, expected 'ok'")
    try:
        response = ProverResponse.from_json_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise protocol_error(f"its response is malformed ({type(error).__name__}: {error})") from None
    absent = sorted(name for name, path in response.artifacts.items() if not os.path.isfile(path))
    if absent:
        raise protocol_error(f"the artifact(s) {', '.join(absent)} it names do not exist")
    if output_dir is not None:  # review53: a fake key holder named a file of its own, outside the run, and train said "proved"
        inside = os.path.realpath(output_dir) + os.sep
        outside = sorted(name for name, path in response.artifacts.items() if not os.path.realpath(path).startswith(inside))
        if outside:
            raise protocol_error(f"the artifact(s) {', '.join(outside)} it names are not under the request's output directory {output_dir}")
    return response


def _error_message(stdout: str) -> str:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return "(no message)"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return "(no message)"
