"""Benchmark of pot-zk's zk-halo2 proving path against bare ezkl on a naive circuit (issue 6).

    python scripts/bench.py                 # full: reference workload R (64-16-10 MLP, batch 8)
    python scripts/bench.py --quick         # smoke run on tiny circuits (CI, < 60 s)
    python scripts/bench.py --out DIR --markdown docs/performance.md
    python scripts/bench.py --compare-backends [--quick] [--json PATH]   # ezkl vs groth16 (scripts/compare_backends.py)

One run measures, on this machine and in the same process tree:

* pot-zk on R: compile (export + calibrate + compile), key setup, a second setup (must reuse the
  cached keys), then ``repeats`` proofs through the real prover program (``pot-zk-ezkl-prover``,
  one process per proof, exactly as training runs it) and ``repeats`` verifications
  (``halo2.verify_step_proof``); witness and prove times as the prover reports them, the wall
  time around the prover call (framework overhead = wall - bare ezkl prove), proof and key sizes,
  peak RSS of every phase (``os.wait4`` of the child that ran it, which includes its children).
* bare ezkl on the naive circuit (recompute W_t+1 from private W_t and batch, no commitments,
  outputs private): gen_settings + calibrate + compile, setup, witness, prove, verify.
* prove time of pot-zk's circuit at three model sizes, and the growth exponent of prove time vs
  parameters x batch (least-squares slope in log-log).
* ``pot-zk train`` wall time with background proving (``policy=sample``, ``executor=process``)
  vs ``mode=disabled``.
* row counts of commitment/layout variants of R's graph (``gen_settings`` only: cheap), the
  measurable part of the directions listed in docs/performance.md.

Every phase runs in a child process (``--job``) so peak memory is measured per phase and a
crash of ezkl cannot take the benchmark down. Results go to ``OUT/bench.json`` and a markdown
table (``OUT/bench.md``, or ``--markdown PATH``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_backends  # noqa: E402  (the sibling script: --compare-backends)

REPO = Path(__file__).resolve().parent.parent

# Targets of issue 6 (absolute, this machine) -- the table also quotes ratios vs bare ezkl.
TARGETS = {
    "prove_s": 5.0,
    "verify_s": 0.05,
    "proof_bytes": 16 * 1024,
    "overhead_frac": 0.03,
    "peak_rss_mb": 2048,
    "growth_exponent": 1.1,
}


# ----------------------------------------------------------------------------- workloads


def workloads(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "reference": {"dims": [2, 2, 2], "batch": 1, "lr": 0.1},
            # two sizes are the fewest a growth exponent needs; 2 repeats the fewest a median
            # smoke-tests: --quick checks the harness, not the speed
            "sizes": [{"dims": [2, 2, 2], "batch": 1, "lr": 0.1}, {"dims": [3, 2, 2], "batch": 2, "lr": 0.1}],
            "train": {"model": "tiny_mlp", "dims": [2, 2, 2], "batch": 1, "lr": 0.1, "steps": 2, "fraction": 0.5},
            "repeats": 2,
            # the naive circuit with ezkl's default decomposition (base 2^14) needs 2^15 rows
            # for its range-check table alone: too slow for CI, so quick mode uses pot-zk's
            "naive_decomp": [256, 4],
        }
    return {
        "reference": {"dims": [64, 16, 10], "batch": 8, "lr": 0.05},
        "sizes": [{"dims": [8, 8, 4], "batch": 4, "lr": 0.05}, {"dims": [16, 8, 10], "batch": 8, "lr": 0.05}, {"dims": [64, 16, 10], "batch": 8, "lr": 0.05}],
        "train": {"model": "digits_mlp", "batch": 8, "lr": 0.05, "steps": 100, "fraction": 0.03},
        "repeats": 3,
        "naive_decomp": None,  # ezkl's defaults: what a naive user gets
    }


def _spec(work: dict[str, Any]):
    from pot_zk.kinds.mlp import MlpArchitecture
    from pot_zk.backends.ezkl.sgd import SgdCircuitSpec

    return SgdCircuitSpec(MlpArchitecture(tuple(work["dims"])), int(work["batch"]), float(work["lr"]))


def _honest_step(work: dict[str, Any], seed: int = 0):
    import torch

    from pot_zk.kinds.mlp import MlpArchitecture
    from pot_zk.kinds.sgd.step import capture_sgd_step

    architecture = MlpArchitecture(tuple(work["dims"]))
    torch.manual_seed(seed)
    model = architecture.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=float(work["lr"]))
    dims = architecture.dims
    x = torch.rand(work["batch"], dims[0]) * 2 - 1
    y = torch.rand(work["batch"], dims[-1]) * 2 - 1
    return capture_sgd_step(model, optimizer, x, y)


def params_times_batch(work: dict[str, Any]) -> int:
    dims = work["dims"]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1)) * int(work["batch"])


# ----------------------------------------------------------------------------- child jobs
# Each job runs in its own process (``bench.py --job JSON``) and prints one JSON result.


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def job_potzk_build(job: dict[str, Any]) -> dict[str, Any]:
    from pot_zk.backends.ezkl import adapter as ezkl_adapter
    from pot_zk.backends.ezkl import halo2

    spec = _spec(job["work"])
    cache = Path(job["cache"])
    circuit, compile_s = _timed(halo2.compiled_circuit, spec, cache)
    srs, srs_s = _timed(ezkl_adapter.dev_srs, cache, circuit.logrows)
    keys, setup_s = _timed(ezkl_adapter.ensure_keys, circuit, srs)
    settings = circuit.settings_dict()
    return {
        "compile_s": compile_s,
        "srs_s": srs_s,
        "setup_s": setup_s,
        "logrows": circuit.logrows,
        "num_rows": settings.get("num_rows"),
        "pk_bytes": keys.pk.stat().st_size,
        "vk_bytes": keys.vk.stat().st_size,
        "circuit_id": circuit.circuit_id,
    }


def job_potzk_prove(job: dict[str, Any]) -> dict[str, Any]:
    """Proofs through the real prover program, one process per proof as training runs them:
    ``job["proofs"]`` lists ``{"work", "out"}``; the peak RSS of this job is the largest prover's."""
    return {"proofs": [_prove_once({**job, **item}) for item in job["proofs"]]}


