"""``freivalds``: a non-ZK certificate whose matrix products are checked by random projection.

The prover reveals the witness (on the commitment grid) and, per layer l, the pre-activations
Z_l, the back-propagated products B_l = delta_l W_l and the weight gradients
G_l = delta_l^T A_{l-1} (float64). The verifier:

1. checks the revealed W_t, batch, W_t+1 hash to the declared commitments;
2. derives its randomness from the commitments and a SHA-256 of the revealed tensors
   (Fiat-Shamir), and checks every product with ``ROUNDS`` Gaussian vectors r:
   (Z_l - b_l) r = A_{l-1} (W_l^T r),  B_l r = delta_l (W_l r),  G_l r = delta_l^T (A_{l-1} r),
   each up to float64 round-off (``ROUNDOFF`` times the same products taken in absolute value);
3. recomputes the element-wise parts (ReLU, its mask, delta_L = Z_L - Y, bias gradients) and
   accepts when W_t+1 is within ``tolerance_ulps`` of W_t - c * [G_l, sum(delta_l)].

Cost: O(N (d_in + d_out) + d_in d_out) per layer instead of O(N d_in d_out).

LoRA steps reveal and check the products of the LoRA forward/backward pass instead
(pot_zk.backends.certificates.lora_freivalds); the binding, the seed and the tolerance rule are the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from pot_zk.backends.certificates import lora_freivalds
from pot_zk.kinds.sgd.circuit import SgdCircuitSpec
from pot_zk.kinds.commitments import StepCommitment
from pot_zk.exceptions import ProofVerificationError
from pot_zk.kinds.lora.circuit import LoraCircuitSpec
from pot_zk.core.protocol import ProverResponse
from pot_zk.backends.certificates.revealed import WITNESS, certify, grid_step, load_certificate, load_job_step, within_tolerance
from pot_zk.kinds.registry import circuit_spec_from_dict

PROOF_TYPE = "freivalds"
ROUNDS = 2
ROUNDOFF = 1e-9


def _unpack(spec: SgdCircuitSpec, w: torch.Tensor, batch: torch.Tensor):
    dims = spec.architecture.dims
    params, offset = [], 0
    for _, shape in spec.architecture.param_shapes:
        count = int(torch.Size(shape).numel())
        params.append(w[offset : offset + count].reshape(shape))
        offset += count
    n = spec.batch_size
    x = batch[: n * dims[0]].reshape(n, dims[0])
    y = batch[n * dims[0] :].reshape(n, dims[-1])
    return params, x, y


def _activations(spec: SgdCircuitSpec, zs: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    layers = len(spec.architecture.dims) - 1
    return [x] + [torch.relu(z) if l < layers - 1 else z for l, z in enumerate(zs)]


def intermediates(spec: SgdCircuitSpec, w: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Prover side: Z_l, B_l, G_l of the step, in float64."""
    params, x, y = _unpack(spec, w, batch)
    layers = len(spec.architecture.dims) - 1
    zs, h = [], x
    for l in range(layers):
        zs.append(h @ params[2 * l].t() + params[2 * l + 1])
        h = torch.relu(zs[-1]) if l < layers - 1 else zs[-1]
    acts = _activations(spec, zs, x)
    out = {f"z{l}": z for l, z in enumerate(zs)}
    delta = zs[-1] - y
    for l in reversed(range(layers)):
        out[f"g{l}"] = delta.t() @ acts[l]
        if l > 0:
            out[f"b{l}"] = delta @ params[2 * l]
            delta = out[f"b{l}"] * (zs[l - 1] > 0)
    return out


class FreivaldsStrategy:
    """Prover side: writes the certificate for a step (a ``ProofJob`` callable)."""

    name = PROOF_TYPE

    def __call__(self, job) -> ProverResponse:
        started = time.perf_counter()
        spec = circuit_spec_from_dict(job.circuit)
        grid = grid_step(load_job_step(spec, job.witness_path), spec)
        if isinstance(spec, LoraCircuitSpec):
            extra = lora_freivalds.intermediates(spec, grid.named())
            residual = lora_freivalds.update_residual(spec, {**grid.named(), **extra})
        else:
            extra = intermediates(spec, grid.w_before, grid.batch)
            residual = _update_residual(spec, grid.w_before, grid.batch, grid.w_after, extra)
        return certify(job, PROOF_TYPE, spec, grid, extra, residual, started)


