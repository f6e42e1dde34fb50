"""The zk-halo2 statement at its tolerance boundary: a cheating prover moves one weight of W_t+1
by 4 grid units, the declared tolerance. Real proofs of the tiny circuit: moved along an entry
whose honest residual is a small fraction of an ulp, the proven residual is just over 4 ulps
(rejected, `update-out-of-tolerance`: a verifier bound widened by more than that fraction
accepts it); moved where the honest residual is exactly zero (a unit that took no gradient), it
is exactly 4 ulps (accepted: the tolerance is inclusive).

"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pot_zk.backends.base import VerifierOptions
from pot_zk.backends.ezkl import halo2
from pot_zk.backends.registry import commitments_of
from pot_zk.kinds.mlp import unflatten
from pot_zk.verify.step import StepStatement, step_keys, verify_step

from zk_support import tiny_spec, train_steps

pytestmark = pytest.mark.prover

TOLERANCE = 4
CLEARLY_NONZERO = 0.02
"""Smallest |honest residual| (ulps) taken for the proof just over: the circuit's fixed-point
residual (in steps of 2**-8 ulps) and the float reference differ by less."""


@dataclasses.dataclass(frozen=True)
class Pushed:
    proof: halo2.Halo2Proof
    worst_ulps: float
    worst_entry: int
    entry: int


def _honest_residual_ulps(step, spec) -> torch.Tensor:
    scheme = commitments_of(spec)
    grid = [scheme.snap(x.values, x.label) for x in spec.encode(step)]
    return spec.reference_output(grid) * 2.0**spec.scale


@pytest.fixture(scope="module")
def pushed(zk_cache: Path, tmp_path_factory) -> dict[str, Pushed]:
    """The two cheating proofs of one honest step (one circuit, proven once each)."""
    spec = tiny_spec()
    assert spec.tolerance_ulps == TOLERANCE
    step = train_steps(1, seed=0)[0]
    honest = [float(v) for v in _honest_residual_ulps(step, spec)]
    over = min((i for i, e in enumerate(honest) if abs(e) >= CLEARLY_NONZERO), key=lambda i: abs(honest[i]))
    at = honest.index(0.0)
    scale = halo2.residual_scale(halo2.compiled_circuit(spec, zk_cache))
    proofs = {}
    for name, entry, direction in (("over", over, 1.0 if honest[over] > 0 else -1.0), ("at", at, 1.0)):
        flat = step.flat_after().clone()
        flat[entry] += direction * TOLERANCE * 2.0**-spec.scale
        cheat = dataclasses.replace(step, weights_after=unflatten(flat, spec.architecture.param_shapes))
        proof = halo2.prove_step(cheat, spec, zk_cache, None, tmp_path_factory.mktemp(name), enforce_tolerance=False)
        residual = [abs(r) / 2.0 ** (scale - spec.scale) for r in proof.residual]
        worst = max(range(len(residual)), key=residual.__getitem__)
        proofs[name] = Pushed(proof, residual[worst], worst, entry)
    return proofs


def _verify(pushed: Pushed, zk_cache: Path, tmp_path: Path):
    spec = tiny_spec()
    options = VerifierOptions(zk_cache, tmp_path / "verifier")
    keys = step_keys(spec, "zk-halo2", options)
    return verify_step(StepStatement(spec, pushed.proof.commitment), "zk-halo2", pushed.proof.proof_path, cache_dir=options.workdir, keys=keys)


def test_a_proof_just_over_the_tolerance_is_rejected(pushed, zk_cache, tmp_path):
    over = pushed["over"]
    assert over.worst_entry == over.entry and TOLERANCE < over.worst_ulps < TOLERANCE + 0.1, over.worst_ulps
    verdict = _verify(over, zk_cache, tmp_path)
    assert not verdict.ok and verdict.reason == "update-out-of-tolerance", verdict


def test_a_proof_exactly_at_the_tolerance_is_accepted(pushed, zk_cache, tmp_path):
    at = pushed["at"]
    assert at.worst_entry == at.entry and at.worst_ulps == TOLERANCE
    verdict = _verify(at, zk_cache, tmp_path)
    assert verdict.ok, verdict
