"""Proving and verifying the ``zk-halo2`` statement of one training step.

Works for any ezkl statement (:mod:`pot_zk.backends.ezkl.statement`: sgd, momentum, lora). The
statement's hashed inputs are the first public instances, in its
``input_names`` order, followed by the residual.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.kinds.encoding import OPTIONAL_FIELDS, StepCommitment, from_fixed_point, to_fixed_point
from pot_zk.exceptions import ProofGenerationError, ProofVerificationError, WitnessBuilderError
from pot_zk.backends.ezkl.adapter import CompiledCircuit, SrsRef
from pot_zk.core.stages import stage
from pot_zk.kinds.base import BatchStep
from pot_zk.backends.ezkl.statement import FixedPointCheck

PROOF_TYPE = "zk-halo2"


@dataclass(frozen=True)
class Halo2Proof:
    proof_path: Path
    commitment: StepCommitment
    residual: list[int]
    circuit_id: str
    srs: SrsRef
    timings: dict[str, float]


def _grid(values: torch.Tensor, scale: int, bound: float | None = None, what: str = "values") -> list[float]:
    """Values snapped to the fixed-point grid; exact in float32 for |v| < 2**(24-scale)."""
    return from_fixed_point(to_fixed_point(values, scale, bound, what), scale).tolist()


def compiled_circuit(spec: FixedPointCheck, cache_dir: Path) -> CompiledCircuit:
    run_args = {
        "input_visibility": "hashed/public",
        "output_visibility": "public",
        "param_visibility": "fixed",
        "input_scale": spec.scale,
        "param_scale": spec.param_scale,
        "decomp_base": spec.decomp_base,
        "decomp_legs": spec.decomp_legs,
    }
    if spec.lookup_range is not None:
        run_args["lookup_range"] = spec.lookup_range
    return ezkl_adapter.compile_circuit(
        spec.circuit_id(), cache_dir, spec.write_onnx, lambda: [_grid(x, spec.scale) for x in spec.calibration_inputs()], run_args
    )


def prove_step(
    step: BatchStep,
    spec: FixedPointCheck,
    cache_dir: Path,
    srs: SrsRef | None,
    out_dir: Path,
    *,
    enforce_tolerance: bool = True,
) -> Halo2Proof:
    """Prove one step. ``srs=None`` uses (and if needed generates) the cached dev SRS.

    Raises WitnessBuilderError when the step is out of range or its update is not within
    tolerance of the circuit's (``enforce_tolerance=False`` exists only to let tests play a
    cheating prover), and ProofGenerationError when the decoded circuit output disagrees with
    the float reference (e.g. fixed-point overflow).
    """
    timings: dict[str, float] = {}
    inputs = [_grid(x.values, spec.scale, spec.value_bound, x.label) for x in spec.encode(step)]
    started = time.perf_counter()
    stage("keys")
    circuit = compiled_circuit(spec, cache_dir)
    if srs is None:
        srs = ezkl_adapter.dev_srs(cache_dir, circuit.logrows)
    keys = ezkl_adapter.ensure_keys(circuit, srs)
    timings["setup_s"] = time.perf_counter() - started
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stage("witness")
    witness_path = ezkl_adapter.gen_witness(circuit, inputs, srs, out_dir)
    timings["witness_s"] = time.perf_counter() - started
    witness = json.loads(witness_path.read_text())
    hashes = witness["processed_inputs"]["poseidon_hash"]
    residual = [ezkl_adapter.felt_to_int(f) for f in witness["outputs"][0]]
    output_scale = residual_scale(circuit)
    _decode_check(spec, inputs, residual, output_scale)
    worst = _worst_ulps(residual, output_scale, spec.scale)
    if enforce_tolerance and worst > spec.tolerance_ulps:
        raise WitnessBuilderError(
            f"W_t+1 is not the SGD update of W_t on this batch ({spec.kind} step): "
            f"residual {worst:.3g} ulps > tolerance {spec.tolerance_ulps}",
            expected=f"|residual| <= {spec.tolerance_ulps} ulps of 2**-{spec.scale}",
            actual=worst,
        )
    proof_path = out_dir / "proof.json"
    started = time.perf_counter()
    stage("prove")
    ezkl_adapter.prove(circuit, witness_path, keys, srs, proof_path)
    timings["prove_s"] = time.perf_counter() - started
    for scratch in (witness_path, out_dir / "input.json"):
        scratch.unlink(missing_ok=True)
    commitment = StepCommitment(scale=spec.scale, **dict(zip(spec.input_names, hashes)))
    return Halo2Proof(proof_path, commitment, residual, spec.circuit_id(), srs, timings)


def residual_scale(circuit: CompiledCircuit) -> int:
    """Fixed-point bits of the circuit's output (ezkl keeps the residual at ``param_scale``)."""
    return int(circuit.settings_dict()["model_output_scales"][0])


