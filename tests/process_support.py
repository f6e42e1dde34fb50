"""Real `pot-zk` processes for the tests of locks and interruption: the installed console script,
a tiny zk-groth16 run, and what /proc says about the processes it starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

POT_ZK = Path(sys.executable).parent / "pot-zk"


def tiny_run(run: Path, cache: Path, *extra: str, steps: int = 6, k: int = 2) -> list[str]:
    """A 4-3-2 MLP on synthetic data, batch 2, proven with zk-groth16 every ``k`` steps."""
    return [
        "prover=groth16", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", f"train.max_steps={steps}",
        "policy=every_k", f"policy.k={k}", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false", *extra,
    ]


def start(*arguments: str, cwd: Path) -> subprocess.Popen[str]:
    """``pot-zk ARGUMENTS`` in a session of its own (a terminal's Ctrl-C reaches its process group)."""
    return subprocess.Popen(
        [str(POT_ZK), *arguments], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def run(*arguments: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(POT_ZK), *arguments], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 300, every: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def holder_pid(cache: Path, run: Path) -> int | None:
    """The pid of the zk-groth16 key holder serving ``run``'s circuit from ``cache``, if one listens."""
    from provers.groth16_held import socket_path

    circuit = json.loads((run / "manifest.json").read_text())["circuit"]
    pid_file = Path(f"{socket_path(str(cache), circuit)}.pid")
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return None


def kill(pid: int | None) -> None:
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def audit_events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines() if line.strip()]


def listing(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory``: (size, mtime_ns)."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.rglob("*")) if p.is_file()}
