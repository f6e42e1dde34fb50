"""Measure the zk-halo2 proof of one LoRA step next to the full SGD step of the same layer.

One linear layer d_in -> d_out (MSE loss, batch N): the SGD circuit checks the update of W, b;
the LoRA circuit (rank r, alpha 2r) checks the update of A, B with W0, b0 hashed. Each circuit
is compiled and its keys generated in a fresh cache (reported as setup), then one honest step
is proven and verified in-process.

    python scripts/measure_lora.py --d-in 8 --d-out 8 --rank 2 --batch 4
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.backends.ezkl import halo2
from pot_zk.kinds.lora.step import attach_lora
from pot_zk.kinds.lora.capture import capture_lora_step
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.sgd.step import capture_sgd_step


def _steps(d_in: int, d_out: int, rank: int, batch: int):
    architecture = MlpArchitecture((d_in, d_out))
    torch.manual_seed(0)
    inputs, targets = torch.randn(batch, d_in), torch.randn(batch, d_out)
    model = architecture.build()
    sgd = capture_sgd_step(model, torch.optim.SGD(model.parameters(), lr=0.1), inputs, targets)
    lora_model = attach_lora(architecture.build(), (0,), rank=rank, alpha=2.0 * rank)
    with torch.no_grad():
        lora_model[0].lora_B.normal_(0.0, 0.5)
    optimizer = torch.optim.SGD([p for p in lora_model.parameters() if p.requires_grad], lr=0.1)
    return {"sgd": sgd, "lora": capture_lora_step(lora_model, optimizer, inputs, targets)}


def measure(step, work: Path) -> dict:
    spec = EZKL.statement_for_step(step)
    cache = work / "cache"
    started = time.perf_counter()
    circuit = halo2.compiled_circuit(spec, cache)
    srs = ezkl_adapter.dev_srs(cache, circuit.logrows)
    ezkl_adapter.ensure_keys(circuit, srs)
    setup_s = time.perf_counter() - started
    proof = halo2.prove_step(step, spec, cache, srs, work / "proof")
    started = time.perf_counter()
    halo2.verify_step_proof(spec, proof.commitment, proof.proof_path, cache, srs)
    verify_s = time.perf_counter() - started
    return {
        "trained_params": spec.num_outputs,
        "public_values": len(spec.input_names) + spec.num_outputs,
        "logrows": circuit.logrows,
        "setup_s": round(setup_s, 2),
        "prove_s": round(proof.timings["witness_s"] + proof.timings["prove_s"], 2),
        "verify_s": round(verify_s, 3),
        "proof_bytes": proof.proof_path.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-in", type=int, default=8)
    parser.add_argument("--d-out", type=int, default=8)
    parser.add_argument("--rank", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    steps = _steps(args.d_in, args.d_out, args.rank, args.batch)
    report = {"layer": [args.d_in, args.d_out], "rank": args.rank, "batch": args.batch}
    report["machine"] = f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.python_version()}"
    for kind, step in steps.items():
        with tempfile.TemporaryDirectory(prefix=f"measure-{kind}-") as work:
            report[kind] = measure(step, Path(work))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