def _worst_ulps(residual: list[int], output_scale: int, scale: int) -> float:
    """Largest |residual| in units of 2**-scale (the commitment grid)."""
    return max((abs(r) for r in residual), default=0) / 2.0 ** (output_scale - scale)


def _decode_check(spec: FixedPointCheck, inputs: list[list[float]], residual: list[int], output_scale: int) -> None:
    """The circuit's decoded output must match the float64 reference on the same grid values."""
    reference = spec.reference_output([torch.tensor(x, dtype=torch.float64) for x in inputs])
    decoded = torch.tensor(residual, dtype=torch.float64) / 2.0**output_scale
    if decoded.shape != reference.shape:
        raise ProofGenerationError(
            f"circuit produced {decoded.numel()} outputs, expected {reference.numel()}", retryable=False, stage="decode-check"
        )
    slack = (spec.tolerance_ulps + 1) / 2.0**spec.scale
    error = float((decoded - reference).abs().max()) if decoded.numel() else 0.0
    if not error <= slack:
        raise ProofGenerationError(
            f"decoded circuit output disagrees with the float reference by {error:.6g} (allowed {slack:.6g}); "
            "the fixed-point encoding overflowed or the circuit is miscompiled",
            retryable=False,
            stage="decode-check",
        )


def verify_step_proof(
    spec: FixedPointCheck, commitment: StepCommitment, proof_path: Path, cache_dir: Path, srs: SrsRef
) -> list[int]:
    """Verify a ``zk-halo2`` proof of ``spec``'s statement for the declared commitments, with the
    circuit and verifying key compiled and set up in ``cache_dir`` (the ezkl cache layout; never
    taken from the prover). Returns the residual; raises ProofVerificationError with a ``reason``.
    """
    circuit = compiled_circuit(spec, cache_dir)
    vk = ezkl_adapter.verifying_key(circuit, srs) if circuit.logrows <= srs.logrows else None
    return check_step_proof(spec, commitment, proof_path, circuit, vk, srs)


def check_step_proof(
    spec: FixedPointCheck, commitment: StepCommitment, proof_path: Path, circuit: CompiledCircuit, vk: Path | None, srs: SrsRef
) -> list[int]:
    """Verify a ``zk-halo2`` proof of ``spec``'s statement for the declared commitments with
    ``circuit`` and ``vk``, which the verifier derived from ``spec`` and ``srs`` (``vk`` None:
    the SRS is too small for the circuit). Returns the residual; raises ProofVerificationError
    with a ``reason``."""
    try:
        proof = json.loads(Path(proof_path).read_text())
        instances = [str(x) for x in proof["instances"][0]]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProofVerificationError(f"unreadable proof file {proof_path}: {exc}", reason="malformed-proof") from exc
    hashed = len(spec.input_names)
    expected_len = hashed + spec.num_outputs
    if len(instances) != expected_len:
        raise ProofVerificationError(
            f"proof has {len(instances)} public values, the circuit has {expected_len}", reason="wrong-circuit"
        )
    if commitment.scale != spec.scale:
        raise ProofVerificationError("commitment scale differs from the circuit scale", reason="commitment-mismatch")
    for name in OPTIONAL_FIELDS:
        if (getattr(commitment, name) is not None) != (name in spec.input_names):
            raise ProofVerificationError(
                f"a {spec.kind} statement {'needs' if name in spec.input_names else 'has no'} a {name} commitment",
                reason="commitment-mismatch",
                field=name,
            )
    for name, found in zip(spec.input_names, instances[:hashed]):
        if found != getattr(commitment, name):
            raise ProofVerificationError(
                f"proof's public {name} commitment differs from the declared one", reason="commitment-mismatch", field=name
            )
    try:
        residual = [ezkl_adapter.felt_to_int(f) for f in instances[hashed:]]
    except ValueError as exc:
        raise ProofVerificationError(f"malformed public values: {exc}", reason="malformed-proof") from exc
    worst = _worst_ulps(residual, residual_scale(circuit), spec.scale)
    if worst > spec.tolerance_ulps:
        raise ProofVerificationError(
            f"the proven update is off by {worst:.3g} ulps (tolerance {spec.tolerance_ulps}): W_t+1 is not the {spec.kind} SGD update",
            reason="update-out-of-tolerance",
        )
    if vk is None or circuit.logrows > srs.logrows:
        raise ProofVerificationError(f"SRS has {srs.logrows} logrows, circuit needs {circuit.logrows}", reason="srs-mismatch")
    ezkl_adapter.verify(Path(proof_path), circuit, vk, srs)
    return residual
