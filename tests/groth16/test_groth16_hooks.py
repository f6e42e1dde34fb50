"""pot_zk.hooks with prover=groth16: a user's own loop trains exactly (the model it holds after
each step is the statement's integer step, on the grid; MSE on float targets, cross-entropy on
class labels) and its bundle verifies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step

from pot_zk.backends.groth16.integers import quantise_batch

from pot_zk.backends.groth16.integers import quantise_weights
from pot_zk.backends.registry import spec_from_dict
from pot_zk.hooks import proven_training
from pot_zk.kinds.mlp import MlpArchitecture, flatten
from pot_zk.runs.bundle import RunBundle
from pot_zk.verify.run import verify_run

from groth16_support import auditor_pins, stop_holders

pytestmark = pytest.mark.prover


def test_a_user_loop_trains_the_exact_steps_and_its_bundle_verifies(tmp_path):
    torch.manual_seed(3)
    architecture = MlpArchitecture((4, 3, 2))
    model = architecture.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.rand(2, 4) * 2 - 1, torch.rand(2, 2) * 2 - 1) for _ in range(3)]
    cache, run = tmp_path / "cache", tmp_path / "run"
    overrides = ["prover=groth16", f"cache_dir={cache}", "policy=every_k", "policy.k=2"]
    try:
        with proven_training(model, optimizer, batches, run_dir=run, overrides=overrides) as handle:
            spec = spec_from_dict(RunBundle.open(run).manifest()["circuit"])
            for index in (2, 0, 1, 0):
                before = quantise_weights(flatten(model.state_dict(), architecture.param_shapes).double().numpy(), 12, 16)
                handle.step(*batches[index])
                x, y = (quantise_batch(t.double().numpy(), 12, 16).reshape(t.shape) for t in batches[index])
                after = flatten(model.state_dict(), architecture.param_shapes).double().numpy()
                assert np.array_equal(quantise_weights(after, 12, 16), exact_sgd_step(spec, before, x, y))
    finally:
        stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    assert handle.summary.progress["proof_types"] == {"zk-groth16": 2}
    report = verify_run(run, cache_dir=cache, **auditor_pins(handle.verify_command(declared=True)))
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 2, "commitment-only": 2}


def test_a_user_loop_on_class_labels_trains_the_exact_cross_entropy_steps_and_verifies(tmp_path):
    torch.manual_seed(4)
    architecture = MlpArchitecture((4, 3, 3), loss="cross_entropy")
    model = architecture.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.rand(2, 4) * 2 - 1, torch.tensor([index % 3, 2])) for index in range(3)]
    cache, run = tmp_path / "cache", tmp_path / "run"
    overrides = ["prover=groth16", f"cache_dir={cache}", "policy=every_k", "policy.k=2"]
    try:
        with proven_training(model, optimizer, batches, run_dir=run, overrides=overrides) as handle:
            spec = spec_from_dict(RunBundle.open(run).manifest()["circuit"])
            assert (spec.loss, spec.circuit_version) == ("cross_entropy", "groth16-sgd-ce/2")
            for index in (2, 0, 1, 0):
                before = quantise_weights(flatten(model.state_dict(), architecture.param_shapes).double().numpy(), 12, 16)
                handle.step(*batches[index])
                x = quantise_batch(batches[index][0].double().numpy(), 12, 16).reshape(2, 4)
                labels = batches[index][1].numpy().astype(np.int64) * 2**12
                after = flatten(model.state_dict(), architecture.param_shapes).double().numpy()
                assert np.array_equal(quantise_weights(after, 12, 16), exact_sgd_step(spec, before, x, labels))
    finally:
        stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    assert handle.summary.progress["proof_types"] == {"zk-groth16": 2}
    report = verify_run(run, cache_dir=cache, **auditor_pins(handle.verify_command(declared=True)))
    assert report.ok, report.summary()
