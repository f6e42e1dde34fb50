"""Running a pot-zk command in a pseudo-terminal, as a person at a terminal would see it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

POT_ZK = Path(sys.executable).parent / "pot-zk"


def run_in_terminal(argv: list[str], cwd: Path, columns: int = 120) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal (``columns`` wide) as stdin, stdout and stderr;
    return its exit status and everything it showed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal, cwd=cwd, close_fds=True)
    os.close(terminal)
    shown = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        shown.append(data)
    os.close(controller)
    return process.wait(timeout=600), b"".join(shown).decode(errors="replace")
