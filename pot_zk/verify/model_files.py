"""A bundle's model file read as the declared architecture's, or not read at all (review49: a
``[3, 4000000]`` tensor in place of a ``[3, 4]`` weight was loaded and committed, 82 s and 1 GB;
200,000 empty tensors took 17 s to load and put torch's 2 MB error message into the report).

Before verify loads a model file's tensors it reads the file's header alone: the file must hold
as many tensors, of as many values in all and of the same sizes, as a model of the declared
architecture has (:func:`header_problem`). The names and shapes are checked when the tensors are
taken apart (:func:`pot_zk.kinds.mlp.flatten`)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from pot_zk.kinds.registry import STEP_KINDS

MESSAGE_CHARACTERS = 300
"""What of a library's error message about a model file goes into the report."""


def header_problem(path: Path, spec: Any) -> str | None:
    """Why the safetensors file ``path`` cannot hold a model of ``spec``'s architecture, from its
    header alone (None: it may; a file that cannot be opened is the loader's to report)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            sizes = Counter(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    except Exception:  # noqa: BLE001 -- a missing or foreign file: loading it says so
        return None
    wanted = Counter(math.prod(shape) for _, shape in STEP_KINDS.get(spec.kind).file_shapes(spec.architecture))
    if sizes == wanted:
        return None
    return (
        f"{path.name} holds {sum(sizes.values()):,} tensors of {sum(n * c for n, c in sizes.items()):,} values; a model of the declared "
        f"architecture has {sum(wanted.values()):,} tensors of {sum(n * c for n, c in wanted.items()):,} values (its tensors were not read)"
    )


def short(exc: BaseException) -> str:
    """A library's error message on one line, cut to :data:`MESSAGE_CHARACTERS`."""
    text = " ".join(str(exc).split())
    return text if len(text) <= MESSAGE_CHARACTERS else text[:MESSAGE_CHARACTERS] + " ..."


def loaded(path: Path, spec: Any, load_model: Callable) -> dict | str:
    """The tensors of the model file ``path`` when its header fits ``spec`` and it loads; else why not."""
    problem = header_problem(path, spec)
    if problem is not None:
        return problem
    try:
        return load_model(path)[0]
    except Exception as exc:  # noqa: BLE001 -- a missing, truncated or foreign file all mean: no usable model
        return f"{path.name} is missing or unreadable ({short(exc)})"
