"""The prover backends and the proof types, by name.

``BACKENDS`` maps ``prover.backend`` (``ezkl``, ``groth16``) to its :class:`~pot_zk.backends.base.ProverBackend`;
``PROOF_TYPES`` maps every proof type a bundle may hold to what verifies it: each backend's
(``zk-halo2``, ``zk-groth16``) and the non-ZK certificates (``freivalds``, ``reexec``), which also prove
in-process and so may stand in a fallback chain. A new backend is one subpackage, one line in
each table and ``conf/prover/<name>.yaml`` (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from pot_zk.core.registry import Registry
from pot_zk.exceptions import ConfigurationError

if TYPE_CHECKING:  # the tables name their implementations: importing them costs nothing (no torch)
    from pot_zk.backends.base import CommitmentScheme, ProverBackend, StepVerifier
    from pot_zk.kinds.base import BatchStep
    from pot_zk.kinds.encoding import StepCommitment

BACKENDS: Registry[ProverBackend] = Registry(
    "prover backend",
    "prover.backend",
    {
        "ezkl": "pot_zk.backends.ezkl.backend:EZKL",
        "groth16": "pot_zk.backends.groth16.backend:GROTH16",
    },
)

PROOF_TYPES: Registry[StepVerifier] = Registry(
    "proof type",
    "proof_type",
    {
        "zk-halo2": "pot_zk.backends.ezkl.backend:EZKL",
        "zk-groth16": "pot_zk.backends.groth16.backend:GROTH16",
        "freivalds": "pot_zk.backends.certificates.freivalds:FREIVALDS",
        "reexec": "pot_zk.backends.certificates.reexec:REEXEC",
    },
)

LEGACY_BACKEND = "ezkl"
"""The backend of spec dicts without a ``backend`` field (the ezkl check specs predate it, and
adding it would change their circuit ids)."""


def spec_from_dict(data: Mapping[str, Any]) -> Any:
    """The circuit spec a ``to_dict()`` came from: its backend's, then its kind's.
    ConfigurationError for anything else (review51: ``null``, a ``batch_size`` of inf, empty
    ``dims`` raised AttributeError, OverflowError, IndexError)."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"malformed circuit spec: {str(data)[:80]} is not an object", key="circuit")
    try:
        return BACKENDS.get(str(data.get("backend", LEGACY_BACKEND))).spec_from_dict(data)
    except ConfigurationError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise ConfigurationError(f"malformed circuit spec: {type(exc).__name__}: {str(exc)[:200]}", key="circuit") from exc


def backend_of(spec: Any) -> ProverBackend:
    return BACKENDS.get(spec.backend)


def commitments_of(spec: Any) -> CommitmentScheme:
    """The commitment scheme the circuit of ``spec`` exposes."""
    return backend_of(spec).commitments(spec)


def commit_step(step: BatchStep, spec: Any) -> StepCommitment:
    """Commitments of a step's canonical encoding under ``spec``'s scheme (for a LoRA step,
    of the adapters and the frozen base)."""
    from pot_zk.kinds.encoding import StepCommitment
    from pot_zk.kinds.registry import kind_of

    scheme = commitments_of(spec)
    return StepCommitment(scale=spec.scale, **{x.name: scheme.tensor(x.name).commit(x.values, x.label) for x in kind_of(step).encode(step)})
