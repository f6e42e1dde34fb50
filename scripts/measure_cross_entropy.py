"""Measure how far ezkl's cross-entropy check graph is from the exact step (docs/proofs.md).

Trains the digits classifier (16-8-10, softmax cross-entropy, plain SGD or with momentum) in
float, captures steps spread over the run, and for each runs the zk-halo2 circuit's witness
generation on the step's grid values (no proof: the witness is what the proof commits to).
Reported per step, in ulps of 2**-scale: the circuit's residual (what the verifier compares
with the tolerance), the circuit's output against the float64 reference on the same grid
values (the approximation error of ezkl's fixed point, softmax exp table and reciprocal),
and the widest spread of a row's logits (each logit minus its row's largest is clamped to
[-EXP_RANGE, 0], the exp table's range).

    python scripts/measure_cross_entropy.py --epochs 3 --steps 12 [--momentum 0.9] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.backends.ezkl import halo2
from pot_zk.kinds.registry import capture_step
from pot_zk.kinds.losses import EXP_RANGE
from pot_zk.kinds.mlp import MlpArchitecture, backprop
from pot_zk.data.datasets import fixed_batches, load_dataset, split_holdout


def _logit_spread(spec, inputs: list[torch.Tensor]) -> float:
    params, x, _ = spec.unpack(inputs[0].reshape(1, -1), inputs[1].reshape(1, -1))
    logits = backprop(params, x, torch.zeros(x.shape[0]), loss="cross_entropy").pre[-1]
    return float((logits.max(dim=1).values - logits.min(dim=1).values).max())


def measure(epochs: int, samples: int, lr: float, momentum: float, batch: int, cache: Path) -> dict:
    architecture = MlpArchitecture((16, 8, 10), loss="cross_entropy")
    inputs, labels = load_dataset("digits", 16, 10, 0, 0, "cross_entropy")
    inputs, labels, _ = split_holdout(inputs, labels, 0.2, 0)
    batches = fixed_batches(inputs, labels, batch, 0)
    torch.manual_seed(0)
    model = architecture.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    total = epochs * len(batches)
    chosen = {round(i * (total - 1) / max(samples - 1, 1)) for i in range(samples)}
    rows, circuit = [], None
    for index in range(total):
        b = batches[torch.randperm(len(batches), generator=torch.Generator().manual_seed(index // len(batches)))[index % len(batches)]]
        step = capture_step(model, optimizer, b.inputs, b.targets)
        if index not in chosen:
            continue
        spec = EZKL.statement_for_step(step)
        circuit = circuit or halo2.compiled_circuit(spec, cache)
        grid = [halo2._grid(x.values, spec.scale, spec.value_bound, x.label) for x in spec.encode(step)]
        tensors = [torch.tensor(x, dtype=torch.float64) for x in grid]
        srs = ezkl_adapter.dev_srs(cache, circuit.logrows)
        with tempfile.TemporaryDirectory() as scratch:
            witness = json.loads(ezkl_adapter.gen_witness(circuit, grid, srs, Path(scratch)).read_text())
        scale_out = halo2.residual_scale(circuit)
        residual = torch.tensor([ezkl_adapter.felt_to_int(f) for f in witness["outputs"][0]], dtype=torch.float64) / 2.0**scale_out
        reference = spec.reference_output(tensors)
        ulp = 2.0**spec.scale
        rows.append({
            "step": index,
            "loss": step.loss,
            "circuit_residual_ulps": float(residual.abs().max()) * ulp,
            "circuit_vs_reference_ulps": float((residual - reference).abs().max()) * ulp,
            "reference_residual_ulps": float(reference.abs().max()) * ulp,
            "logit_spread": _logit_spread(spec, tensors),
        })
        print(json.dumps(rows[-1]))
    return {
        "model": "16-8-10 digits, cross_entropy",
        "batch": batch, "learning_rate": lr, "momentum": momentum, "epochs": epochs, "exp_range": EXP_RANGE,
        "logrows": circuit.logrows if circuit else None,
        "worst_circuit_residual_ulps": max(r["circuit_residual_ulps"] for r in rows),
        "worst_circuit_vs_reference_ulps": max(r["circuit_vs_reference_ulps"] for r in rows),
        "widest_logit_spread": max(r["logit_spread"] for r in rows),
        "machine": platform.machine(),
        "steps": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="how many steps (spread over the run) to measure")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pot-zk-measure-ce")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.epochs, args.steps, args.lr, args.momentum, args.batch, args.cache)
    summary = {k: v for k, v in result.items() if k != "steps"}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
