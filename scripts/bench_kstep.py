"""What a proof of k consecutive SGD steps would cost per step (issue 19, docs/performance.md
"Why R stays above 100,000"), measured rather than estimated: the constraint count of a step's
circuit as it is, and of the same circuit with W_t neither range-checked nor committed and W_t+1
not committed. That is what a step inside a k-step proof pays (its W_t is the previous step's
W_t+1 wire, range-checked there once, and neither end is a public commitment; each batch stays
committed), so a k-step proof costs per step honest - (k - 1) / k * (honest - inner).
Nothing of it is a pot-zk statement: no such proof is built.

    .venv/bin/python scripts/bench_kstep.py 64-16-10 8 [mse|cross_entropy] [--out DIR]

Two single-party setups (compile included; R: ~20 CPU s each); prints both counts and the
per-step cost for k = 1, 2, 4, 5, 8."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement


def inner_step_source(honest: str, count: int) -> str:
    """``honest`` without W_t's range check and commitment and without W_t+1's commitment (its
    range check stays); both commitment outputs are 0."""

    def line(start: str) -> str:
        return next(text for text in honest.splitlines() if text.strip().startswith(start))

    variant = honest
    for name in ("w_before", "w_after"):
        checks = line(f"for (var i = 0; i < {count}; i++) {{ range_{name}.in[i]")
        variant = variant.replace(line(f"component commit_{name} = PackedCommitment("), "")
        variant = variant.replace(line(f"c_{name} <== commit_{name}.out;"), f"    c_{name} <== 0;")
        if name == "w_before":
            variant = variant.replace(line(f"component range_{name} = "), "").replace(checks, "")
        else:
            variant = variant.replace(checks, f"    for (var i = 0; i < {count}; i++) {{ range_{name}.in[i] <== {name}[i]; }}")
    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dims", help="e.g. 64-16-10")
    parser.add_argument("batch", type=int)
    parser.add_argument("loss", nargs="?", default="mse", choices=["mse", "cross_entropy"])
    parser.add_argument("--out", type=Path, help="keep the two circuit sources here (default: a temporary directory)")
    args = parser.parse_args()
    spec = Groth16SgdStatement(tuple(int(d) for d in args.dims.split("-")), args.batch, 0.05 if args.loss == "mse" else 0.3, loss=args.loss)
    directory = args.out or Path(tempfile.mkdtemp(prefix="bench-kstep-"))
    directory.mkdir(parents=True, exist_ok=True)
    honest = spec.circuit_source()
    counts = {}
    for label, source in (("honest", honest), ("inner", inner_step_source(honest, spec.num_params))):
        path = directory / f"{label}-{args.dims}-{args.loss}.circom"
        path.write_text(source)
        started = time.process_time()
        _, _, report = adapter.setup(path)
        counts[label] = report.to_dict()["constraints"]
        print(label, report.to_dict(), f"{time.process_time() - started:.1f} CPU s", flush=True)
    saved = counts["honest"] - counts["inner"]
    for k in (1, 2, 4, 5, 8):
        print(f"k={k}: {counts['honest'] - (k - 1) / k * saved:,.0f} constraints per step")


if __name__ == "__main__":
    main()
