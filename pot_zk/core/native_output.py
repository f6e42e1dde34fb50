"""What native code (Rust extensions: ezkl, groth16py) prints on the process's own file
descriptors, captured instead of shown.

Those libraries write progress bars and statistics straight to fds 1 and 2, past Python's
``sys.stdout``; on a terminal they break the training progress bar and the calm console
(``pot-zk train`` shows bars, warnings, errors and the summary). :func:`captured_fds` sends
both fds to a temporary file for the duration and hands the text back, so a caller can put it
in an error when the call fails. The fds belong to the whole process: whatever another thread,
or a child forked meanwhile, writes to them during the capture goes to the temporary file, not
to the terminal (records still reach the audit file, which is not on these fds).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


class CapturedText:
    """The text printed on fds 1 and 2 while :func:`captured_fds` was active (set on exit)."""

    text = ""


@contextmanager
def captured_fds() -> Iterator[CapturedText]:
    """Send what is printed on fds 1 and 2 to a temporary file for the duration."""
    captured = CapturedText()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")
