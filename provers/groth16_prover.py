"""``pot-zk-groth16-prover``: proves one SGD or LoRA step exactly with Groth16 (groth16py, circom 2).

Reads one protocol request (pot_zk.core.protocol) on stdin, prints one response on stdout. The
request's ``kind`` is ``"sgd"`` or ``"lora"``; its ``circuit`` a ``Groth16SgdSpec`` /
``Groth16LoraSpec.to_dict()`` (``backend`` ``"groth16"``); ``witness_path`` a step file written
by pot_zk.kinds.registry.save_training_step. Weights (for LoRA: base and adapters) must lie exactly on
the fixed-point grid (exact-mode training); batch values are rounded. ``options.keys_dir`` names a key directory made by someone else (e.g. the auditor);
without it the keys are cached under ``cache_dir`` and made here on first use (provenance
``dev``: this prover knows the trapdoor).

The program refuses, before any key work, a step whose W_t+1 (adapters after) is not exactly
the reference step (exit 65), and answers ok only with a proof that verifies under the key's own verifying key.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pot_zk.core import protocol
from pot_zk.core.prover_program import serve

PROVABLE_KINDS = ("sgd", "lora")


def _witness(spec: Any, step: Any) -> tuple[Any, ...]:
    """The step's integer tensors in the order the spec's prove function takes them, after
    checking the step is the spec's and W_t+1 (or the adapters after) is its exact step."""
    from pot_zk.backends.groth16 import exact
    from pot_zk.backends.groth16.prove import check_lora_witness, check_witness
    from pot_zk.exceptions import WitnessBuilderError

    if spec.kind == "lora":
        architecture = step.architecture
        found = {"dims": list(architecture.base.dims), "adapted": list(architecture.adapted), "rank": architecture.rank, "alpha": architecture.alpha}
        declared = {"dims": list(spec.dims), "adapted": list(spec.adapted), "rank": spec.rank, "alpha": spec.alpha}
    else:
        found, declared = {"dims": list(step.architecture.dims)}, {"dims": list(spec.dims)}
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


def _prove(request: dict[str, Any], keep_key_s: float = 0.0) -> protocol.ProverResponse:
    from pot_zk.backends.groth16 import keys
    from pot_zk.backends.groth16.lora_spec import Groth16LoraSpec
    from pot_zk.backends.groth16.prove import PROOF_TYPE, prove_lora_step, prove_sgd_step
    from pot_zk.backends.groth16.spec import Groth16SgdSpec
    from pot_zk.kinds.registry import load_training_step

    options = request.get("options") or {}
    spec = (Groth16LoraSpec if request["kind"] == "lora" else Groth16SgdSpec).from_dict(request["circuit"])
    tensors = _witness(spec, load_training_step(Path(request["witness_path"]), spec.kind))
    started = time.perf_counter()
    if options.get("keys_dir"):
        key_dir = keys.open_keys(spec, Path(options["keys_dir"]))
    else:
        key_dir = keys.ensure_keys(spec, Path(request["cache_dir"]))
    setup_s = time.perf_counter() - started
    proof = (prove_lora_step if spec.kind == "lora" else prove_sgd_step)(spec, key_dir, *tensors, keep_key_s=keep_key_s)
    paths = proof.write(Path(request["output_dir"]))
    return protocol.ProverResponse(
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
        },
        timings={"setup_s": setup_s, **proof.timings},
        sizes={"proof_bytes": len(proof.proof), "constraints": int(key_dir.record.get("constraints", {}).get("constraints") or 0)},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pot-zk-groth16-prover", description="reads one pot-zk-prover/1 request on stdin")
    parser.add_argument("--keep-key-s", type=float, default=0.0, help="keep the proving key loaded in a key holder this long after its last proof (0: load it here)")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    serve(PROVABLE_KINDS, lambda request: _prove(request, options.keep_key_s), backend="groth16")


if __name__ == "__main__":
    main()