def _prove_once(job: dict[str, Any]) -> dict[str, Any]:
    from pot_zk.core.protocol import ProverRequest
    from pot_zk.core.runner import run_prover
    from pot_zk.kinds.registry import save_training_step

    spec = _spec(job["work"])
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    witness = out / "step.safetensors"
    save_training_step(_honest_step(job["work"]), witness)
    request = ProverRequest(
        kind="sgd", step=0, circuit=spec.to_dict(), witness_path=str(witness), cache_dir=job["cache"], output_dir=str(out)
    )
    response, wall_s = _timed(run_prover, "pot-zk-ezkl-prover", request, timeout_s=7200.0)
    proof = json.loads(Path(response.artifacts["proof"]).read_text())
    return {
        "wall_s": wall_s,
        "timings": response.timings,
        "proof_path": response.artifacts["proof"],
        "proof_file_bytes": Path(response.artifacts["proof"]).stat().st_size,
        "proof_bytes": len(proof.get("proof") or []),
        "commitment": response.public["commitment"],
        "logrows": response.public["srs"]["logrows"],
    }


def job_potzk_verify(job: dict[str, Any]) -> dict[str, Any]:
    from pot_zk.backends.ezkl import adapter as ezkl_adapter
    from pot_zk.backends.ezkl import halo2
    from pot_zk.kinds.encoding import StepCommitment

    spec = _spec(job["work"])
    cache = Path(job["cache"])
    started = time.perf_counter()
    circuit = halo2.compiled_circuit(spec, cache)
    srs = ezkl_adapter.dev_srs(cache, circuit.logrows)
    ezkl_adapter.ensure_keys(circuit, srs)
    setup_again_s = time.perf_counter() - started
    commitment = StepCommitment.from_dict(job["commitment"])
    times = []
    for _ in range(job["repeats"]):
        _, seconds = _timed(halo2.verify_step_proof, spec, commitment, Path(job["proof"]), cache, srs)
        times.append(seconds)
    # what a second run pays for its keys: compile + setup with a warm cache
    return {"verify_s": times, "setup_again_s": setup_again_s}


