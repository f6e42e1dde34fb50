"""Ctrl-C and SIGTERM in the ``pot-zk`` command.

Inside :func:`interruptible`, the first SIGINT or SIGTERM kills every prover pot-zk started
(:func:`~pot_zk.core.prover_processes.stop_provers`: their process groups are sessions of their
own, which a terminal's Ctrl-C does not reach) and raises
:class:`~pot_zk.core.prover_processes.Interrupted` in the main thread, so the run ends
``interrupted`` in its audit trail and the command says how to continue; while a run's end is
being written (:func:`~pot_zk.core.prover_processes.closing_run`) it is raised once ``run.end``
is. A second signal ends the process at once.

Python runs signal handlers in the main thread between bytecodes, which can be a long wait when
the main thread is in native code (a Groth16 key setup, tens of seconds). So the signals are
also written to a pipe (:func:`signal.set_wakeup_fd`) that a watcher thread reads: it kills the
provers the moment the first signal arrives. A native engine may also hold the interpreter
lock for seconds (measured: 4 s of groth16py's key setup), which stops every Python thread; so
on Linux the handlers are installed with ``SA_RESETHAND``: the kernel restores the default
action as it delivers the first signal, and a second one ends the process there and then
(killed by that signal: the shell shows status 130 for SIGINT). Elsewhere the second signal
exits with status 130 as soon as a Python thread runs.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from pot_zk.core.prover_processes import Interrupted, defer_interrupt, stop_provers

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130


class _Signals:
    def __init__(self, terminal: int) -> None:
        self.raised = False
        self.seen = 0
        self.lock = threading.Lock()
        self.terminal = terminal
        """A copy of stderr as it was at the start: fd 2 itself may be redirected to a capture
        file when the signal comes (native engines' output, pot_zk.core.native_output)."""

    def handle(self, signum: int, frame: Any) -> None:
        """The Python-level handler (main thread): raise Interrupted on the first signal, exit on
        the next. It leaves the killing to the watcher: the main thread may be holding the lock
        that :func:`stop_provers` takes (starting a prover) when a handler runs."""
        if self.raised:
            self.exit_now()
        self.raised = True
        name = signal.Signals(signum).name
        finishing = defer_interrupt(name)  # while a run's end (or a proof's outcome records) is written, raised once it is (closing_run)
        if finishing is None:
            raise Interrupted(name)
        self.say(f"pot-zk: {name}: finishing {finishing} first (interrupt again to exit now)")

    def say(self, line: str) -> None:
        """One line on the terminal's stderr (the copy taken at the start), never raising."""
        if self.terminal >= 0:
            try:
                os.write(self.terminal, (line + "\n").encode())
            except OSError:
                pass

    def watch(self, read_fd: int) -> None:
        """The watcher thread: reads the signal numbers the C handler wrote, until EOF."""
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in SIGNALS:
                    with self.lock:
                        self.seen += 1
                        seen = self.seen
                    if seen == 1:
                        stop_provers()
                    else:
                        self.exit_now()

    def exit_now(self) -> None:
        try:
            if self.terminal >= 0:
                os.write(self.terminal, b"\npot-zk: interrupted again: exiting now\n")
        finally:
            os._exit(EXIT_INTERRUPTED)


SA_RESETHAND = 0x80000000
"""Linux's flag on x86-64 and arm64: the handler is reset to the default as the signal is delivered."""


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` on x86-64 and arm64 Linux."""

    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16), ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def reset_on_delivery(signum: int) -> bool:
    """Add ``SA_RESETHAND`` to the handler installed for ``signum`` (Linux on x86-64 or arm64
    only); True when done."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    action = _SigAction()
    if libc.sigaction(signum, None, ctypes.byref(action)) != 0:
        return False
    action.flags |= SA_RESETHAND
    return libc.sigaction(signum, ctypes.byref(action), None) == 0


def _duplicate_stderr() -> int:
    """A copy of file descriptor 2 (-1 when there is none)."""
    try:
        return os.dup(2)
    except OSError:
        return -1


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM handling as the module docstring says, restored on exit. Outside the
    main thread (where signals cannot be handled) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _Signals(_duplicate_stderr())
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {signum: signal.signal(signum, state.handle) for signum in SIGNALS}
    for signum in SIGNALS:
        reset_on_delivery(signum)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=state.watch, args=(read_fd,), name="pot-zk-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(write_fd)
        watcher.join(timeout=5)
        os.close(read_fd)
        if state.terminal >= 0:
            os.close(state.terminal)