def _update_residual(spec, w_before, batch, w_after, tensors) -> torch.Tensor:
    params, x, y = _unpack(spec, w_before, batch)
    layers = len(spec.architecture.dims) - 1
    zs = [tensors[f"z{l}"] for l in range(layers)]
    delta = zs[-1] - y
    grads: list[torch.Tensor] = [delta] * (2 * layers)
    for l in reversed(range(layers)):
        grads[2 * l] = tensors[f"g{l}"]
        grads[2 * l + 1] = delta.sum(0)
        if l > 0:
            delta = tensors[f"b{l}"] * (zs[l - 1] > 0)
    update = torch.cat([g.reshape(-1) for g in grads]) * spec.step_constant
    return w_after - (w_before - update)


def _challenge_seed(commitment: StepCommitment, certificate: Path) -> int:
    digest = hashlib.sha256(json.dumps(commitment.to_dict(), sort_keys=True).encode())
    digest.update((certificate.parent / WITNESS).read_bytes())
    return int.from_bytes(digest.digest()[:8], "little")


def _check_product(name: str, lhs: torch.Tensor, left: torch.Tensor, right: torch.Tensor, r: torch.Tensor) -> None:
    """Is lhs == left @ right, seen through r? (lhs r vs left (right r))."""
    got = lhs @ r
    want = left @ (right @ r)
    bound = ROUNDOFF * (left.abs() @ (right.abs() @ r.abs()) + lhs.abs() @ r.abs()) + 1e-300
    if not bool(((got - want).abs() <= bound).all()):
        raise ProofVerificationError(f"freivalds: product {name} does not hold", reason="product-check-failed", product=name)


def verify_freivalds(spec: SgdCircuitSpec | LoraCircuitSpec, commitment: StepCommitment, certificate: Path) -> None:
    """Raise ProofVerificationError unless the certificate shows the declared update."""
    certificate = Path(certificate)
    tensors = load_certificate(certificate, PROOF_TYPE, spec, commitment)
    if isinstance(spec, LoraCircuitSpec):
        _verify_lora(spec, commitment, certificate, tensors)
        return
    dims = spec.architecture.dims
    layers = len(dims) - 1
    n = spec.batch_size
    expected = {f"z{l}": (n, dims[l + 1]) for l in range(layers)}
    expected.update({f"g{l}": (dims[l + 1], dims[l]) for l in range(layers)})
    expected.update({f"b{l}": (n, dims[l]) for l in range(1, layers)})
    for key, shape in expected.items():
        if key not in tensors or tuple(tensors[key].shape) != shape or not torch.isfinite(tensors[key]).all():
            raise ProofVerificationError(f"freivalds certificate tensor {key} missing or malformed", reason="malformed-proof")
    params, x, y = _unpack(spec, tensors["w_before"], tensors["batch"])
    zs = [tensors[f"z{l}"] for l in range(layers)]
    acts = _activations(spec, zs, x)
    generator = torch.Generator().manual_seed(_challenge_seed(commitment, certificate))
    for _ in range(ROUNDS):
        delta = zs[-1] - y
        for l in reversed(range(layers)):
            weight, bias = params[2 * l], params[2 * l + 1]
            r_out = torch.randn(dims[l + 1], generator=generator, dtype=torch.float64)
            r_in = torch.randn(dims[l], generator=generator, dtype=torch.float64)
            _check_product(f"Z{l}", zs[l] - bias, acts[l], weight.t(), r_out)
            _check_product(f"G{l}", tensors[f"g{l}"], delta.t(), acts[l], r_in)
            if l > 0:
                _check_product(f"B{l}", tensors[f"b{l}"], delta, weight, r_in)
                delta = tensors[f"b{l}"] * (zs[l - 1] > 0)
    within_tolerance(_update_residual(spec, tensors["w_before"], tensors["batch"], tensors["w_after"], tensors), spec, PROOF_TYPE)


def _verify_lora(spec: LoraCircuitSpec, commitment: StepCommitment, certificate: Path, tensors: dict[str, torch.Tensor]) -> None:
    for key, shape in lora_freivalds.expected_shapes(spec).items():
        if key not in tensors or tuple(tensors[key].shape) != shape or not torch.isfinite(tensors[key]).all():
            raise ProofVerificationError(f"freivalds certificate tensor {key} missing or malformed", reason="malformed-proof")
    generator = torch.Generator().manual_seed(_challenge_seed(commitment, certificate))
    for _ in range(ROUNDS):
        lora_freivalds.check_products(spec, tensors, generator, ROUNDOFF)
    within_tolerance(lora_freivalds.update_residual(spec, tensors), spec, PROOF_TYPE)
