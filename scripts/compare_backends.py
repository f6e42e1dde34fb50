"""Both prover backends on the same statements, in one run (``scripts/bench.py --compare-backends``).

    python scripts/bench.py --compare-backends [--quick] [--json PATH] [--markdown PATH] [--out DIR]

For each statement (R = 64-16-10 at batch 8, the default digits model 16-8-10 at batch 8, and
8-8-4 at batch 4 for the growth exponent; ``--quick``: 2-2-2 at batch 1) and each backend
(``ezkl``: zk-halo2; ``groth16``: zk-groth16) it measures, every phase in a child process:

* compile (ezkl: export + calibrate + compile; groth16: generating the circom source -- the
  circom compiler runs inside groth16py's setup) and key setup (first run, cold cache);
* ``repeats`` proofs through the real prover program, one process per proof as training runs
  it: witness, the bare prove call (median), the program's wall time (groth16: including the
  proving-key load, reported apart), peak RSS of the proving process;
* groth16 only: the same proofs through a key holder (``--keep-key-s``), wall per proof after the first;
* verify (median of ``repeats``), proof bytes, proving and verifying key bytes;
* committing the step's three tensors natively with the backend's scheme.

The step is honest for each statement: random inputs, torch's initialisation, the float step
for ezkl and the exact step (weights snapped to the grid) for groth16.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

FULL = {
    "statements": {
        "R": {"dims": [64, 16, 10], "batch": 8, "lr": 0.05},
        "digits": {"dims": [16, 8, 10], "batch": 8, "lr": 0.05},
        "small": {"dims": [8, 8, 4], "batch": 4, "lr": 0.05},
    },
    "repeats": 3,
}
QUICK = {"statements": {"tiny": {"dims": [2, 2, 2], "batch": 1, "lr": 0.1}}, "repeats": 1}
BACKENDS = ("ezkl", "groth16")
TARGETS = {"prove_s": 5.0, "speedup": 10.0, "verify_s": 0.010, "proof_bytes": 1024, "peak_rss_mb": 2048, "digits_step_s": 1.0}


def _timed(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def _step(work: dict[str, Any], exact: bool):
    """An honest SGD step of the statement; ``exact``: on the zk-groth16 grid, exact update."""
    import torch

    from pot_zk.kinds.mlp import MlpArchitecture
    from pot_zk.kinds.registry import capture_step

    torch.manual_seed(0)
    model = MlpArchitecture(tuple(work["dims"])).build()
    arithmetic = None
    if exact:
        from pot_zk.backends.groth16.training import ExactTraining

        arithmetic = ExactTraining(_groth16_spec(work))
        arithmetic.start(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(work["lr"]))
    x = torch.rand(work["batch"], work["dims"][0]) * 2 - 1
    y = torch.rand(work["batch"], work["dims"][-1]) * 2 - 1
    step = capture_step(model, optimizer, x, y)
    return arithmetic.step(model, optimizer, step) if arithmetic else step


def _ezkl_spec(work: dict[str, Any]):
    from pot_zk.kinds.mlp import MlpArchitecture
    from pot_zk.backends.ezkl.sgd import SgdCircuitSpec

    return SgdCircuitSpec(MlpArchitecture(tuple(work["dims"])), int(work["batch"]), float(work["lr"]))


def _groth16_spec(work: dict[str, Any]):
    from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement

    return Groth16SgdStatement(tuple(work["dims"]), int(work["batch"]), float(work["lr"]))


# ----------------------------------------------------------------------------- child jobs


def job_cmp_build(job: dict[str, Any]) -> dict[str, Any]:
    work, cache = job["work"], Path(job["cache"])
    if job["backend"] == "ezkl":
        from pot_zk.backends.ezkl import adapter as ezkl_adapter
        from pot_zk.backends.ezkl import halo2

        circuit, compile_s = _timed(halo2.compiled_circuit, _ezkl_spec(work), cache)
        srs = ezkl_adapter.dev_srs(cache, circuit.logrows)
        keys, setup_s = _timed(ezkl_adapter.ensure_keys, circuit, srs)
        return {"compile_s": compile_s, "setup_s": setup_s, "size": f"2^{circuit.logrows} rows", "pk_bytes": keys.pk.stat().st_size, "vk_bytes": keys.vk.stat().st_size}
    from pot_zk.backends.groth16 import keys as groth16_keys

    spec = _groth16_spec(work)
    _, compile_s = _timed(spec.circuit_source)
    made, setup_s = _timed(groth16_keys.ensure_keys, spec, cache)
    return {
        "compile_s": compile_s, "setup_s": setup_s, "size": f"{made.record['constraints']['constraints']:,} constraints",
        "pk_bytes": (made.path / "pk.bin").stat().st_size, "vk_bytes": (made.path / "vk.bin").stat().st_size,
    }


def job_cmp_prove(job: dict[str, Any]) -> dict[str, Any]:
    """``repeats`` proofs through the backend's prover program (one process each), with ``args``."""
    from pot_zk.core.protocol import ProverRequest
    from pot_zk.core.runner import run_prover
    from pot_zk.kinds.registry import save_training_step

    work, backend = job["work"], job["backend"]
    spec = (_ezkl_spec if backend == "ezkl" else _groth16_spec)(work)
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    witness = out / "step.safetensors"
    save_training_step(_step(work, exact=backend == "groth16"), witness)
    proofs = []
    for index in range(job["repeats"]):
        request = ProverRequest(kind="sgd", step=index, circuit=spec.to_dict(), witness_path=str(witness), cache_dir=job["cache"], output_dir=str(out / f"p{index}"))
        response, wall_s = _timed(run_prover, f"pot-zk-{backend}-prover", request, timeout_s=7200.0, args=job.get("args", []))
        proofs.append({"wall_s": wall_s, "timings": response.timings, "proof": response.artifacts["proof"], "commitment": response.public["commitment"]})
    return {"proofs": proofs}


