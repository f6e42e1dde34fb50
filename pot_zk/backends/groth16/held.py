"""zk-groth16 proving keys held in memory by a long-lived process other than the key holder of
:mod:`~pot_zk.backends.groth16.warm`: a Dask worker (``executor=dask``,
:mod:`pot_zk.proving.dask_worker`).

Each key is opened (for dev keys: set up once, cached under ``cache_dir``) and loaded
(:func:`~pot_zk.backends.groth16.prove.load_key`: proving key and witness program) on the first
request for its circuit and key location (``options.keys_dir``, else ``cache_dir``: a path the
workers read, on a shared file system for a cluster), and every later request for them is
proven with it, as the prover program would prove it
(:func:`~pot_zk.backends.groth16.request.prove_request`: witness check, proof, verification
with the key's own verifying key). The response says so: ``public.prover.key_loaded_at`` (when
this process loaded the key it proved with) and, for the request that loaded it,
``timings.key_load_s``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.groth16.keys import KeyDirectory
from pot_zk.backends.groth16.prove import LoadedKey, load_key
from pot_zk.backends.groth16.request import keys_of, prove_request, spec_of
from pot_zk.core.protocol import ProverResponse


def key_location(request: Mapping[str, Any]) -> Path:
    """Where the request's key lives: ``options.keys_dir`` (named keys), else its ``cache_dir``."""
    return Path((request.get("options") or {}).get("keys_dir") or request["cache_dir"]).resolve()


@dataclass(frozen=True)
class HeldKey:
    """One key directory's proving key, loaded in this process."""

    key_dir: KeyDirectory
    key: LoadedKey
    loaded_at: float
    load_s: float

    @classmethod
    def load(cls, request: Mapping[str, Any]) -> "HeldKey":
        loaded_at, started = time.time(), time.perf_counter()
        key_dir = keys_of(spec_of(dict(request)), dict(request))
        return cls(key_dir, load_key(key_dir), loaded_at, time.perf_counter() - started)


class HeldKeys:
    """The keys this process holds, by circuit id and key location: each loaded once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, Path], HeldKey] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def prove(self, request: Mapping[str, Any]) -> ProverResponse:
        """Prove one protocol request (already parsed and checked) with its key, loading it first
        if this process does not hold it yet."""
        slot = (spec_of(dict(request)).circuit_id(), key_location(request))
        with self._lock:
            held = self._keys.get(slot)
            loaded_now = held is None
            if held is None:
                held = self._keys[slot] = HeldKey.load(request)
        response = prove_request(dict(request), key_dir=held.key_dir, key=held.key)
        prover = {**(response.public.get("prover") or {}), "key_loaded_at": held.loaded_at}
        timings = {**response.timings, "key_load_s": held.load_s} if loaded_now else response.timings
        return dataclasses.replace(response, public={**response.public, "prover": prover}, timings=timings)
