"""W_t of a step is W_t+1 of the step before, and in a momentum run V_t is V_t+1 of the step
before (docs/runs.md): each link of the chain -- the first, one in the middle, the last --
broken by a consistent rewrite (the step starts from the state the step before started from,
commitments.jsonl and the audit trail re-chained) is `commitment-chain/chain-broken` at that
step and nothing else, so no other check can stand in for the chain check. Runs without
proving (fast): the chain is a record check, no proof is involved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.train import train
from pot_zk.testing.record_rewrites import break_chain_at
from pot_zk.verify.run import verify_run

STEPS = 4
LINKS = {"first": 1, "middle": 2, "last": STEPS - 1}
"""Each link by the step it leads into."""
RUNS = {
    "sgd": ["model.loss=mse"],
    "momentum": ["model.loss=cross_entropy", "optimizer.momentum=0.9"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chain")
    made = {}
    for name, extra in RUNS.items():
        overrides = ["mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", f"train.max_steps={STEPS}",
                     "train.progress=false", f"run_dir={root / name}", *extra]
        assert train(compose_config(overrides)).status == "completed"
        made[name] = root / name
    return made


def _findings(run: Path, tmp_path: Path) -> set[tuple[str, str, int | None]]:
    return {(f.check, f.reason, f.step) for f in verify_run(run, cache_dir=tmp_path / "cache").findings}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_honest_runs_pass_the_chain_check(runs, name, tmp_path):
    report = verify_run(runs[name], cache_dir=tmp_path / "cache")
    assert not report.findings and "commitment-chain" in report.passed, report.summary()


@pytest.mark.parametrize("link", sorted(LINKS, key=LINKS.get))
@pytest.mark.parametrize(("name", "state"), [("sgd", "w_before"), ("momentum", "w_before"), ("momentum", "v_before")])
def test_a_broken_link_is_chain_broken_at_its_step_and_nothing_else(runs, name, state, link, tmp_path):
    run = Path(shutil.copytree(runs[name], tmp_path / "run"))
    step = LINKS[link]
    break_chain_at(run, step, state)
    assert _findings(run, tmp_path) == {("commitment-chain", "chain-broken", step)}
