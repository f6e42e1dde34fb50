"""Measure zk-groth16 on one SGD statement: constraints, setup, prove, verify, proof size, peak RSS.

    python scripts/bench_groth16.py --dims 16 8 10 --batch 8 --cache /tmp/g16-bench
    python scripts/bench_groth16.py --dims 16 8 10 --batch 8 --adapted 0 1 --rank 2 --alpha 4 --cache /tmp/g16-bench
    python scripts/bench_groth16.py --dims 16 8 10 --batch 8 --lr 0.3 --loss cross_entropy --cache /tmp/g16-bench

Each phase runs in its own child process so its peak RSS is its own. The step is a real one:
digits data (16 or 64 features, 10 classes) when the widths fit, random values otherwise,
torch's default initialisation snapped to the grid.

The prove phase also times the prove call both ways in the same process, ``--repeats`` times
each, alternating (``prove_call``): groth16py's ``prove`` (witness under wasmi, its interpreter)
and pot-zk's (witness under wasmtime, then ``prove_wtns``); ``witness_engine`` names the engine
the prover uses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _spec(args):
    from pot_zk.backends.groth16.lora.statement import Groth16LoraStatement
    from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement

    if args.adapted:
        return Groth16LoraStatement(tuple(args.dims), tuple(args.adapted), args.rank, args.alpha, args.batch, args.lr)
    return Groth16SgdStatement(tuple(args.dims), args.batch, args.lr, loss=args.loss)


def _step(spec):
    import torch

    from pot_zk.backends.groth16 import integers as exact

    torch.manual_seed(0)
    layers = []
    for fan_in, fan_out in zip(spec.dims, spec.dims[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    weights = np.concatenate([p.detach().double().numpy().reshape(-1) for p in torch.nn.Sequential(*layers[:-1]).parameters()])
    w = exact.quantise_batch(weights, spec.scale, spec.value_bits)
    if spec.dims[0] in (16, 64) and spec.dims[-1] == 10:
        from pot_zk.data.datasets import digits

        inputs, targets = digits(spec.dims[0], 10)
        x, y = inputs[: spec.batch_size].numpy(), targets[: spec.batch_size].numpy()
    else:
        rng = np.random.default_rng(0)
        x, y = rng.uniform(-1, 1, (spec.batch_size, spec.dims[0])), rng.normal(0, 1, (spec.batch_size, spec.dims[-1]))
    x = exact.quantise_batch(x, spec.scale, spec.value_bits).reshape(spec.batch_size, -1)
    if getattr(spec, "loss", "mse") == "cross_entropy":  # class labels k * 2**scale (one-hot rows: their argmax)
        labels = np.argmax(y, axis=1) if np.ndim(y) == 2 else np.asarray(y)
        y = labels.astype(np.int64) % spec.dims[-1] * 2**spec.scale
    else:
        y = exact.quantise_batch(y, spec.scale, spec.value_bits).reshape(spec.batch_size, -1)
    integers = {"w_before": w, "x": x, "y": y}
    if spec.kind == "lora":
        integers = {"base": w, "w_before": np.random.default_rng(1).integers(-512, 512, spec.num_adapter_params), "x": x, "y": y}
    return {**integers, **spec.exact_step(integers)}


def _prove_calls(key, key_dir, inputs: dict, commitments, repeats: int) -> dict:
    """Median CPU and wall seconds of the prove call with each witness engine, alternating."""
    from pot_zk.backends.groth16 import adapter
    from pot_zk.backends.groth16.prove import make_proof

    vk = key_dir.load_verifying_key()
    engines = {"wasmi": lambda: (adapter.prove(key.pk, inputs), {})}
    if key.witness.program is not None:
        engines["wasmtime"] = lambda: make_proof(key, inputs)
    samples: dict[str, list[dict]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, call in engines.items():
            cpu, wall = time.process_time(), time.perf_counter()
            proof, timings = call()
            sample = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, **timings}
            if adapter.verify(vk, proof, commitments.public_inputs()) != (True, None):
                raise SystemExit(f"the {name} proof does not verify")
            samples[name].append(sample)
    report = {name: {field: float(np.median([s[field] for s in runs])) for field in runs[0]} for name, runs in samples.items()}
    if "wasmtime" in report:
        report["cpu_ratio"] = report["wasmi"]["cpu_s"] / report["wasmtime"]["cpu_s"]
    return {"repeats": repeats, **report}


def _phase(args) -> dict:
    from pot_zk.backends.groth16 import keys
    from pot_zk.backends.groth16.prove import LoadedKey, prove_step
    from pot_zk.backends.groth16.verify import verify_groth16
    from pot_zk.backends.groth16.witness import witness_engine

    spec = _spec(args)
    result: dict = {}
    cpu_started = time.process_time()
    if args.phase == "setup":
        key_dir = keys.ensure_keys(spec, Path(args.cache))
        result = {
            "created": key_dir.created,
            "setup_s": key_dir.record["setup_s"],
            **key_dir.record["constraints"],
            "pk_bytes": (key_dir.path / "pk.bin").stat().st_size,
        }
    elif args.phase == "prove":
        key_dir = keys.ensure_keys(spec, Path(args.cache))
        integers = _step(spec)
        cpu = time.process_time()
        pk = key_dir.load_proving_key()
        result["key_load_cpu_s"] = time.process_time() - cpu
        cpu = time.process_time()
        key = LoadedKey(pk, witness_engine(key_dir.path / "pk.bin"))
        result["witness_compile_cpu_s"] = time.process_time() - cpu
        result["witness_engine"] = key.witness.name
        started = time.perf_counter()
        cpu = time.process_time()
        proof = prove_step(spec, key_dir, integers, key=key)
        result["prove_step_cpu_s"] = time.process_time() - cpu  # checks, commitments, witness, proof, self-verify
        result.update({"total_s": time.perf_counter() - started, **proof.timings, "proof_bytes": len(proof.proof)})
        result["prove_call"] = _prove_calls(key, key_dir, spec.circuit_inputs(integers), spec.commitments(integers), args.repeats)
        proof.write(Path(args.cache) / "bench-proof")
        started = time.perf_counter()
        for _ in range(5):
            spec.commitments(integers)
        result["native_commit_s"] = (time.perf_counter() - started) / 5
    elif args.phase == "verify":
        vk = keys.load_verifying_key(spec, keys.key_directory(Path(args.cache), spec))
        proof = (Path(args.cache) / "bench-proof" / "proof.bin").read_bytes()
        held = json.loads((Path(args.cache) / "bench-proof" / "public.json").read_text())["commitments"]
        runs = 20
        started = time.perf_counter()
        verdicts = [verify_groth16(spec, proof, held, vk) for _ in range(runs)]
        result = {"verify_ms": (time.perf_counter() - started) / runs * 1000, "ok": all(v.ok for v in verdicts)}
    result["cpu_s"] = time.process_time() - cpu_started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--adapted", type=int, nargs="*", default=[], help="LoRA: adapted layer numbers (none: an SGD step)")
    parser.add_argument("--rank", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument("--loss", choices=["mse", "cross_entropy"], default="mse", help="SGD steps: the loss")
    parser.add_argument("--phase", choices=["setup", "prove", "verify"])
    parser.add_argument("--repeats", type=int, default=3, help="prove phase: prove calls per witness engine")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args)))
        return
    report = {"dims": args.dims, "batch": args.batch, "adapted": args.adapted, "loss": args.loss, "load_before": os.getloadavg()}
    for phase in ("setup", "prove", "verify"):
        command = [
            sys.executable, __file__, "--dims", *map(str, args.dims), "--batch", str(args.batch), "--lr", str(args.lr),
            "--cache", args.cache, "--loss", args.loss, "--phase", phase, "--adapted", *map(str, args.adapted), "--rank", str(args.rank), "--alpha", str(args.alpha),
            "--repeats", str(args.repeats),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        report[phase] = json.loads(done.stdout.strip().splitlines()[-1])
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
