"""``pot-zk keys circuit``: the circom source of a statement, and how a snarkjs ceremony makes a
``.zkey`` for it that ``pot-zk keys import-zkey`` accepts.

The ceremony runs outside pot-zk with node tools (circom2 and snarkjs from npm; pot-zk itself
needs neither). Two details decide whether the zkey fits the circuit groth16py proves with:
the r1cs must be compiled with ``--O2`` (groth16py's optimisation level; circom's default
``--O1`` gives another constraint system, which import refuses), and the includes
(``bitify.circom``, ``poseidon.circom``) must be groth16py's vendored circomlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.exceptions import ConfigurationError

CIRCUIT_FILE = "circuit.circom"
INSTRUCTIONS_FILE = "CEREMONY.txt"


@dataclass(frozen=True)
class CeremonyFiles:
    circuit: Path
    instructions: Path
    text: str


def ceremony_instructions(spec: Groth16Statement, circuit_dir: Path, statement_args: str) -> str:
    """The commands of a ceremony for ``spec`` whose source is ``circuit_dir/circuit.circom``."""
    circomlib = adapter.circomlib_dir()
    return f"""\
zk-groth16 circuit {spec.circuit_id()} ({spec.circuit_version}): {CIRCUIT_FILE}
Its includes (bitify.circom, poseidon.circom) are groth16py's vendored circomlib:
  {circomlib}
circom2 (npm, runs under wasm) reads only the current directory: copy circomlib next to the source.
Compile with --O2 (groth16py's level; circom's default --O1 gives another constraint system,
which `pot-zk keys import-zkey` refuses).

  cd {circuit_dir.absolute()}
  cp -r {circomlib} circomlib
  npx circom2 {CIRCUIT_FILE} --r1cs --O2 -l circomlib -o .
  npx snarkjs r1cs info circuit.r1cs
  # POT: a public powers of tau prepared for phase 2 (snarkjs powersoftau prepare phase2),
  # of size 2^k > constraints + {len(spec.public_order)} public values
  npx snarkjs groth16 setup circuit.r1cs POT circuit_0000.zkey
  npx snarkjs zkey contribute circuit_0000.zkey circuit_0001.zkey --name="contributor 1" -e="<secret random text>"
  # ... one contribution per participant (each one's secret destroyed), optionally a beacon
  npx snarkjs zkey verify circuit.r1cs POT circuit_0001.zkey
  pot-zk keys import-zkey circuit_0001.zkey {statement_args} --out KEYS

`snarkjs zkey verify` is the check that the zkey was made for exactly this r1cs and this
powers of tau; pot-zk's import checks only the zkey's header against the circuit and that an
honest step proven with it verifies under it. Hand the trainer KEYS (it proves with the
srs.path that import-zkey prints); anyone who verifies imports the same zkey and runs
`pot-zk verify RUN --keys KEYS`.
"""


def write_ceremony_files(spec: Groth16Statement, out_dir: Path, statement_args: str) -> CeremonyFiles:
    """Write ``circuit.circom`` and ``CEREMONY.txt`` into ``out_dir`` (refused if it holds them)."""
    out_dir = Path(out_dir)
    circuit, instructions = out_dir / CIRCUIT_FILE, out_dir / INSTRUCTIONS_FILE
    if circuit.exists() or instructions.exists():
        raise ConfigurationError(f"{out_dir} already holds a {CIRCUIT_FILE} or {INSTRUCTIONS_FILE}; choose a new directory", key="out")
    out_dir.mkdir(parents=True, exist_ok=True)
    circuit.write_text(spec.circuit_source())
    text = ceremony_instructions(spec, out_dir, statement_args)
    instructions.write_text(text)
    return CeremonyFiles(circuit, instructions, text)
