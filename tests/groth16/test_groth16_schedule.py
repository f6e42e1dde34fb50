"""Scheduled runs proven with zk-groth16, one key for the whole schedule: the statement takes each
step's update constant c_fix as a public input (range-checked up to the statement's bound), so a
proof is bound to its step's learning rate. A StepLR loop proves every selected step and verify
names the schedule; a proof of one rate does not verify at another; a constant above the bound
does not prove."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator
import torch

from pot_zk.backends.groth16 import adapter, keys
from pot_zk.backends.groth16.prove import prove_step
from pot_zk.backends.groth16.sgd.exact import exact_sgd_step
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.backends.keys import KeySet
from pot_zk.backends.registry import BACKENDS
from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.track import track
from pot_zk.verify.run import verify_run

from groth16_support import sgd_integers, stop_holders
from loop_support import pins

pytestmark = pytest.mark.prover


def scheduled_spec():
    return BACKENDS.get("groth16").scheduled_spec(STEP_KINDS.get("sgd"), MlpArchitecture((4, 3, 2)), 2, 0.1, {})


@pytest.fixture(scope="module")
def scheduled_keys(groth16_cache):
    return keys.ensure_keys(scheduled_spec(), groth16_cache)


def _step(spec, rate: float, seed: int = 0):
    """An honest step's integers at ``rate`` (W_t, X, Y, c_fix and W_t+1)."""
    rng = np.random.default_rng(seed)
    grid = 2.0**spec.scale
    integers = {
        "w_before": np.round(rng.normal(0, 0.5, spec.num_params) * grid).astype(np.int64),
        "x": np.round(rng.uniform(-1, 1, (2, 4)) * grid).astype(np.int64),
        "y": np.round(rng.normal(0, 1, (2, 2)) * grid).astype(np.int64),
        "c_fix": np.array(spec.rate_constant(rate)),
    }
    return {**integers, **spec.exact_step(integers)}


@pytest.mark.prover
def test_a_proof_is_bound_to_its_steps_learning_rate(scheduled_keys):
    spec = scheduled_spec()
    verifying = keys.load_verifying_key(spec, scheduled_keys.path)
    at_half = _step(spec, 0.05)
    assert not np.array_equal(at_half["w_after"], _step(spec, 0.1)["w_after"])
    proof = prove_step(spec, scheduled_keys, at_half)
    recorded = {name: proof.commitments.values[name] for name in spec.public_names}
    assert verify_groth16(spec, proof.proof, spec.public_values(recorded, 0.05), verifying).ok
    for other in (0.1, 0.025):  # the same proof claimed for another step's rate
        assert verify_groth16(spec, proof.proof, spec.public_values(recorded, other), verifying).reason == "invalid-proof"


@pytest.mark.prover
def test_an_update_constant_above_the_statements_bound_does_not_prove(scheduled_keys):
    spec = scheduled_spec()
    above = _step(spec, 0.1)
    above["c_fix"] = np.array(spec.c_fix + 1)  # a rate above the statement's: larger updates than its bounds allow for
    above["w_after"] = exact_sgd_step(spec, above["w_before"], above["x"], above["y"], spec.c_fix + 1)
    with pytest.raises(WitnessBuilderError, match=f"outside 0..{spec.c_fix}"):
        prove_step(spec, scheduled_keys, above)
    forced = adapter.prove(scheduled_keys.load_proving_key(), spec.circuit_inputs(above))
    public = spec.commitments({**sgd_integers(above["w_before"], above["x"], above["y"], above["w_after"]), "c_fix": above["c_fix"]})
    assert verify_groth16(spec, forced, public, keys.load_verifying_key(spec, scheduled_keys.path)).reason == "invalid-proof"


