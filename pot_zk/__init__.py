"""pot-zk: verifiable neural-network training with zero-knowledge proofs of each SGD step.

The seed's names below are imported on first use (PEP 562), so importing one subpackage --
``pot_zk.verify``, the auditor's core -- does not load the trainer's modules."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ProofFailureAction": "pot_zk.auditor_integration",
    "ZkIntegration": "pot_zk.auditor_integration",
    "create_zk_integration": "pot_zk.auditor_integration",
    "AutoProver": "pot_zk.auto_prover",
    "auto_prove_training_step": "pot_zk.auto_prover",
    "PotZkError": "pot_zk.exceptions",
    "ProofResult": "pot_zk.proving.pipeline",
    "ProvingPipeline": "pot_zk.proving.pipeline",
    "ProverRequest": "pot_zk.core.protocol",
    "StepProof": "pot_zk.step_proof",
    "track": "pot_zk.runs.track",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pot_zk' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
