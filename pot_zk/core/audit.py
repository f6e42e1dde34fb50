"""The tamper-evident audit trail: hash-chained JSON lines written through structlog.

Record format (one JSON object per line, UTF-8, ``\\n``-terminated):

* ``body`` = the record without ``hash``, serialised canonically: ``json.dumps(record,
  sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. It contains ``seq`` (0, 1, 2 ...
  over the whole file, across restarts) and ``prev_hash`` (the previous record's ``hash``;
  ``"0" * 64`` for the first record).
* ``hash`` = ``sha256(body).hexdigest()``.
* the line written is ``body`` with its closing ``}`` replaced by ``,"hash":"<hash>"}``; so the
  bytes hashed are exactly the bytes written, minus the hash field appended last.

The chaining is the last structlog processor (after :class:`~pot_zk.core.console.ConsoleView`,
which shows records on the terminal and never changes them); a :class:`AuditLog` writes each record with
``flush`` + ``fsync`` under a lock, and reopening an existing trail resumes its chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Mapping

import structlog

from pot_zk.core.console import ConsoleView
from pot_zk.exceptions import AuditTrailError

GENESIS_HASH = "0" * 64
_LINE = re.compile(rb'^(?P<body>\{.*),"hash":"(?P<hash>[0-9a-f]{64})"\}$', re.DOTALL)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ParsedRecord:
    seq: int
    prev_hash: str
    hash: str
    record: dict[str, Any]


def parse_line(line: bytes) -> ParsedRecord:
    """Split one written line (without its newline) into its record; ValueError says why
    it is not a valid record."""
    match = _LINE.match(line)
    if match is None:
        raise ValueError("not a hash-terminated JSON record")
    body = match.group("body") + b"}"
    if sha256_hex(body) != match.group("hash").decode():
        raise ValueError("content does not match its hash")
    try:
        record = json.loads(body)
        seq, prev_hash = record["seq"], record["prev_hash"]
    except RecursionError as exc:  # review49: a record nested 50,000 deep, its hash recomputed
        raise ValueError("a JSON record nested too deeply") from exc
    except (TypeError, KeyError) as exc:
        raise ValueError("not a JSON record with seq and prev_hash") from exc
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev_hash, str):  # review49: seq a list or 1e999
        raise ValueError(f"seq {json.dumps(seq)[:40]} is not an integer or prev_hash not a string")
    return ParsedRecord(seq, prev_hash, match.group("hash").decode(), record)


class HashChain:
    """structlog processor, always last: adds ``seq``/``prev_hash`` and renders the bytes
    to write, with ``hash`` over exactly those bytes."""

    def __init__(self, next_seq: int = 0, prev_hash: str = GENESIS_HASH) -> None:
        self.next_seq = next_seq
        self.prev_hash = prev_hash

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> bytes:
        event_dict["seq"] = self.next_seq
        event_dict["prev_hash"] = self.prev_hash
        body = canonical_bytes(event_dict)
        digest = sha256_hex(body)
        self.next_seq += 1
        self.prev_hash = digest
        return body[:-1] + b',"hash":"' + digest.encode() + b'"}'


class _AppendOnlyFile:
    """The structlog "logger": appends each rendered record as one durable line."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = open(path, "ab")

    def _write(self, line: bytes) -> None:
        from pot_zk.core.atomic import StorageError

        size = self._file.tell()
        try:
            self._file.write(line + b"\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as error:
            # cut back to the last complete record: a half line followed by a later record
            # would read as an edited trail (`pot-zk resume` cuts a half last line anyway)
            self._file = _reopen_truncated(self._file, size)
            raise StorageError(self._path, error) from error

    debug = info = warning = error = critical = msg = _write

    def size(self) -> int:
        return os.path.getsize(self._path)

    def whole_line_since(self, size: int) -> bool:
        """Whether one whole record line was appended after ``size`` bytes; a part of one is
        cut off (the file is left at ``size``)."""
        try:
            self._file.flush()
        except OSError:
            pass
        with open(self._path, "rb") as handle:
            handle.seek(size)
            tail = handle.read()
        if tail.endswith(b"\n") and tail.count(b"\n") == 1:
            return True
        if tail:
            self._file = _reopen_truncated(self._file, size)
        return False

    def close(self) -> None:
        self._file.close()


def _reopen_truncated(handle: IO[bytes], size: int) -> IO[bytes]:
    """Drop buffered bytes that could not be written, cut the file to ``size``, reopen it."""
    path = handle.name
    try:
        handle.close()
    except OSError:
        pass
    try:
        os.truncate(path, size)
    except OSError:
        pass
    return open(path, "ab")


def _resume_point(path: Path) -> HashChain:
    if not path.exists() or path.stat().st_size == 0:
        return HashChain()
    last = path.read_bytes().split(b"\n")
    if last[-1] != b"":
        raise AuditTrailError(f"audit trail {path} ends in an incomplete record; run `pot-zk audit verify {path}`", path=str(path))
    try:
        record = parse_line(last[-2])
    except ValueError as error:
        raise AuditTrailError(f"cannot resume audit trail {path}: its last record is invalid ({error})", path=str(path)) from error
    return HashChain(record.seq + 1, record.hash)


class _Sink:
    def __init__(self, path: Path, console: ConsoleView) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.chain = _resume_point(path)
        self.file = _AppendOnlyFile(path)
        self.lock = threading.Lock()
        processors: list[Any] = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        ]
        processors += [console, self.chain]
        self.processors = processors


class AuditLog:
    """One run's audit trail. ``bind`` gives views with more context sharing the same chain.

    The records that need attention (with ``console_records``: every record) go to the
    ``pot_zk.console`` logger, or to ``console_stream`` when one is given
    (:mod:`pot_zk.core.console`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        console_records: bool = False,
        console_stream: IO[str] | None = None,
        **context: Any,
    ) -> None:
        sink = _Sink(Path(path), ConsoleView(console_stream, records=console_records))
        logger = structlog.wrap_logger(sink.file, processors=sink.processors, wrapper_class=structlog.BoundLogger, context_class=dict)
        self._sink = sink
        self._logger = logger.bind(**context)

    @property
    def path(self) -> Path:
        return self._sink.path

    def bind(self, **context: Any) -> "AuditLog":
        view = object.__new__(AuditLog)
        view._sink = self._sink
        view._logger = self._logger.bind(**context)
        return view

    def event(self, event: str, **fields: Any) -> None:
        with self._sink.lock:
            chain = self._sink.chain
            before = (chain.next_seq, chain.prev_hash)
            size = self._sink.file.size()
            try:
                self._logger.info(event, **fields)
            except BaseException:
                # interrupted (Ctrl-C, a full disk): the chain follows the file -- a whole line
                # that reached it stays counted, a part of one is cut off and not counted
                if not self._sink.file.whole_line_since(size):
                    chain.next_seq, chain.prev_hash = before
                raise

    def close(self) -> None:
        self._sink.file.close()

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_start_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``run.start`` record carries: the resolved config, its hash, and versions."""
    versions = {}
    for distribution in ("pot-zk", "ezkl", "torch", "hydra-core", "structlog", "tenacity"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    versions["python"] = sys.version.split()[0]
    return {"config": dict(config), "config_sha256": sha256_hex(canonical_bytes(config)), "versions": versions}