def test_a_steplr_loop_proves_every_selected_step_and_verify_names_the_schedule(tmp_path):
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    generator = torch.Generator().manual_seed(4)
    data = torch.utils.data.TensorDataset(torch.rand(8, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (8,), generator=generator))
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=generator)
    loss_fn = torch.nn.CrossEntropyLoss()
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    try:
        with track(model, optimizer, run_dir=run_dir, scheduler=scheduler, dataset=data, overrides=["prover=groth16", f"cache_dir={cache}", "policy=every_step"]) as run:
            for _epoch in range(2):
                for x, y in loader:
                    run.batch(x, y)
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                    scheduler.step()
    finally:
        stop_holders(cache, RunBundle.open(run_dir).manifest()["circuit"])
    rates = [r["learning_rate"] for r in RunBundle.open(run_dir).commitments()]
    assert rates == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert run.summary.progress["proof_types"] == {"zk-groth16": 8}
    report = verify_run(run_dir, cache_dir=cache, **pins(run.verify_command(declared=True)))
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 8}
    assert report.references["schedule"] == "StepLR(step_size=2, gamma=0.5) from lr 0.1, each step's rate recomputed: from 0.0125 to 0.1"
    assert len(list((cache / "groth16").iterdir())) == 1, "one key for the whole schedule"
    _a_huge_step_number_costs_verify_nothing_for_it(run_dir, cache, tmp_path)


def _a_huge_step_number_costs_verify_nothing_for_it(run_dir: Path, cache: Path, tmp_path: Path) -> None:
    """review47: the last commitment record renumbered 10**7 made verify build a set of every
    number up to it (for the missing-step message) and step torch's scheduler that many times: a
    record numbered 3*10**7 took 569 s and 3.9 GB, 10**9 would exhaust the memory. The trainer
    chose that number: verify's work must follow the records it has."""
    import shutil
    import tracemalloc

    from pot_zk.kinds.schedule import Schedule

    forged = tmp_path / "renumbered"
    shutil.copytree(run_dir, forged, ignore=shutil.ignore_patterns("witness", ".pot-zk.lock*"))
    lines = (forged / "commitments.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    last["step"] = 10**7
    (forged / "commitments.jsonl").write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    asked = []
    real_rates = Schedule.rates
    Schedule.rates = lambda self, count: asked.append(count) or real_rates(self, count)
    tracemalloc.start()
    try:
        report = verify_run(forged, cache_dir=cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        Schedule.rates = real_rates
    assert not report.ok and ("steps", "missing-step") in {(f.check, f.reason) for f in report.findings}, report.summary()
    assert "missing: [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]" in report.summary(), report.summary()
    assert max(asked) <= 8, f"verify asked the schedule for {max(asked)} rates of an 8-record run"
    assert peak < 50 * 2**20, f"verify's peak Python allocation {peak / 2**20:.0f} MiB for an 8-record run"


def test_a_scheduled_loop_answers_the_auditors_challenge_at_each_steps_rate(tmp_path):
    """The auditor challenges steps the policy did not prove; the trainer proves them from the
    kept witnesses (each at its scheduled rate) with pot-zk respond; verify --challenge accepts."""
    import shlex
    import subprocess
    import sys

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    generator = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.rand(16, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (16,), generator=generator))
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=generator)
    loss_fn = torch.nn.CrossEntropyLoss()
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    overrides = ["prover=groth16", f"cache_dir={cache}", "policy=every_k", "policy.k=4"]
    with track(model, optimizer, run_dir=run_dir, scheduler=scheduler, dataset=data, overrides=overrides) as run:
        for x, y in loader:
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    pot_zk_cli = str(Path(sys.executable).parent / "pot-zk")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([pot_zk_cli, *args], capture_output=True, text=True, timeout=900, env={**os.environ, "POT_ZK_CACHE": str(cache)})

    try:
        assert cli("challenge", str(run_dir), "--count", "3", "--out", str(tmp_path / "C.json")).returncode == 0
        answered = cli("respond", str(run_dir), str(tmp_path / "C.json"))
        assert answered.returncode == 0 and "3 of 3 challenged steps proven" in answered.stdout, answered.stdout + answered.stderr
    finally:
        stop_holders(cache, RunBundle.open(run_dir).manifest()["circuit"])
    verified = cli(*shlex.split(run.verify_command(declared=True))[1:], "--challenge", str(tmp_path / "C.json"))
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout
    assert "passed: challenge" in verified.stdout and "passed: schedule" in verified.stdout


