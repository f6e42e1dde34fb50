"""Ending a pot-zk process once its work is done, without the interpreter's teardown.

Python's own teardown of a process that imported torch takes ~1 CPU-second (measured on the
2-core box: a 2-step ``pot-zk train`` 3.9 CPU-s against 2.9 with this exit) and does nothing a
pot-zk command still needs: its files are written and closed, its output flushed. Meanwhile
the command's interrupt handling is gone, so a Ctrl-C in that second killed the process by the
signal, without a word (found by a review). :func:`exit_now` runs the atexit handlers (logging's
flush, multiprocessing's and Dask's clean-up, ``weakref.finalize``) and ends the process with
the command's status; a signal meanwhile ends it at once with that status (the work is done).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    """Flush stdout and stderr, run the atexit handlers, end the process with ``status``; while
    a thread that is not a daemon still runs (the interpreter would wait for it), ``sys.exit``."""
    main = threading.main_thread()
    if threading.current_thread() is not main or any(t.is_alive() and not t.daemon and t is not main for t in threading.enumerate()):
        sys.exit(status)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: os._exit(status))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream: nothing more to say
            pass
    atexit._run_exitfuncs()
    os._exit(status)
