"""``pot-zk export RUN --out RUN.tar.gz``: what the trainer hands to the auditor.

A run directory holds private data next to what ``pot-zk verify`` reads: ``witness/`` (raw
training batches and the weights of every step), ``checkpoint.safetensors``, the resolved
``config.yaml``, the parked jobs of ``pending/``, statistics and logs. The export holds only what
verify reads: the manifest, dataset commitments, step commitments, proof outcomes, held-out
scores, the audit trail, the initial and final models, and the proof file each outcome in
``proofs.jsonl`` names (for a proof type that reveals its witness to the verifier by design,
``freivalds`` and ``reexec``, that witness beside it too; a zero-knowledge proof's directory
holds nothing else of use). ``EXPORT.json`` lists every file with its SHA-256, and the run's
commitment head, which also names the default archive.

The archive is deterministic: the same run gives the same bytes (members sorted, times, owners
and permissions fixed, gzip without a name or time). :func:`unpack_export` opens one for
``pot-zk verify`` (regular files only, nothing outside the directory it unpacks into).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pot_zk.core.atomic import StorageError, atomic_path
from pot_zk.core.challenge import commitment_head
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs import bundle as files
from pot_zk.bundle.layout import open_session, own_file, read_jsonl, training_ends
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.lock import RunLock, shared_lock

EXPORT_MANIFEST = files.EXPORT_INVENTORY
EXPORT_FORMAT = "pot-zk-export/1"
RECORDS = (files.MANIFEST, files.DATASET, files.COMMITMENTS, files.PROOFS, files.EVALUATIONS, files.AUDIT, files.INITIAL_MODEL, files.FINAL_MODEL)
"""The run files ``pot-zk verify`` reads (those that exist are exported)."""
ZERO_KNOWLEDGE = ("zk-halo2", "zk-groth16")


@dataclass(frozen=True)
class Export:
    archive: Path
    head: str
    files: tuple[str, ...]
    """The run's files in the archive, relative to its directory (EXPORT.json not counted)."""
    ended: str | None = "completed"
    """How the run's training ended (its last ``run.end``'s status); None: no end recorded (it
    trains, or was stopped): verify fails such an export (review32: it was handed over as is)."""
    open_session: str | None = None
    """The command whose session the audit trail ends in, not closed (``respond``,
    ``prove-pending``: killed, or still running); verify fails such an export too (review53)."""


def exported_files(bundle: RunBundle) -> list[str]:
    """What of ``bundle`` goes into its export, relative to its root, sorted."""
    from pot_zk.backends.certificates import WITNESS

    chosen = {name for name in RECORDS if bundle.path(name).is_file()}
    root = bundle.root
    for record in bundle.proofs():
        if not record.get("proof"):
            continue
        proof = own_file(root, str(record["proof"]))  # as verify finds it (review39: export followed links)
        if isinstance(proof, str):
            continue  # verify reports it; there is nothing to copy
        chosen.add(proof.relative_to(root).as_posix())
        revealed = proof.parent / WITNESS
        if record.get("proof_type") not in ZERO_KNOWLEDGE and revealed.is_file() and not revealed.is_symlink():
            chosen.add(revealed.relative_to(root).as_posix())
    return sorted(chosen)


def default_archive(bundle: RunBundle, head: str) -> Path:
    return Path(f"{bundle.root.resolve().name}-{head[:16]}.tar.gz")


def export_run(run: Path, out: Path | None = None) -> Export:
    """Write ``run``'s export to ``out`` (default: ``RUNNAME-HEAD16.tar.gz`` in the current
    directory), atomically, holding the run's lock (RunInUseError while another process trains
    or proves in it). A run this process may not write to (another account's, or on a read-only
    file system) is exported under a shared lock instead: RunInUseError too while its owner
    trains in it."""
    bundle = RunBundle.open(Path(run))
    with ExitStack() as stack:
        try:
            stack.enter_context(RunLock(bundle.root, "pot-zk export"))
        except (PermissionError, StorageError):
            stack.enter_context(shared_lock(bundle.root))
        return _export(bundle, out)


def _export(bundle: RunBundle, out: Path | None) -> Export:
    head = commitment_head(bundle.manifest(), bundle.commitments())
    names = exported_files(bundle)
    out = Path(out) if out is not None else default_archive(bundle, head)
    if out.resolve() == bundle.root.resolve() or bundle.root.resolve() in out.resolve().parents:
        raise ConfigurationError(f"write the export outside the run directory, not to {out}", key="out")
    if out.is_dir():
        raise ConfigurationError(f"--out {out} is a directory; name the archive to write (e.g. {out / default_archive(bundle, head).name})", key="out")
    if not out.absolute().parent.is_dir():
        raise ConfigurationError(f"--out {out}: no such directory {out.absolute().parent}", key="out")
    contents = {name: bundle.path(name).read_bytes() for name in names}
    inventory = {
        "format": EXPORT_FORMAT,
        "commitment_head": head,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        "not_exported": "witnesses, checkpoint, config.yaml, parked jobs, stats.json, logs: nothing pot-zk verify reads (audit.jsonl's run.start and run.end carry the configuration and statistics)",
    }
    contents[EXPORT_MANIFEST] = (json.dumps(inventory, indent=2, sort_keys=True) + "\n").encode()
    top = bundle.root.resolve().name
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name in sorted(contents):
                archive.addfile(_member(f"{top}/{name}", len(contents[name])), io.BytesIO(contents[name]))
    if out.exists() and out.read_bytes() != packed.getvalue():
        if _exported_head(out) == head:  # review24: said "an export of another head" after a respond
            raise ConfigurationError(
                f"--out {out} holds an export with this run's commitment head and other records (an earlier export of this run, "
                "before respond or prove-pending added to it, or of a run trained the same way): name another archive, or remove it", key="out",
            )
        raise ConfigurationError(f"--out {out} exists and is not this export (another file, or an export of another head); remove it or name another archive", key="out")
    with atomic_path(out) as tmp:
        tmp.write_bytes(packed.getvalue())
    events = read_jsonl(bundle.path(files.AUDIT))
    ends = training_ends(events)
    return Export(out, head, tuple(names), ends[-1].get("status") if ends else None, open_session(events))



