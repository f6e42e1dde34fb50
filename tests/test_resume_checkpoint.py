"""A resumed run goes on from its checkpoint, which must be the state the last committed step
ended in: a checkpoint whose weights differ from the last W_t+1 commitment (the velocity of a
momentum run left as it was) is refused before anything is recorded for the next step, as a
replaced velocity is (tests/test_momentum.py). Runs without proving, stopped after two of four
steps the way a kill leaves them (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.exceptions import InvalidModelStateError
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import load_model, save_model
from pot_zk.runs.checkpoint import OPTIMIZER_PREFIX
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

KINDS = {"sgd": ["model.loss=mse"], "momentum": ["model.loss=cross_entropy", "optimizer.momentum=0.9"]}


def _stopped_after_two_steps(tmp_path: Path, kind: str, weight_shift: float) -> tuple[Path, list[str]]:
    """A 4-step run as a kill after step 1 leaves it (records of steps 0-1, the trail cut before
    step 2, no final model), its checkpoint the state after step 1 with one weight moved by
    ``weight_shift``."""
    common = ["mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.progress=false", *KINDS[kind]]
    run, shorter = tmp_path / "run", tmp_path / "shorter"
    overrides = [*common, "train.max_steps=4", f"run_dir={run}"]
    assert train(compose_config(overrides)).status == "completed"
    assert train(compose_config([*common, "train.max_steps=2", f"run_dir={shorter}"])).status == "completed"
    lines = (run / files.COMMITMENTS).read_text().splitlines()
    (run / files.COMMITMENTS).write_text("".join(line + "\n" for line in lines[:2]))
    audit = (run / files.AUDIT).read_text().splitlines()
    cut = next(i for i, line in enumerate(audit) if json.loads(line)["event"] == "commitment" and json.loads(line)["step"] == 2)
    (run / files.AUDIT).write_text("".join(line + "\n" for line in audit[:cut]))
    scores = [line for line in (run / files.EVALUATIONS).read_text().splitlines() if json.loads(line)["after_step"] == 0]
    (run / files.EVALUATIONS).write_text("".join(line + "\n" for line in scores))
    (run / files.FINAL_MODEL).unlink()
    state, metadata = load_model(shorter / files.CHECKPOINT)
    weight = next(key for key in sorted(state) if not key.startswith(OPTIMIZER_PREFIX))
    state[weight] = state[weight].clone()
    state[weight].view(-1)[0] += weight_shift
    assert (kind == "momentum") == any(key.startswith(f"{OPTIMIZER_PREFIX}momentum_buffer.") for key in state)
    save_model(state, run / files.CHECKPOINT, metadata)
    return run, overrides


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_unchanged_checkpoint_resumes_and_the_run_verifies(tmp_path, kind):
    run, overrides = _stopped_after_two_steps(tmp_path, kind, 0.0)
    assert train(compose_config(overrides), resume=True).status == "completed"
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert not report.findings and len((run / files.COMMITMENTS).read_text().splitlines()) == 4, report.summary()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_checkpoint_whose_weights_are_not_the_last_commitment_is_refused(tmp_path, kind):
    run, overrides = _stopped_after_two_steps(tmp_path, kind, 2.0**-6)  # 64 units of the 2**-12 commitment grid
    with pytest.raises(InvalidModelStateError) as refused:
        train(compose_config(overrides), resume=True)
    assert refused.value.context["step"] == 2 and "w_after" in refused.value.message
    assert len((run / files.COMMITMENTS).read_text().splitlines()) == 2, "nothing recorded for a step that does not continue the run"
