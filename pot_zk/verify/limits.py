"""What verify makes from sizes the trainer declared, bounded by the auditor
(``pot-zk verify --max-data-values``): the initial model of the declared architecture (built
from the training seed and committed), a synthetic data set (made from its declared sample
count), and the held-out choice (a permutation of the declared ``of`` positions). Above the
limit verify makes none of them and stops with one finding (review47, review49: a declared
size drove verify's time and memory; 36M parameters took minutes, 10**10 a 40 GB allocation).
``pot-zk verify --max-records`` bounds the records verify reads in the same way
(:func:`too_many_records`: review49, two million ``{}`` lines took 47 s and 2.9 GB), counted as
lines before one is parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from pot_zk.kinds.registry import STEP_KINDS

MAX_DATA_VALUES = 10_000_000
"""The default of ``pot-zk verify --max-data-values``. Measured: ~40 us of verify per value of
a synthetic set (its batch commitments and sample root) and ~6 us per model parameter (built and
committed), so the default is minutes of work; a larger run needs the auditor's own limit."""
MAX_RECORDS = 10_000_000
"""The default of ``pot-zk verify --max-records``, per JSON-lines file of the bundle. Measured:
~14 us and ~250 bytes of verify per record (two million malformed ones: 28 s, 0.5 GB), so the
default is minutes of work; an honest run writes a few records per step."""


def too_large(manifest: Mapping[str, Any], spec: Any, limit: int) -> tuple[str, str, str] | None:
    """(check, reason, message) when something the manifest declares is larger than ``limit``
    values, else None: the statement's model (its parameters), then a synthetic set's
    ``num_samples`` times the model's inputs and outputs, then the held-out choice's ``of``
    positions (whatever the data set: a loop's own data is never made)."""
    dims = STEP_KINDS.get(spec.kind).mlp(spec.architecture).dims
    parameters = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(dims, dims[1:]))
    if parameters > limit:
        return "statement", "statement-too-large", _message(f"a model of {parameters:,} parameters (dims {list(dims)})", limit, "model")
    dataset = manifest.get("dataset")
    if not isinstance(dataset, Mapping):
        return None
    holdout = dataset.get("holdout") if isinstance(dataset.get("holdout"), Mapping) else {}
    width = dims[0] + dims[-1]
    samples = _count(dataset.get("num_samples")) if dataset.get("name") == "synthetic" else None
    positions = _count(holdout.get("of"))
    if samples is not None and samples * width > limit:
        said = f"a synthetic data set of {samples:,} samples ({samples * width:,} values with the model's {dims[0]} inputs and {dims[-1]} outputs)"
    elif positions is not None and positions > limit:
        said = f"a held-out set chosen among {positions:,} positions"
    else:
        return None
    return "dataset-root", "dataset-too-large", _message(said, limit, "data set")


def too_many_records(paths: Iterable[Path], limit: int) -> tuple[str, str, str] | None:
    """(check, reason, message) when one of the JSON-lines files ``paths`` has more lines than
    ``limit`` (an upper bound of its records), else None."""
    for path in paths:
        lines = _lines(path, limit)
        if lines > limit:
            return (
                "steps", "too-many-records",
                f"{path.name} has more than {limit:,} lines, more records than verify reads: verify read none of them and checked "
                "nothing after the statement; if the run has that many, rerun with a larger --max-records",
            )
    return None


def _lines(path: Path, limit: int) -> int:
    """The lines of ``path`` (a missing file has none), counted up to one past ``limit``."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return 0
    lines, last = 0, b"\n"
    with handle:
        while lines <= limit and (chunk := handle.read(1 << 20)):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _message(said: str, limit: int, what: str) -> str:
    return (
        f"the manifest declares {said}, above the {limit:,} values verify makes: the trainer chose that size, so verify did not "
        f"make it and checked nothing after the statement; if you agreed on a {what} that large, rerun with a larger --max-data-values"
    )


def _count(value: Any) -> int | None:
    """A declared count as the loaders would read it (``int()`` of an int, float or digits), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return int(value)
    except (ValueError, OverflowError):
        return None
