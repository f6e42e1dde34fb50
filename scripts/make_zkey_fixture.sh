#!/usr/bin/env bash
# Regenerate tests/groth16/data/tiny_sgd.zkey: a snarkjs Groth16 zkey (phase 2, one contribution)
# for the zk-groth16 circuit of the tests' tiny statement (tests/groth16/groth16_support.py:
# tiny_spec(), i.e. the training config below), made the way `pot-zk keys circuit` tells a
# ceremony to: circom2 --O2 with groth16py's vendored circomlib, snarkjs groth16 setup, zkey
# contribute, zkey verify; then checked by `pot-zk keys import-zkey`.
#
# Needs node with circom2 and snarkjs (npx fetches them from npm; or set CIRCOM2 and SNARKJS
# to their programs) and this checkout's pot-zk (POT_ZK, default .venv/bin/pot-zk). pot-zk and
# its tests need neither: the tests read the committed zkey only. Run it again when the tiny
# statement's circuit source changes (the zkey test then fails with a wires or trial-proof error).
#
# Usage: scripts/make_zkey_fixture.sh [PHASE2.ptau]
#   PHASE2.ptau: a powers of tau of at least 2^13 prepared for phase 2; made here when not
#   given (snarkjs powersoftau new/contribute/prepare phase2: about 6 minutes on 2 cores).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
POT_ZK=${POT_ZK:-$ROOT/.venv/bin/pot-zk}
CIRCOM2=${CIRCOM2:-npx circom2}
SNARKJS=${SNARKJS:-npx snarkjs}
OUT=$ROOT/tests/groth16/data/tiny_sgd.zkey
STATEMENT=(prover=groth16 model=tiny_mlp data=synthetic model.loss=mse train.batch_size=2 train.learning_rate=0.1)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PTAU=${1:-}
if [ -n "$PTAU" ]; then
    PTAU=$(cd "$(dirname "$PTAU")" && pwd)/$(basename "$PTAU")
fi

"$POT_ZK" keys circuit "${STATEMENT[@]}" --out "$WORK/circuit" >/dev/null
cd "$WORK/circuit"
cp -r "$("$ROOT/.venv/bin/python" -c 'from pot_zk.backends.groth16.adapter import circomlib_dir; print(circomlib_dir())')" circomlib
$CIRCOM2 circuit.circom --r1cs --O2 -l circomlib -o .

if [ -z "$PTAU" ]; then
    $SNARKJS powersoftau new bn128 13 pot0.ptau
    $SNARKJS powersoftau contribute pot0.ptau pot1.ptau --name=fixture -e="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    $SNARKJS powersoftau prepare phase2 pot1.ptau pot.ptau
    PTAU=$WORK/circuit/pot.ptau
fi

$SNARKJS groth16 setup circuit.r1cs "$PTAU" circuit_0000.zkey
$SNARKJS zkey contribute circuit_0000.zkey circuit_0001.zkey --name=fixture -e="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
$SNARKJS zkey verify circuit.r1cs "$PTAU" circuit_0001.zkey
"$POT_ZK" keys import-zkey circuit_0001.zkey "${STATEMENT[@]}" --out "$WORK/keys"
mkdir -p "$(dirname "$OUT")"
cp circuit_0001.zkey "$OUT"
echo "written $OUT"
