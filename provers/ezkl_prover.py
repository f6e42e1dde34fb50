"""``pot-zk-ezkl-prover``: proves one SGD or LoRA step with ezkl (Halo2 + KZG).

Reads one protocol request (pot_zk.core.protocol) on stdin, prints one response on stdout. The
request's ``kind`` is ``"sgd"`` or ``"lora"``; its ``circuit`` the matching circuit spec dict
(SgdCircuitSpec / LoraCircuitSpec); ``witness_path`` a step file written by
pot_zk.kinds.registry.save_training_step; ``options.srs_path`` an SRS file (provenance ``configured``), absent
for the cached locally generated dev SRS (provenance ``dev-srs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pot_zk.core import protocol
from pot_zk.core.prover_program import serve

PROVABLE_KINDS = ("sgd", "lora")


def _prove(request: dict[str, Any]) -> protocol.ProverResponse:
    from pot_zk.backends.ezkl import adapter as ezkl_adapter
    from pot_zk.backends.ezkl import halo2
    from pot_zk.kinds.registry import check_spec_from_dict, load_training_step

    options = request.get("options") or {}
    spec = check_spec_from_dict(request["circuit"])
    step = load_training_step(Path(request["witness_path"]), spec.kind)
    cache_dir = Path(request["cache_dir"])
    srs = None
    if options.get("srs_path"):
        circuit = halo2.compiled_circuit(spec, cache_dir)
        srs = ezkl_adapter.configured_srs(Path(options["srs_path"]), circuit.logrows)
    proof = halo2.prove_step(step, spec, cache_dir, srs, Path(request["output_dir"]))
    return protocol.ProverResponse(
        proof_type=halo2.PROOF_TYPE,
        artifacts={"proof": str(proof.proof_path)},
        public={
            "commitment": proof.commitment.to_dict(),
            "circuit_id": proof.circuit_id,
            "srs": {"provenance": proof.srs.provenance, "sha256": proof.srs.sha256, "logrows": proof.srs.logrows},
        },
        timings=proof.timings,
        sizes={"proof_bytes": proof.proof_path.stat().st_size},
    )


def main() -> None:
    serve(PROVABLE_KINDS, _prove)


if __name__ == "__main__":
    main()
