"""The ``prove`` of a backend's prover program: one protocol request answered by
:meth:`~pot_zk.backends.base.ProverBackend.prove`.

A prover program (``provers/ezkl_prover.py``) is ``serve(KINDS, prove)`` of
:mod:`pot_zk.core.prover_program` (stdout kept for the response, request checks, exit codes),
with ``prove = lambda request: prove_request("<backend>", request)``. Importing this module
imports nothing heavy; the backend is imported when the first request has parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pot_zk.core.protocol import ProverResponse


def prove_request(backend_name: str, request: Mapping[str, Any]) -> ProverResponse:
    """Prove the request's step with the backend ``backend_name``: its spec from the request's
    circuit dict, the step from the witness file (of the spec's kind)."""
    from pot_zk.backends.registry import BACKENDS
    from pot_zk.kinds.registry import load_training_step

    backend = BACKENDS.get(backend_name)
    spec = backend.spec_from_dict(request["circuit"])
    step = load_training_step(Path(request["witness_path"]), spec.kind)
    return backend.prove(spec, step, Path(request["cache_dir"]), Path(request["output_dir"]), request.get("options") or {})
