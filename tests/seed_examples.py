"""The seed's two documented usage examples, verbatim but for the import path (``pot.zk`` ->
``pot_zk``) and trailing whitespace, and a tiny training step for them to run on."""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch

from pot_zk.exceptions import InvalidModelStateError, ProverNotFoundError, RetryExhaustedError

SEED_AUTO_PROVER = '''from pot.zk.auto_prover import auto_prove_training_step

try:
    result = auto_prove_training_step(
        model_before, model_after, batch_data, 0.01
    )
    print(f"Proof generated: {result['proof_type']}")

except ProverNotFoundError as e:
    logger.error(f"Install prover binary: {e.binary_name}")

except InvalidModelStateError as e:
    logger.error(f"Fix model format: {e}")

except RetryExhaustedError as e:
    logger.error(f"Persistent failure: {e.last_error}")
'''.replace("pot.zk", "pot_zk")

SEED_AUDITOR_INTEGRATION = '''from pot.zk.auditor_integration import create_zk_integration

# Development mode: continue on failures
zk_integration = create_zk_integration(
    enabled=True,
    failure_action="continue",
    max_retries=3
)

# Generate proof with error handling
result = zk_integration.generate_training_proof(
    model_before, model_after, batch_data, 0.01, step=1, epoch=1
)

# Check statistics
stats = zk_integration.get_stats()
print(f"Success rate: {stats['success_rate']:.1%}")
'''.replace("pot.zk", "pot_zk")

SEED_SGD_FALLBACK = """try:
    auto_prover = AutoProver(lora_config=self.lora_config)
    result = auto_prover.prove_sgd_step(...)
    return result['proof'], result['proof_type']
except Exception as e:
    raise ProofGenerationError(f"SGD fallback failed: {e}")
"""
"""The seed's "Fixed SGD fallback" snippet: the body of a method of its core prover."""

LEARNING_RATE = 0.01


def seed_namespace(seed: int = 0) -> dict[str, Any]:
    """What the seed's examples expect to exist: one SGD step of a tiny MLP (``model_before``,
    ``model_after``, ``batch_data`` in the seed's dictionary form), ``logger`` and the errors."""
    torch.manual_seed(seed)
    model_after = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model_before = copy.deepcopy(model_after)
    batch_data = {"inputs": torch.rand(2, 4) * 2 - 1, "targets": torch.rand(2, 2) - 0.5}
    optimizer = torch.optim.SGD(model_after.parameters(), lr=LEARNING_RATE)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model_after(batch_data["inputs"]), batch_data["targets"]).backward()
    optimizer.step()
    return {
        "model_before": model_before,
        "model_after": model_after,
        "batch_data": batch_data,
        "logger": logging.getLogger("training"),
        "ProverNotFoundError": ProverNotFoundError,
        "InvalidModelStateError": InvalidModelStateError,
        "RetryExhaustedError": RetryExhaustedError,
    }


def run_example(source: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(source, "<seed example>", "exec"), namespace)
    return namespace


def sgd_fallback_method(arguments: str = "model_before, model_after, batch_data, learning_rate") -> Any:
    """SEED_SGD_FALLBACK as the method it is written for, with ``...`` the call's arguments and
    the names it uses imported as ``pot_zk``'s: ``method(self, model_before, model_after,
    batch_data, learning_rate)``."""
    body = "".join(f"    {line}\n" for line in SEED_SGD_FALLBACK.replace("(...)", f"({arguments})").splitlines())
    source = (
        "from pot_zk.auto_prover import AutoProver\n"
        "from pot_zk.exceptions import ProofGenerationError\n"
        f"def fallback(self, {arguments}):\n{body}"
    )
    return run_example(source, {})["fallback"]
