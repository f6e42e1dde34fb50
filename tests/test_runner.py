"""The prover-program runner: lookup, protocol v1 exchange, classification, timeouts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from pot_zk.exceptions import (
    ConfigurationError,
    ProofGenerationError,
    ProverCrashError,
    ProverNotFoundError,
    ProverProtocolError,
    ProverTimeoutError,
    WitnessBuilderError,
)
from pot_zk.core.runner import locate_prover, run_prover
from pot_zk.core.protocol import ProverRequest


def run(binary: Path | str, job: ProverRequest, timeout_s: float = 10.0, **kwargs):
    return run_prover(str(binary), job, timeout_s=timeout_s, **kwargs)


def test_successful_prover_returns_its_response_and_artifacts(make_prover, job):
    response = run(make_prover("ok", "zk-halo2"), job)
    assert response.proof_type == "zk-halo2"
    assert Path(response.artifacts["proof"]).is_file()
    assert response.public == {"step": 7}
    assert response.sizes["proof_bytes"] > 0


@pytest.mark.parametrize(
    ("behaviour", "arguments", "error_class", "retryable", "exit_code"),
    [
        ("crash", (), ProverCrashError, True, 1),
        ("exit", ("3",), ProverCrashError, True, 3),
        ("exit", ("64",), ConfigurationError, False, 64),
        ("exit", ("65",), WitnessBuilderError, False, 65),
        ("exit", ("70",), ProofGenerationError, False, 70),
        ("exit", ("75",), ProofGenerationError, True, 75),
    ],
)
def test_exit_codes_are_classified_with_exit_code_and_stderr(make_prover, job, behaviour, arguments, error_class, retryable, exit_code):
    with pytest.raises(error_class) as caught:
        run(make_prover(behaviour, *arguments), job)
    error = caught.value
    assert type(error) is error_class
    assert error.retryable is retryable
    record = error.to_record()
    assert record["exit_code"] == exit_code
    assert record["binary_name"].endswith("fake-prover")
    assert ("boom" in record["stderr"]) or (f"exiting with {exit_code}" in record["stderr"])


def test_error_message_reported_by_the_prover_is_used(make_prover, job):
    with pytest.raises(WitnessBuilderError, match="simulated exit 65"):
        run(make_prover("exit", "65"), job)


def test_death_by_signal_is_a_retryable_crash_naming_the_signal(make_prover, job):
    with pytest.raises(ProverCrashError) as caught:
        run(make_prover("signal"), job)
    assert caught.value.exit_code == -9
    assert caught.value.context["signal"] == "SIGKILL"
    assert "about to be killed" in caught.value.stderr
    assert caught.value.retryable


@pytest.mark.parametrize("behaviour", ["garbage", "truncated", "wrong-protocol", "bad-notes"])
def test_unusable_output_on_exit_0_is_a_non_retryable_protocol_error(make_prover, job, behaviour):
    with pytest.raises(ProverProtocolError) as caught:
        run(make_prover(behaviour), job)
    assert caught.value.exit_code == 0
    assert caught.value.retryable is False


def test_prover_is_found_by_name_in_configured_search_paths(make_prover, job):
    path = make_prover("ok", name="my-prover")
    assert locate_prover("my-prover", [str(path.parent)]) == str(path)
    assert run("my-prover", job, search_paths=[str(path.parent)]).proof_type == "zk-halo2"


def test_missing_prover_error_lists_every_path_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "on-path-1"), str(tmp_path / "on-path-2")]))
    with pytest.raises(ProverNotFoundError) as caught:
        locate_prover("no-such-prover", [str(tmp_path / "configured")])
    searched = caught.value.search_paths
    assert searched == [
        str(tmp_path / "configured" / "no-such-prover"),
        os.path.join(os.path.dirname(sys.executable), "no-such-prover"),
        str(tmp_path / "on-path-1" / "no-such-prover"),
        str(tmp_path / "on-path-2" / "no-such-prover"),
    ]
    assert str(tmp_path / "configured" / "no-such-prover") in str(caught.value)
    assert "prover.search_paths" in str(caught.value)


def test_missing_absolute_path_is_reported(tmp_path):
    with pytest.raises(ProverNotFoundError) as caught:
        locate_prover(str(tmp_path / "absent"))
    assert caught.value.search_paths == [str(tmp_path / "absent")]


def test_non_executable_file_is_not_a_prover(tmp_path):
    plain = tmp_path / "prover"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(ProverNotFoundError):
        locate_prover("prover", [str(tmp_path)])


def _process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_timeout_kills_the_whole_process_group(make_prover, job, tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(ProverTimeoutError) as caught:
        run(make_prover("hang-with-child", str(pid_file)), job, timeout_s=1.0)
    assert caught.value.retryable
    assert caught.value.timeout_s == 1.0
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _process_gone(child), f"grandchild {child} survived the timeout"


def test_the_helper_report_file_of_a_killed_process_is_removed_by_the_next_one(tmp_path):
    """review32: every pot-zk process that starts a prover has a helper report file in $TMPDIR,
    removed at exit: those of killed processes piled up (113 here). The next process removes
    those whose process is gone, not those of processes still running."""
    import signal
    import subprocess

    program = (
        "import sys, time\n"
        "from pot_zk.core import prover_processes\n"
        "prover_processes.start_prover([sys.executable, '-c', 'pass']).wait()\n"
        "print(prover_processes._helpers_path(), flush=True)\n"
        "time.sleep(600)\n"
    )
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    processes = [subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, env=environment) for _ in range(2)]
    try:
        killed, running = [(process, Path(process.stdout.readline().strip())) for process in processes]
        assert killed[1].is_file() and running[1].is_file()
        killed[0].send_signal(signal.SIGKILL)
        killed[0].wait(timeout=30)
        assert killed[1].is_file(), "a killed process removes nothing"
        done = subprocess.run([sys.executable, "-c", program.replace("time.sleep(600)", "")], capture_output=True, text=True, env=environment, timeout=60)
        assert done.returncode == 0, done.stderr
        assert not killed[1].exists() and running[1].is_file()
        assert not Path(done.stdout.strip()).exists(), "removed at its own exit"
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)
