"""One ``pot-zk-prover/1`` request answered with a zk-groth16 proof (docs/groth16.md): what the
prover program ``pot-zk-groth16-prover`` does, in its own process or in a key holder
(:mod:`pot_zk.backends.groth16.warm`).

The request's ``circuit`` is a ``Groth16SgdSpec`` / ``Groth16LoraSpec.to_dict()``; its
``witness_path`` a step file (``save_training_step``) whose weights (for LoRA: base and
adapters) lie exactly on the grid (exact-mode training); batch values are rounded.
``options.keys_dir`` names a key directory made by someone else (e.g. the auditor, provenance
``auditor``); without it the keys are cached under ``cache_dir`` and made on first use
(provenance ``dev``: this prover knows the trapdoor). A step whose W_t+1 (adapters after) is
not exactly the reference step is refused before any key work (WitnessBuilderError), and the
answer is ok only with a proof that verifies under the key's own verifying key.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from pot_zk.backends.groth16 import exact, keys
from pot_zk.backends.groth16.lora_spec import Groth16LoraSpec, Groth16Spec
from pot_zk.backends.groth16.prove import PROOF_TYPE, LoadedKey, check_lora_witness, check_witness, prove_lora_step, prove_sgd_step
from pot_zk.backends.groth16.spec import Groth16SgdSpec
from pot_zk.core.protocol import ProverResponse
from pot_zk.exceptions import WitnessBuilderError

PROVABLE_KINDS = ("sgd", "lora")


def spec_of(request: dict[str, Any]) -> Groth16Spec:
    return (Groth16LoraSpec if request["kind"] == "lora" else Groth16SgdSpec).from_dict(request["circuit"])


def keys_of(spec: Groth16Spec, request: dict[str, Any]) -> keys.KeyDirectory:
    """The request's key directory (``options.keys_dir``), else the cached dev keys (made now if missing)."""
    options = request.get("options") or {}
    if options.get("keys_dir"):
        return keys.open_keys(spec, Path(options["keys_dir"]))
    return keys.ensure_keys(spec, Path(request["cache_dir"]))


def prove_request(request: dict[str, Any], *, key_dir: keys.KeyDirectory | None = None, key: LoadedKey | None = None) -> ProverResponse:
    """Prove the request's step; ``key_dir`` and ``key``: keys already opened and loaded (a key holder's)."""
    from pot_zk.kinds.registry import load_training_step

    spec = spec_of(request)
    step = load_training_step(Path(request["witness_path"]), spec.kind)
    started = time.perf_counter()
    tensors = witness_tensors(spec, step)
    checked_s = time.perf_counter() - started
    started = time.perf_counter()
    key_dir = key_dir or keys_of(spec, request)
    return prove_tensors(spec, tensors, key_dir, Path(request["output_dir"]), key=key, setup_s=time.perf_counter() - started, checked_s=checked_s)


def prove_tensors(
    spec: Groth16Spec,
    tensors: tuple[Any, ...],
    key_dir: keys.KeyDirectory,
    out_dir: Path,
    *,
    key: LoadedKey | None = None,
    setup_s: float = 0.0,
    checked_s: float = 0.0,
) -> ProverResponse:
    """Prove checked integer tensors (:func:`witness_tensors`) with ``key_dir``; write the proof into ``out_dir``."""
    began_at = time.time()
    proof = (prove_lora_step if spec.kind == "lora" else prove_sgd_step)(spec, key_dir, *tensors, key=key)
    paths = proof.write(Path(out_dir))
    prover = {
        "witness_engine": proof.witness_engine,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "began_at": began_at,
        "ended_at": time.time(),
    }
    return ProverResponse(
        proof_type=PROOF_TYPE,
        artifacts={name: str(path) for name, path in paths.items()},
        public={
            "commitment": {**proof.commitments.to_dict(), "scale": spec.scale},
            "circuit_id": proof.circuit_id,
            "keys": {
                "provenance": key_dir.provenance,
                "directory": str(key_dir.path),
                "vk_sha256": key_dir.record.get("vk_sha256"),
                "created": key_dir.created,
            },
            "prover": prover,
        },
        timings={"setup_s": setup_s, "step_check_s": checked_s, **proof.timings},
        sizes={"proof_bytes": len(proof.proof), "constraints": int(key_dir.record.get("constraints", {}).get("constraints") or 0)},
    )


def witness_tensors(spec: Groth16Spec, step: Any) -> tuple[Any, ...]:
    """The step's integer tensors in the order the spec's prove function takes them, after
    checking the step is the spec's and W_t+1 (or the adapters after) is its exact step."""
    if spec.kind == "lora":
        architecture = step.architecture
        found = {"dims": list(architecture.base.dims), "adapted": list(architecture.adapted), "rank": architecture.rank, "alpha": architecture.alpha}
        declared = {"dims": list(spec.dims), "adapted": list(spec.adapted), "rank": spec.rank, "alpha": spec.alpha}
    else:
        found = {"dims": list(step.architecture.dims), "loss": step.architecture.loss}
        declared = {"dims": list(spec.dims), "loss": spec.loss}
    found.update(batch_size=step.batch_size, learning_rate=step.learning_rate)
    declared.update(batch_size=spec.batch_size, learning_rate=spec.learning_rate)
    if found != declared:
        raise WitnessBuilderError("the step does not match the circuit spec", expected=declared, actual=found)
    bits, scale = spec.value_bits, spec.scale
    x = exact.quantise_batch(step.inputs.numpy(), scale, bits, "batch inputs X").reshape(step.inputs.shape)
    y = exact.quantise_batch(step.targets.numpy(), scale, bits, "batch targets Y").reshape(step.targets.shape)
    what = "adapters" if spec.kind == "lora" else "weights"
    before = exact.quantise_weights(step.flat_before().numpy(), scale, bits, f"{what} before the step")
    after = exact.quantise_weights(step.flat_after().numpy(), scale, bits, f"{what} after the step")
    if spec.kind == "lora":
        base = exact.quantise_weights(step.flat_base().numpy(), scale, bits, "base weights")
        check_lora_witness(spec, base, before, x, y, after)
        return base, before, x, y, after
    check_witness(spec, before, x, y, after)
    return before, x, y, after