def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _exported_head(archive: Path) -> str | None:
    """The commitment head the EXPORT.json of an existing archive names (None: not an export)."""
    try:
        with tarfile.open(archive, "r:*") as opened:
            for member in opened.getmembers():
                if member.isfile() and member.name.endswith(f"/{EXPORT_MANIFEST}") and member.size < 1 << 20:
                    return json.loads(opened.extractfile(member).read()).get("commitment_head")
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError, AttributeError):
        return None
    return None


def is_export_archive(path: Path) -> bool:
    return Path(path).is_file() and tarfile.is_tarfile(path)


def _exportable(name: str) -> bool:
    """A member an export holds (review31: an archive's other files were unpacked too): RUN/X for
    a record verify reads or the inventory, or a file under RUN/proofs/ (no ``.`` or ``..`` in
    its path: review33 put RUN/proofs/../witness/... past the check)."""
    parts = PurePosixPath(name).parts
    if any(part in (".", "..") for part in parts):
        return False
    return (len(parts) == 2 and parts[1] in (*RECORDS, EXPORT_MANIFEST)) or (len(parts) > 2 and parts[1] == "proofs")


MAX_EXPANSION = 100
"""An export unpacks to at most this many times its archive's size (its records compress a few
times over, its models and proofs hardly) or :data:`MIN_UNPACKED_LIMIT`, whichever is more."""
MIN_UNPACKED_LIMIT = 64 << 20
MEMBER_BYTES = 4096
"""What each member counts at least against that limit: a directory or an empty file still takes
an inode and a block to unpack (review49: 200,000 directories under proofs/ in a 1 MB archive
unpacked to 771 MB and verified; a million empty members took minutes to list)."""


def _check_size(archive: Path, size: int, into: Path | None) -> None:
    """review31/33: a small archive of zeros unpacked to gigabytes on the verifier's disk; one
    that unpacks to far more than its records could (or to more than the free space in ``into``)
    is refused before a byte is written."""
    limit = max(MIN_UNPACKED_LIMIT, MAX_EXPANSION * Path(archive).stat().st_size)
    if size > limit:
        raise ConfigurationError(
            f"{archive} is not a pot-zk export: it unpacks to {size / 2**20:,.0f} MiB, over {MAX_EXPANSION} times its size "
            f"({limit / 2**20:,.0f} MiB)",
            key="run",
        )
    if into is None:
        return
    free = shutil.disk_usage(into).free
    if size > free:
        raise ConfigurationError(
            f"{archive} unpacks to {size / 2**20:,.0f} MiB, more than the {free / 2**20:,.0f} MiB free in {into}: unpack it where there is room "
            "and verify the directory (or set TMPDIR)",
            key="run",
        )


def _unpacked_size(members: list[tarfile.TarInfo]) -> int:
    return sum(max(member.size, MEMBER_BYTES) for member in members)


def _members(opened: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """The archive's members, read one header at a time: refused as :func:`_check_size` refuses
    as soon as they would unpack to more than the archive's limit, before the rest are listed."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in opened:
        members.append(member)
        total += max(member.size, MEMBER_BYTES)
        if total > MIN_UNPACKED_LIMIT:
            _check_size(archive, total, None)
    return members


def unpack_export(archive: Path, into: Path) -> Path:
    """Unpack an export into the directory ``into``; return the run directory in it.
    ConfigurationError when ``archive`` is not an export (a link, a device, a path that leaves
    ``into``, or no single run directory with a manifest)."""
    try:
        with tarfile.open(archive, "r:*") as opened:
            members = _members(opened, archive)
            tops = sorted({PurePosixPath(member.name).parts[0] for member in members if PurePosixPath(member.name).parts})
            if len(tops) > 1:
                raise ConfigurationError(f"{archive} is not a pot-zk export: it holds {', '.join(tops)}, not one run directory", key="run")
            for member in members:
                if not (member.isfile() or member.isdir()):
                    raise ConfigurationError(f"{archive} is not a pot-zk export: {member.name} is not a regular file", key="run")
                if member.isfile() and not _exportable(member.name):
                    raise ConfigurationError(f"{archive} is not a pot-zk export: it holds {member.name}, which an export does not", key="run")
            _check_size(archive, _unpacked_size(members), Path(into))
            opened.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:  # a truncated download: EOFError or zlib.error
        raise ConfigurationError(f"{archive} is not a readable pot-zk export: {error}", key="run") from error
    runs = [path.parent for path in Path(into).glob(f"*/{files.MANIFEST}")]
    if len(runs) != 1:
        raise ConfigurationError(f"{archive} is not a pot-zk export: it holds {len(runs)} run directories, not one", key="run")
    return runs[0]