def job_cmp_verify(job: dict[str, Any]) -> dict[str, Any]:
    work, cache, proof = job["work"], Path(job["cache"]), Path(job["proof"])
    times = []
    if job["backend"] == "ezkl":
        from pot_zk.backends.ezkl import adapter as ezkl_adapter
        from pot_zk.backends.ezkl import halo2
        from pot_zk.kinds.encoding import StepCommitment

        spec = _ezkl_spec(work)
        srs = ezkl_adapter.dev_srs(cache, halo2.compiled_circuit(spec, cache).logrows)
        commitment = StepCommitment.from_dict(job["commitment"])
        for _ in range(job["repeats"]):
            times.append(_timed(halo2.verify_step_proof, spec, commitment, proof, cache, srs)[1])
        size = len(json.loads(proof.read_text()).get("proof") or [])
    else:
        from pot_zk.backends.groth16 import keys as groth16_keys
        from pot_zk.backends.groth16.verify import verify_groth16

        spec = _groth16_spec(work)
        vk = groth16_keys.load_verifying_key(spec, groth16_keys.key_directory(cache, spec))
        data = proof.read_bytes()
        for _ in range(job["repeats"]):
            verdict, seconds = _timed(verify_groth16, spec, data, job["commitment"], vk)
            if not verdict.ok:
                raise RuntimeError(f"groth16 proof did not verify: {verdict.message}")
            times.append(seconds)
        size = len(data)
    return {"verify_s": times, "proof_bytes": size, "commit_s": _commit_time(job["backend"], work)}


def _commit_time(backend: str, work: dict[str, Any]) -> float:
    """Committing W_t, the batch and W_t+1 natively (median of 5)."""
    import statistics

    from pot_zk.kinds.registry import kind_of

    step = _step(work, exact=backend == "groth16")
    if backend == "ezkl":
        from pot_zk.backends.registry import commitments_of

        commit = commitments_of(_ezkl_spec(work)).commit
    else:
        from pot_zk.backends.groth16.scheme import PackedPoseidon

        commit = PackedPoseidon(12, 16).commit
    tensors = kind_of(step).encode(step)
    return statistics.median(_timed(lambda: [commit(t.values, t.label) for t in tensors])[1] for _ in range(5))


JOBS = {name[4:]: fn for name, fn in globals().items() if name.startswith("job_")}


# ----------------------------------------------------------------------------- parent side


def measure(backend: str, work: dict[str, Any], repeats: int, cache: Path, scratch: Path, run_job: Callable, median: Callable) -> dict[str, Any]:
    name = f"{backend}-{'-'.join(map(str, work['dims']))}-b{work['batch']}"
    build = run_job("cmp_build", backend=backend, work=work, cache=str(cache))
    proved = run_job("cmp_prove", backend=backend, work=work, cache=str(cache), out=str(scratch / name), repeats=repeats)
    proofs = proved["proofs"]
    first = proofs[0]
    verify = run_job("cmp_verify", backend=backend, work=work, cache=str(cache), proof=first["proof"], commitment=first["commitment"], repeats=repeats)
    result = {
        "size": build["size"], "compile_s": build["compile_s"], "setup_s": build["setup_s"],
        "witness_s": median([p["timings"].get("witness_s", p["timings"].get("witness_check_s", 0.0)) for p in proofs]),
        "prove_s": median([p["timings"]["prove_s"] for p in proofs]),
        "prove_all_s": [p["timings"]["prove_s"] for p in proofs],
        "prover_wall_s": median([p["wall_s"] for p in proofs]),
        "verify_s": median(verify["verify_s"]), "proof_bytes": verify["proof_bytes"],
        "pk_bytes": build["pk_bytes"], "vk_bytes": build["vk_bytes"],
        "peak_rss_mb": proved["peak_rss_mb"], "setup_peak_rss_mb": build["peak_rss_mb"], "commit_s": verify["commit_s"],
    }
    if backend == "groth16":
        result["key_load_s"] = median([p["timings"]["key_load_s"] for p in proofs])
        held = run_job("cmp_prove", backend=backend, work=work, cache=str(cache), out=str(scratch / f"{name}-held"), repeats=repeats + 1, args=["--keep-key-s", "30"])
        result["held_wall_s"] = median([p["wall_s"] for p in held["proofs"][1:]])
    return result


