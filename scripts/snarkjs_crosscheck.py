"""Let snarkjs check a zk-groth16 proof of a run: an independent verifier (JavaScript, not
arkworks) for an auditor who has node.

    .venv/bin/python scripts/snarkjs_crosscheck.py RUN STEP --keys KEYS --out DIR
    npx snarkjs groth16 verify DIR/vk.json DIR/public.json DIR/proof.json

writes the step's proof in snarkjs's JSON form (``proof.json``), the step's public values as
the run's commitment records give them (``public.json``: w_before, batch, w_after as decimal
field elements, never the prover's response) and the verifying key of KEYS (``vk.json``: a
keys directory from ``pot-zk keys new`` / ``keys import-zkey``, or one key directory), and
prints the snarkjs command. snarkjs answers ``OK!`` for a valid proof; edit one value of
public.json and it must refuse. pot-zk itself needs no node.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from pot_zk.backends.groth16.adapter import snarkjs_proof
from pot_zk.backends.groth16.commit import StepCommitments
from pot_zk.backends.keys import KEYS_FILE, KeySet
from pot_zk.backends.registry import spec_from_dict
from pot_zk.runs.bundle import RunBundle


def verifying_key_json(keys: Path, circuit_id: str) -> Path:
    """``vk.json`` of ``circuit_id`` in a keys directory (keys.json) or a key directory."""
    if (keys / KEYS_FILE).is_file():
        key_set = KeySet.load(keys)
        return key_set.path("vk_json" if "vk_json" in key_set.files else f"vk_json:{circuit_id}")
    return keys / "vk.json"


def write_crosscheck(run: Path, step: int, keys: Path, out: Path) -> list[str]:
    """Write proof.json, public.json and vk.json into ``out``; return the snarkjs command."""
    bundle = RunBundle.open(run)
    manifest = bundle.manifest()
    spec = spec_from_dict(manifest["circuit"])
    proved = [r for r in bundle.proofs() if r.get("step") == step and r.get("status") == "proved" and r.get("proof_type") == "zk-groth16"]
    if not proved:
        raise SystemExit(f"step {step} of {run} has no zk-groth16 proof")
    commitment = next(r for r in bundle.commitments() if r["step"] == step)
    public = StepCommitments.from_dict(commitment, spec.public_names).public_inputs()
    out.mkdir(parents=True, exist_ok=True)
    (out / "proof.json").write_text(json.dumps(snarkjs_proof((bundle.root / proved[-1]["proof"]).read_bytes()), indent=1) + "\n")
    (out / "public.json").write_text(json.dumps([str(v) for v in public], indent=1) + "\n")
    shutil.copyfile(verifying_key_json(keys, str(manifest["circuit_id"])), out / "vk.json")
    return ["npx", "snarkjs", "groth16", "verify", str(out / "vk.json"), str(out / "public.json"), str(out / "proof.json")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("step", type=int)
    parser.add_argument("--keys", required=True, help="your keys directory (pot-zk keys new / keys import-zkey) or a key directory")
    parser.add_argument("--out", required=True, help="a directory for proof.json, public.json and vk.json")
    args = parser.parse_args(argv)
    print(" ".join(write_crosscheck(Path(args.run), args.step, Path(args.keys), Path(args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