def naive_module(spec):
    """The naive circuit: recompute W_t+1 = W_t - c * G(W_t, X, Y) (no check, no commitments)."""
    import torch

    from pot_zk.backends.ezkl.sgd import SgdUpdateCheck

    class _Naive(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.check = SgdUpdateCheck(spec)

        def forward(self, w_before: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
            # residual(w_after=0) = -(w_before - c G)  ->  W_t+1 = -residual
            return -self.check(w_before, batch, torch.zeros_like(w_before))

    return _Naive()


def job_naive_build(job: dict[str, Any]) -> dict[str, Any]:
    import ezkl
    import torch

    from pot_zk.backends.ezkl.halo2 import _grid
    from pot_zk.backends.ezkl.statement import export_graph

    spec = _spec(job["work"])
    directory = Path(job["dir"])
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    p = spec.architecture.num_params
    example = (torch.zeros(1, p), torch.zeros(1, spec.input_sizes()["batch"]))
    export_graph(naive_module(spec), example, directory / "model.onnx", ("w_before", "batch"))
    inputs = [_grid(x, spec.scale) for x in spec.calibration_inputs()[:2]]
    (directory / "input.json").write_text(json.dumps({"input_data": inputs}))
    args = ezkl.PyRunArgs()
    args.input_visibility = "private"
    args.output_visibility = "private"
    args.param_visibility = "fixed"
    args.input_scale = spec.scale
    args.param_scale = spec.param_scale
    args.scale_rebase_multiplier = 1
    if job.get("decomp"):
        args.decomp_base, args.decomp_legs = job["decomp"]
    settings = str(directory / "settings.json")
    ezkl.gen_settings(str(directory / "model.onnx"), settings, py_run_args=args)
    ezkl.calibrate_settings(
        str(directory / "input.json"), str(directory / "model.onnx"), settings, "resources",
        scales=[spec.scale], scale_rebase_multiplier=[1],
    )
    ezkl.compile_circuit(str(directory / "model.onnx"), str(directory / "model.compiled"), settings)
    compile_s = time.perf_counter() - started
    data = json.loads(Path(settings).read_text())
    logrows = int(data["run_args"]["logrows"])
    srs = directory.parent / f"naive-kzg{logrows}.srs"
    if not srs.exists():
        ezkl.gen_srs(str(srs), logrows)
    _, setup_s = _timed(ezkl.setup, str(directory / "model.compiled"), str(directory / "vk.key"), str(directory / "pk.key"), srs_path=str(srs))
    return {
        "compile_s": compile_s,
        "setup_s": setup_s,
        "logrows": logrows,
        "num_rows": data.get("num_rows"),
        "pk_bytes": (directory / "pk.key").stat().st_size,
        "srs": str(srs),
    }


def job_naive_prove(job: dict[str, Any]) -> dict[str, Any]:
    """Witness, then ``repeats`` bare ezkl.prove calls (each loads the key from disk)."""
    import ezkl

    d = Path(job["dir"])
    _, witness_s = _timed(ezkl.gen_witness, str(d / "input.json"), str(d / "model.compiled"), str(d / "witness.json"), srs_path=job["srs"])
    prove_s = []
    for _ in range(job["repeats"]):
        _, seconds = _timed(ezkl.prove, str(d / "witness.json"), str(d / "model.compiled"), str(d / "pk.key"), str(d / "proof.json"), srs_path=job["srs"])
        prove_s.append(seconds)
    proof = json.loads((d / "proof.json").read_text())
    return {
        "witness_s": witness_s, "prove_s": prove_s,
        "proof_file_bytes": (d / "proof.json").stat().st_size, "proof_bytes": len(proof.get("proof") or []),
    }


def job_naive_verify(job: dict[str, Any]) -> dict[str, Any]:
    import ezkl

    d = Path(job["dir"])
    times = []
    for _ in range(job["repeats"]):
        ok, seconds = _timed(ezkl.verify, str(d / "proof.json"), str(d / "settings.json"), str(d / "vk.key"), srs_path=job["srs"])
        if not ok:
            raise RuntimeError("naive proof did not verify")
        times.append(seconds)
    return {"verify_s": times}


def job_layout_rows(job: dict[str, Any]) -> dict[str, Any]:
    """Rows and logrows ezkl lays out for R's check graph under each variant (no setup)."""
    import ezkl

    spec = _spec(job["work"])
    directory = Path(job["dir"])
    directory.mkdir(parents=True, exist_ok=True)
    spec.write_onnx(directory / "model.onnx")
    rows = {}
    for index, (name, overrides) in enumerate(job["variants"].items()):
        args = ezkl.PyRunArgs()
        values = {
            "input_visibility": "hashed/public", "output_visibility": "public", "param_visibility": "fixed",
            "input_scale": spec.scale, "param_scale": spec.param_scale, "decomp_base": spec.decomp_base,
            "decomp_legs": spec.decomp_legs, "scale_rebase_multiplier": 1, **overrides,
        }
        for key, value in values.items():
            setattr(args, key, value)
        ezkl.gen_settings(str(directory / "model.onnx"), str(directory / f"variant-{index}.json"), py_run_args=args)
        data = json.loads((directory / f"variant-{index}.json").read_text())
        poseidon = data["module_sizes"]["poseidon"][0]
        needed = max(data["num_rows"], poseidon)
        rows[name] = {"main_rows": data["num_rows"], "poseidon_rows": poseidon, "logrows_needed": math.ceil(math.log2(needed + 64))}
    return {"variants": rows}


JOBS = {name[4:]: fn for name, fn in globals().items() if name.startswith("job_")}
JOBS.update(compare_backends.JOBS)


# ----------------------------------------------------------------------------- parent side


def run_job(name: str, **job: Any) -> dict[str, Any]:
    """Run one job in a child process; add its wall time and peak RSS (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps({"name": name, **job})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout_chunks = []
    stderr_chunks = []
    # read both pipes without deadlock, then reap with wait4 for the child's rusage
    import threading

    def drain(stream, sink):
        sink.append(stream.read())

    threads = [threading.Thread(target=drain, args=(process.stdout, stdout_chunks)), threading.Thread(target=drain, args=(process.stderr, stderr_chunks))]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(process.pid, 0)
    for thread in threads:
        thread.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"bench job {name} failed ({process.returncode}): {stderr_chunks[0].decode()[-3000:]}")
    lines = [l for l in stdout_chunks[0].decode().splitlines() if l.startswith("{")]
    result = json.loads(lines[-1])
    result["job_wall_s"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def growth_exponent(points: list[tuple[float, float]]) -> float:
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def measure_potzk(work: dict[str, Any], repeats: int, cache: Path, scratch: Path) -> dict[str, Any]:
    build = run_job("potzk_build", work=work, cache=str(cache))
    proved = run_job("potzk_prove", cache=str(cache), proofs=[{"work": work, "out": str(scratch / f"potzk-proof-{i}")} for i in range(repeats)])
    proves = proved["proofs"]
    verify = run_job("potzk_verify", work=work, cache=str(cache), commitment=proves[0]["commitment"], proof=proves[0]["proof_path"], repeats=repeats)
    prove_s = [p["timings"]["prove_s"] for p in proves]
    wall_s = [p["wall_s"] for p in proves]
    overheads = [(p["wall_s"] - p["timings"]["prove_s"]) / p["wall_s"] for p in proves]
    return {
        "compile_s": build["compile_s"],
        "setup_s": build["setup_s"],
        "setup_again_s": verify["setup_again_s"],
        "logrows": build["logrows"],
        "num_rows": build["num_rows"],
        "pk_bytes": build["pk_bytes"],
        "witness_s": median([p["timings"]["witness_s"] for p in proves]),
        "prove_s": median(prove_s),
        "prove_all_s": prove_s,
        "prover_wall_s": median(wall_s),
        "overhead_frac": median(overheads),
        "verify_s": median(verify["verify_s"]),
        "verify_all_s": verify["verify_s"],
        "proof_bytes": proves[0]["proof_bytes"],
        "proof_file_bytes": proves[0]["proof_file_bytes"],
        "peak_rss_mb": proved["peak_rss_mb"],
        "setup_peak_rss_mb": build["peak_rss_mb"],
    }


def measure_naive(work: dict[str, Any], repeats: int, scratch: Path, decomp: list[int] | None) -> dict[str, Any]:
    directory = scratch / f"naive-{'-'.join(map(str, work['dims']))}-b{work['batch']}"
    build = run_job("naive_build", work=work, dir=str(directory), decomp=decomp)
    proves = run_job("naive_prove", dir=str(directory), srs=build["srs"], repeats=repeats)
    verify = run_job("naive_verify", dir=str(directory), srs=build["srs"], repeats=repeats)
    return {
        "compile_s": build["compile_s"],
        "setup_s": build["setup_s"],
        "logrows": build["logrows"],
        "num_rows": build["num_rows"],
        "pk_bytes": build["pk_bytes"],
        "witness_s": proves["witness_s"],
        "prove_s": median(proves["prove_s"]),
        "prove_all_s": proves["prove_s"],
        # bare ezkl has no prover program: its "wall time" is the prove call itself
        "prover_wall_s": median(proves["prove_s"]),
        "verify_s": median(verify["verify_s"]),
        "verify_all_s": verify["verify_s"],
        "proof_bytes": proves["proof_bytes"],
        "proof_file_bytes": proves["proof_file_bytes"],
        "peak_rss_mb": proves["peak_rss_mb"],
        "setup_peak_rss_mb": build["peak_rss_mb"],
    }


def measure_training(train: dict[str, Any], cache: Path, scratch: Path) -> dict[str, Any]:
    common = [
        f"model={train['model']}", "model.loss=mse",
        *([f"model.dims=[{','.join(map(str, train['dims']))}]"] if "dims" in train else []), "data=synthetic", "data.num_samples=4096", f"train.batch_size={train['batch']}",
        f"train.learning_rate={train['lr']}", f"train.max_steps={train['steps']}", "train.progress=false",
        f"cache_dir={cache}",
    ]
    results = {}
    for name, extra in {
        "disabled": ["mode=disabled"],
        "sample_background": ["mode=research", "policy=sample", f"policy.fraction={train['fraction']}", "executor=process", "executor.workers=1"],
    }.items():
        argv = [str(Path(sys.executable).parent / "pot-zk"), "train", *common, *extra, f"run_dir={scratch / ('train-' + name)}"]
        started = time.perf_counter()
        completed = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise RuntimeError(f"pot-zk train ({name}) failed: {completed.stderr[-3000:]}")
        stats_file = scratch / f"train-{name}" / "stats.json"
        proofs = json.loads(stats_file.read_text()).get("successes", 0) if stats_file.exists() else 0
        results[name] = {"wall_s": seconds, "proofs": proofs}
    results["slowdown"] = results["sample_background"]["wall_s"] / results["disabled"]["wall_s"]
    return results


LAYOUT_VARIANTS = {
    "pot-zk (hashed/public, 2 inner cols)": {},
    "private I/O (no commitments)": {"input_visibility": "private"},
    "polycommit (KZG) I/O": {"input_visibility": "polycommit"},
    "hashed, 4 inner cols": {"num_inner_cols": 4},
    "hashed, no I/O range checks": {"ignore_range_check_inputs_outputs": True},
    "polycommit, 4 inner cols, no I/O range checks": {"input_visibility": "polycommit", "num_inner_cols": 4, "ignore_range_check_inputs_outputs": True},
    "hashed, freivalds disabled": {"disable_freivalds": True},
    "hashed, decomp_legs 3 (value bound 8)": {"decomp_legs": 3},
    "polycommit, 4 inner cols, decomp_legs 3": {"input_visibility": "polycommit", "num_inner_cols": 4, "decomp_legs": 3},
}


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        info["mem_gb"] = round(int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20, 1)
        info["loadavg_start"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    try:
        import ezkl

        info["ezkl"] = getattr(ezkl, "__version__", "?")
    except ImportError:
        pass
    return info


def run(quick: bool, out: Path, cache: Path | None, skip_training: bool = False) -> dict[str, Any]:
    plan = workloads(quick)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=out))
    cache = cache or scratch / "cache"
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick,
        "machine": machine(),
        "workload": plan,
    }
    reference, repeats = plan["reference"], plan["repeats"]
    report["layout_rows"] = run_job("layout_rows", work=reference, dir=str(scratch / "layouts"), variants=LAYOUT_VARIANTS)["variants"]
    report["naive"] = measure_naive(reference, repeats, scratch, plan["naive_decomp"])
    report["potzk"] = measure_potzk(reference, repeats, cache, scratch)
    points = []
    sizes = []
    # one proof per other size; the prover program compiles the circuit and makes its keys on first use
    others = [w for w in plan["sizes"] if w != reference]
    proved = run_job(
        "potzk_prove", cache=str(cache),
        proofs=[{"work": w, "out": str(scratch / f"size-{'-'.join(map(str, w['dims']))}-b{w['batch']}")} for w in others],
    )["proofs"] if others else []
    for work in plan["sizes"]:
        if work == reference:
            prove_s, logrows = report["potzk"]["prove_s"], report["potzk"]["logrows"]
        else:
            proof = proved[others.index(work)]
            prove_s, logrows = proof["timings"]["prove_s"], proof["logrows"]
        sizes.append({**work, "params_x_batch": params_times_batch(work), "prove_s": prove_s, "logrows": logrows})
        points.append((params_times_batch(work), prove_s))
    report["sizes"] = sizes
    report["growth_exponent"] = growth_exponent(points)
    if not skip_training:
        report["training"] = measure_training(plan["train"], cache, scratch)
    try:
        report["machine"]["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    return report


# ----------------------------------------------------------------------------- markdown


def _fmt_s(x: float) -> str:
    return f"{x:.3g} s" if x >= 0.01 else f"{x * 1000:.2g} ms"


def markdown(report: dict[str, Any]) -> str:
    p, n = report["potzk"], report["naive"]
    ref = report["workload"]["reference"]
    m = report["machine"]
    lines = [
        f"Measured {report['date']} on {m.get('cpu', '?')} ({m.get('cpus')} cores, {m.get('mem_gb', '?')} GB RAM), "
        f"ezkl {m.get('ezkl', '?')}, load average {tuple(round(x, 1) for x in m.get('loadavg_start', ()))} at start and "
        f"{tuple(round(x, 1) for x in m.get('loadavg_end', ()))} at end{' (quick mode)' if report['quick'] else ''}.",
        f"Workload: one SGD step of a {'-'.join(map(str, ref['dims']))} ReLU MLP at batch {ref['batch']} "
        f"({params_times_batch(ref) // ref['batch']} parameters); repeats {report['workload']['repeats']} (medians).",
        "",
        "| metric | bare ezkl, naive circuit | pot-zk zk-halo2 | ratio pot-zk / naive | target | met |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, a, b, fmt, target=None, key=None):
        ratio = f"{b / a:.2f}" if a else "–"
        met = "–" if target is None else ("yes" if b <= target else f"no ({b / target:.1f}x over)")
        tgt = "–" if target is None else fmt(target)
        lines.append(f"| {name} | {fmt(a) if a is not None else '–'} | {fmt(b)} | {ratio} | {tgt} | {met} |")

    mb = lambda x: f"{x / 2**20:.1f} MB" if x >= 2**20 else f"{x / 1024:.1f} KB"
    lines.append(
        f"| rows (logrows) | {n['num_rows']:,} (2^{n['logrows']}) | {p['num_rows']:,} (2^{p['logrows']}) | "
        f"{p['num_rows'] / n['num_rows']:.2f} | – | – |"
    )
    row("calibrate + compile", n["compile_s"], p["compile_s"], _fmt_s)
    row("key setup (first run)", n["setup_s"], p["setup_s"], _fmt_s)
    lines.append(f"| key setup (second run, cached) | – | {_fmt_s(p['setup_again_s'])} | – | no setup | {'yes' if p['setup_again_s'] < 0.1 * max(p['setup_s'], 1e-9) else 'no'} |")
    row("witness", n["witness_s"], p["witness_s"], _fmt_s)
    row("prove (bare ezkl.prove call)", n["prove_s"], p["prove_s"], _fmt_s, TARGETS["prove_s"])
    row("prover process wall time", n["prover_wall_s"], p["prover_wall_s"], _fmt_s)
    lines.append(
        f"| framework overhead (wall - prove) / wall | – | {p['overhead_frac'] * 100:.1f} % | – | {TARGETS['overhead_frac'] * 100:.0f} % | "
        f"{'yes' if p['overhead_frac'] <= TARGETS['overhead_frac'] else 'no'} |"
    )
    row("verify", n["verify_s"], p["verify_s"], _fmt_s, TARGETS["verify_s"])
    row("proof (transcript bytes)", n["proof_bytes"], p["proof_bytes"], mb, TARGETS["proof_bytes"])
    row("proof file (ezkl JSON)", n["proof_file_bytes"], p["proof_file_bytes"], mb)
    row("proving key", n["pk_bytes"], p["pk_bytes"], mb)
    row("peak RSS, prover process", n["peak_rss_mb"], p["peak_rss_mb"], lambda x: f"{x:,.0f} MB", TARGETS["peak_rss_mb"])
    row("peak RSS, key setup", n["setup_peak_rss_mb"], p["setup_peak_rss_mb"], lambda x: f"{x:,.0f} MB")
    lines += ["", "Prove time of pot-zk's circuit vs model size:", "", "| model | batch | params x batch | logrows | prove |", "|---|---|---|---|---|"]
    for s in report["sizes"]:
        lines.append(f"| {'-'.join(map(str, s['dims']))} | {s['batch']} | {s['params_x_batch']:,} | {s['logrows']} | {_fmt_s(s['prove_s'])} |")
    g = report["growth_exponent"]
    lines += ["", f"Growth exponent of prove time vs params x batch: **{g:.2f}** (target <= {TARGETS['growth_exponent']}: {'met' if g <= TARGETS['growth_exponent'] else 'not met'})."]
    if "training" in report:
        t = report["training"]
        w = report["workload"]["train"]
        lines += [
            "",
            f"`pot-zk train` ({w['model']}, batch {w['batch']}, {w['steps']} steps, synthetic data): "
            f"`mode=disabled` {_fmt_s(t['disabled']['wall_s'])}; `policy=sample` (fraction {w['fraction']}) with "
            f"`executor=process` {_fmt_s(t['sample_background']['wall_s'])} ({t['sample_background']['proofs']} proofs, "
            f"{t['slowdown']:.2f}x the disabled wall time, keys cached).",
        ]
    lines += ["", "Rows ezkl lays out for the reference graph under each layout (`gen_settings`, no setup; "
             "the Poseidon region runs in its own columns beside the main region):", "", "| layout | rows (both regions overlap: the larger counts) | Poseidon region | logrows needed |", "|---|---|---|---|"]
    for name, v in report["layout_rows"].items():
        lines.append(f"| {name} | {v['main_rows']:,} | {v['poseidon_rows']:,} | {v['logrows_needed']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny circuits, for CI (< 60 s)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="where bench.json / bench.md and scratch files go")
    parser.add_argument("--cache", type=Path, default=None, help="pot-zk artefact cache (default: a fresh one in OUT, so setup is measured)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--compare-backends", action="store_true", help="ezkl vs groth16 on the same statements (scripts/compare_backends.py)")
    parser.add_argument("--json", type=Path, default=None, help="--compare-backends: also write the JSON report here")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        job = json.loads(args.job)
        result = JOBS[job.pop("name")](job)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    if args.compare_backends:
        report = compare_backends.compare(args.quick, args.out, args.cache, run_job, median, growth_exponent)
        (args.out / "compare.json").write_text(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        table = compare_backends.markdown(report)
        (args.out / "compare.md").write_text(table)
        if args.markdown:
            args.markdown.write_text(table)
        print(table)
        return 0
    report = run(args.quick, args.out, args.cache, args.skip_training)
    table = markdown(report)
    (args.out / "bench.md").write_text(table)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