POT_ZK = str(Path(sys.executable).parent / "pot-zk")
SCHEDULED = ["prover=groth16", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "train.progress=false", "policy=every_step"]
AGREED = ["optimizer.schedule.name=step", "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=0.5"]
ANOTHER = ["optimizer.schedule.name=step", "optimizer.schedule.step_size=1", "optimizer.schedule.gamma=0.5"]


def _pot_zk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([POT_ZK, *args], capture_output=True, text=True, timeout=600)


def test_your_keys_pin_the_schedule_a_run_declares(tmp_path):
    """One key proves every schedule up to the base rate, so a trainer holding the auditor's keys
    could declare its own schedule (a review's attack: rate 0 at the steps it wants to skip).
    keys new records the schedule it is given; verify --keys fails a run declaring another."""
    auditor = tmp_path / "auditor-cache"
    made = _pot_zk("keys", "new", *SCHEDULED, *AGREED, "--out", str(tmp_path / "keys"), "--cache-dir", str(auditor))
    assert made.returncode == 0, made.stdout + made.stderr
    assert "learning-rate schedule: StepLR(step_size=2, gamma=0.5) from lr 0.05 (verify --keys refuses a run that declares another)" in made.stdout
    handed = next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("the trainer proves with"))
    runs = {"agreed": tmp_path / "agreed", "another": tmp_path / "another"}
    try:
        for name, schedule in (("agreed", AGREED), ("another", ANOTHER)):
            trained = _pot_zk("train", *SCHEDULED, *schedule, handed, f"run_dir={runs[name]}", f"cache_dir={tmp_path / 'trainer-cache'}")
            assert trained.returncode == 0, trained.stdout + trained.stderr
    finally:
        stop_holders(Path(handed.split("=", 1)[1]), RunBundle.open(runs["agreed"]).manifest()["circuit"])
    verified = _pot_zk("verify", str(runs["agreed"]), "--keys", str(tmp_path / "keys"), "--cache-dir", str(auditor), "--json", str(tmp_path / "agreed.json"))
    assert verified.returncode == 0 and "passed: keys" in verified.stdout and "passed: schedule" in verified.stdout, verified.stdout + verified.stderr
    # review38: the report of verify --keys on a scheduled run broke docs/verify.schema.json
    schema = Draft202012Validator(json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify.schema.json").read_text()))
    agreed = json.loads((tmp_path / "agreed.json").read_text())
    assert agreed["keys"]["checked_with_them"] == 4 and agreed["references"]["schedule"].startswith("StepLR(step_size=2, gamma=0.5)")
    assert not [error.message for error in schema.iter_errors(agreed)]
    report = tmp_path / "another.json"
    refused = _pot_zk("verify", str(runs["another"]), "--keys", str(tmp_path / "keys"), "--cache-dir", str(auditor), "--json", str(report))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    findings = {(f["check"], f["reason"]) for f in json.loads(report.read_text())["findings"]}
    assert not [error.message for error in schema.iter_errors(json.loads(report.read_text()))]
    assert findings == {("keys", "keys-schedule-mismatch")}, refused.stdout
    assert "declares the learning-rate schedule StepLR(step_size=1, gamma=0.5), your keys were made for StepLR(step_size=2, gamma=0.5)" in refused.stdout
    from_run = _pot_zk("keys", "new", "--run", str(runs["another"]), "--out", str(tmp_path / "keys-of-run"), "--cache-dir", str(auditor))
    assert from_run.returncode == 0, from_run.stdout + from_run.stderr
    assert f"(verify --keys refuses a run that declares another), taken from {runs['another']}'s manifest: the trainer's declaration" in from_run.stdout
    assert KeySet.load(tmp_path / "keys-of-run").schedule == RunBundle.open(runs["another"]).manifest()["training"]["schedule"]


def _saved_proof(spec, keys_dir, integers, tmp_path, name: str, rate: float) -> Path:
    """A proof of ``integers`` made below pot-zk's witness check (which refuses c_fix = 0), saved
    with a result.json naming ``rate`` as a cheating prover would write it."""
    from pot_zk.backends.groth16.prove import _prove

    proof = _prove(spec, keys_dir, spec.circuit_inputs(integers), spec.commitments(integers), 0.0, None)
    (tmp_path / f"{name}.bin").write_bytes(proof.proof)
    values = {key: proof.commitments.values[key] for key in spec.public_names}
    result = {"status": "proved", "proof_type": "zk-groth16", "circuit": spec.to_dict(), "proof": str(tmp_path / f"{name}.bin"),
              "commitment": {**values, "scale": spec.scale, "learning_rate": rate}, "error": None}
    (tmp_path / f"{name}.json").write_text(json.dumps(result))
    return tmp_path / f"{name}.json"


@pytest.mark.prover
def test_verify_step_rejects_a_rate_of_update_constant_0_and_checks_the_rate_the_auditor_names(scheduled_keys, groth16_cache, tmp_path, capsys):
    """A review: `verify-step` of a scheduled statement took the rate from the prover's
    result.json, so a proof at c_fix = 0 (W_t+1 = W_t: the batch is not learned from, which
    `pot-zk verify` fails as zero-rate) was VERIFIED, and `--step` dropped the rate (every
    honest scheduled step was REJECTED with it)."""
    from pot_zk.cli.main import main

    spec = scheduled_spec()
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    common = ["--circuit", str(tmp_path / "spec.json"), "--srs", str(scheduled_keys.path), "--cache-dir", str(groth16_cache)]

    idle = _step(spec, 0.1)
    idle["c_fix"], idle["w_after"] = np.array(0), idle["w_before"].copy()
    assert main(["verify-step", str(_saved_proof(spec, scheduled_keys, idle, tmp_path, "idle", 0.0)), *common]) == 1
    assert "REJECTED (zk-groth16): zero-rate: the step's rate 0.0 rounds to the update constant 0" in capsys.readouterr().out

    honest = _saved_proof(spec, scheduled_keys, _step(spec, 0.05), tmp_path, "honest", 0.05)
    assert main(["verify-step", str(honest), *common]) == 0
    assert "note: the learning rate, 0.05, is the prover's own; pass --learning-rate" in capsys.readouterr().out
    assert main(["verify-step", str(honest), *common, "--learning-rate", "0.05"]) == 0
    assert "VERIFIED (zk-groth16)" in capsys.readouterr().out
    assert main(["verify-step", str(honest), *common, "--learning-rate", "0.1"]) == 1
    assert "REJECTED (zk-groth16): invalid-proof" in capsys.readouterr().out

    from pot_zk.kinds.registry import save_training_step
    from pot_zk.kinds.sgd.step import TrainingStep
    from pot_zk.kinds.mlp import unflatten
    from pot_zk.backends.groth16.integers import dequantise

    integers = _step(spec, 0.05)
    proof = _saved_proof(spec, scheduled_keys, integers, tmp_path, "stepped", 0.05)
    grid = spec.grid("w_before")[0]
    step = TrainingStep(
        architecture=spec.architecture, learning_rate=0.05,
        weights_before=unflatten(torch.from_numpy(dequantise(integers["w_before"], grid)), spec.architecture.param_shapes),
        weights_after=unflatten(torch.from_numpy(dequantise(integers["w_after"], grid)), spec.architecture.param_shapes),
        inputs=torch.from_numpy(dequantise(integers["x"], spec.scale)), targets=torch.from_numpy(dequantise(integers["y"], spec.scale)),
    )
    save_training_step(step, tmp_path / "step.safetensors")
    assert main(["verify-step", str(proof), *common, "--step", str(tmp_path / "step.safetensors")]) == 0, capsys.readouterr().out
    assert "VERIFIED (zk-groth16)" in capsys.readouterr().out