def compare(quick: bool, out: Path, cache: Path | None, run_job: Callable, median: Callable, growth_exponent: Callable) -> dict[str, Any]:
    import tempfile

    plan = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="compare-", dir=out))
    cache = cache or scratch / "cache"
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "loadavg_start": os.getloadavg(), "plan": plan, "statements": {}}
    for label, work in plan["statements"].items():
        report["statements"][label] = {b: measure(b, work, plan["repeats"], cache, scratch, run_job, median) for b in BACKENDS}
    report["loadavg_end"] = os.getloadavg()
    if not quick:
        points = {b: [(_params(w) * w["batch"], report["statements"][k][b]["prove_s"]) for k, w in plan["statements"].items()] for b in BACKENDS}
        report["growth_exponent"] = {b: growth_exponent(points[b]) for b in BACKENDS}
    first = next(iter(report["statements"].values()))
    report["backends"] = {b: {k: first[b][k] for k in ("prove_s", "verify_s", "proof_bytes", "prover_wall_s", "peak_rss_mb", "setup_s")} for b in BACKENDS}
    return report


def _params(work: dict[str, Any]) -> int:
    dims = work["dims"]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


# ----------------------------------------------------------------------------- markdown


def _s(x: float) -> str:
    return f"{x:.3g} s" if x >= 0.01 else f"{x * 1000:.2g} ms"


def _bytes(x: float) -> str:
    return f"{x / 2**20:.1f} MB" if x >= 2**20 else (f"{x / 1024:.1f} KB" if x >= 1024 else f"{x:.0f} B")


ROWS = (
    ("circuit size", "size", str),
    ("compile (groth16: circom source only)", "compile_s", _s),
    ("key setup (groth16: circom compile + setup)", "setup_s", _s),
    ("witness (groth16: reference check)", "witness_s", _s),
    ("prove, bare call (median)", "prove_s", _s),
    ("proving-key load (groth16)", "key_load_s", _s),
    ("prover program wall, one process per proof", "prover_wall_s", _s),
    ("prover wall with the key held (groth16, after the first)", "held_wall_s", _s),
    ("verify (median)", "verify_s", _s),
    ("proof", "proof_bytes", _bytes),
    ("proving key", "pk_bytes", _bytes),
    ("verifying key", "vk_bytes", _bytes),
    ("peak RSS, proving process", "peak_rss_mb", lambda x: f"{x:,.0f} MB"),
    ("peak RSS, key setup", "setup_peak_rss_mb", lambda x: f"{x:,.0f} MB"),
    ("native commitments of W_t, batch, W_t+1", "commit_s", _s),
)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Measured {report['date']}, load average {tuple(round(x, 1) for x in report['loadavg_start'])} at start and "
        f"{tuple(round(x, 1) for x in report['loadavg_end'])} at end (2 cores shared){' (quick mode)' if report['quick'] else ''}; "
        f"{report['plan']['repeats']} proofs per backend and statement.",
    ]
    for label, results in report["statements"].items():
        work = report["plan"]["statements"][label]
        lines += ["", f"**{label}**: one SGD step of {'-'.join(map(str, work['dims']))} at batch {work['batch']}, lr {work['lr']}.", ""]
        lines += ["| metric | ezkl (zk-halo2) | groth16 (zk-groth16) | ezkl / groth16 |", "|---|---|---|---|"]
        for name, key, fmt in ROWS:
            a, b = results["ezkl"].get(key), results["groth16"].get(key)
            ratio = f"{a / b:.1f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "–"
            lines.append(f"| {name} | {fmt(a) if a is not None else '–'} | {fmt(b) if b is not None else '–'} | {ratio} |")
    if "growth_exponent" in report:
        g = report["growth_exponent"]
        lines += ["", f"Growth exponent of the bare prove time vs parameters x batch: ezkl {g['ezkl']:.2f}, groth16 {g['groth16']:.2f}."]
    return "\n".join(lines) + "\n"
