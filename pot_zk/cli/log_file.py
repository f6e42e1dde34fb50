"""The handler of a Hydra app's log file (``train.log`` in the run directory,
conf/hydra/job_logging/pot_zk.yaml).

``logging.FileHandler`` reports every record it cannot write (a full disk, a file system gone
read-only) with a ``--- Logging error ---`` traceback on stderr: one per record, dozens in a run,
burying the run's own message (found by a review). This one says once, in one line, that the
log file stopped being written, and drops its records from then on; the run's own records (the
audit trail) report their failures themselves.
"""

from __future__ import annotations

import logging
import sys


class RunLogFileHandler(logging.FileHandler):
    """A ``FileHandler`` that gives up quietly, after one line on stderr, once a write fails."""

    failed = False

    def handleError(self, record: logging.LogRecord | None) -> None:
        if self.failed:
            return
        self.failed = True
        error = sys.exc_info()[1]
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error) or type(error).__name__
        try:
            sys.stderr.write(f"pot-zk warning: {self.baseFilename} cannot be written ({why}); it is not written to from here on\n")
        except (OSError, ValueError):
            pass

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def close(self) -> None:
        try:
            super().close()  # flushes what is buffered
        except OSError:
            self.handleError(None)
