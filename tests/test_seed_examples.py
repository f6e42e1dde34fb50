"""The seed's two usage examples and its SGD fallback snippet: in the docs verbatim, run with
failing prover programs that reach every branch (the real-prover runs are in
tests/zk/test_seed_examples_proven.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import tenacity.nap
import torch

from pot_zk.exceptions import ProofGenerationError, RetryExhaustedError
from seed_examples import (
    LEARNING_RATE,
    SEED_AUDITOR_INTEGRATION,
    SEED_AUTO_PROVER,
    SEED_SGD_FALLBACK,
    run_example,
    seed_namespace,
    sgd_fallback_method,
)

ROOT = Path(__file__).resolve().parents[1]


def audit_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]


def only_run(parent: Path) -> Path:
    (run,) = parent.iterdir()
    return run


@pytest.mark.parametrize("document", ["README.md", "docs/integration.md"])
@pytest.mark.parametrize("example", [SEED_AUTO_PROVER, SEED_AUDITOR_INTEGRATION], ids=["auto_prover", "auditor_integration"])
def test_the_docs_show_the_seed_examples_verbatim(document, example):
    assert f"```python\n{example}```" in (ROOT / document).read_text()


def test_the_integration_docs_show_the_seeds_sgd_fallback_snippet_verbatim():
    assert f"```python\n{SEED_SGD_FALLBACK}```" in (ROOT / "docs/integration.md").read_text()


def test_the_docs_setup_block_makes_the_step_the_tests_run_the_examples_on():
    text = (ROOT / "docs/integration.md").read_text()
    block = next(b.split("```")[0] for b in text.split("```python\n")[1:] if "model_before = copy.deepcopy" in b)
    documented, tested = run_example(block, {}), seed_namespace(0)
    for name in ("logger", "ProverNotFoundError", "InvalidModelStateError", "RetryExhaustedError"):
        assert documented[name] is tested[name]
    for name in ("model_before", "model_after"):
        assert all(torch.equal(a, b) for a, b in zip(documented[name].state_dict().values(), tested[name].state_dict().values()))
    assert all(torch.equal(documented["batch_data"][k], tested["batch_data"][k]) for k in ("inputs", "targets"))
    before, after = (dict(documented[n].state_dict()) for n in ("model_before", "model_after"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.fixture
def seed_dir(tmp_path, monkeypatch):
    """Run the examples from an empty directory (their default work directories land there)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("POT_ZK_CACHE", str(tmp_path / "cache"))
    return work


def test_a_missing_prover_reaches_the_prover_not_found_branch(seed_dir, monkeypatch, caplog, capsys):
    monkeypatch.setenv("POT_ZK_PROVER", str(seed_dir / "no-such-prover"))
    with caplog.at_level(logging.ERROR, logger="training"):
        run_example(SEED_AUTO_PROVER, seed_namespace())
    assert [r.getMessage() for r in caplog.records if r.name == "training"] == [f"Install prover binary: {seed_dir / 'no-such-prover'}"]
    assert "Proof generated" not in capsys.readouterr().out


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """The sleeps between attempts, recorded instead of slept: the examples take the default
    schedule (1, 2, 4 s plus jitter), which sleeps with tenacity's default sleep."""
    recorded: list[float] = []
    monkeypatch.setattr(tenacity.nap, "sleep", recorded.append)
    return recorded


def unstartable(directory: Path) -> Path:
    """A prover file that exists and is executable but cannot be started (no interpreter)."""
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / "unstartable-prover"
    program.write_text("#!/nonexistent/interpreter\n")
    program.chmod(0o755)
    return program


@pytest.mark.parametrize("behaviour, last_error", [
    (("crash",), "crashed with exit code 1: (no message)"),
    (("exit", "70"), "failed to prove: simulated exit 70"),
    (("garbage",), "exited 0 but its stdout is not one JSON document"),
    (None, "could not start prover"),
], ids=["crash", "exit-70", "garbage", "unstartable"])
def test_every_proof_generation_failure_reaches_the_retry_exhausted_branch_after_four_attempts(
    seed_dir, make_prover, monkeypatch, caplog, slept, behaviour, last_error
):
    program = make_prover(*behaviour) if behaviour else unstartable(seed_dir.parent / "bin")
    monkeypatch.setenv("POT_ZK_PROVER", str(program))
    with caplog.at_level(logging.ERROR, logger="training"):
        run_example(SEED_AUTO_PROVER, seed_namespace())
    (message,) = [r.getMessage() for r in caplog.records if r.name == "training"]
    assert message.startswith("Persistent failure: ") and last_error in message
    events = audit_events(only_run(seed_dir / "outputs" / "auto_prover"))
    assert [e["attempt"] for e in events if e["event"] == "attempt"] == [1, 2, 3, 4]
    assert [e["planned_sleep_s"] for e in events if e["event"] == "retry.sleep"] == slept
    assert all(base <= sleep <= base + 0.5 for base, sleep in zip([1, 2, 4], slept, strict=True))
    assert [e["event"] for e in events][-2:] == ["halt", "run.end"]


def test_an_inconsistent_model_reaches_the_invalid_model_state_branch_before_any_file(seed_dir, caplog):
    namespace = seed_namespace()
    namespace["model_after"] = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with caplog.at_level(logging.ERROR, logger="training"):
        run_example(SEED_AUTO_PROVER, namespace)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "training"]
    assert message.startswith("Fix model format: model_before and model_after have different architectures")
    assert list(seed_dir.iterdir()) == []


def test_the_integration_example_continues_past_a_failing_prover_and_prints_its_rate(seed_dir, make_prover, monkeypatch, capsys, slept):
    monkeypatch.setenv("POT_ZK_PROVER", str(make_prover("garbage")))
    namespace = run_example(SEED_AUDITOR_INTEGRATION, seed_namespace())
    assert capsys.readouterr().out.strip().endswith("Success rate: 0.0%")
    result = namespace["result"]
    assert (result["status"], result["proof_type"], result["attempts"]) == ("failed", None, 4)
    assert (result["error"]["error_class"], result["error"]["last_error"]["error_class"]) == ("RetryExhaustedError", "ProverProtocolError")
    assert namespace["stats"]["requested"] == 1 and namespace["stats"]["attempts"] == 4 and len(slept) == 3
    events = audit_events(only_run(seed_dir / "outputs" / "zk_integration"))
    retries = ["attempt", "retry.sleep"] * 3
    assert [e["event"] for e in events] == ["run.start", "commitment", *retries, "attempt", "strategy.failed", "proof.result"]
    assert (events[1]["step"], events[1]["epoch"]) == (1, 1)


def test_the_sgd_fallback_snippet_returns_the_provers_proof_or_raises_naming_the_failure(seed_dir, make_prover, monkeypatch, slept):
    """``AutoProver(lora_config=...).prove_sgd_step(...)`` as the seed's core prover calls it:
    the proof file's bytes and type from the prover program, or the snippet's own error."""
    fallback = sgd_fallback_method()
    core_prover = SimpleNamespace(lora_config={"rank": 2, "alpha": 4.0, "target_modules": ["0"]})
    namespace = seed_namespace()
    step = (namespace["model_before"], namespace["model_after"], namespace["batch_data"], LEARNING_RATE)
    program = make_prover("ok")
    monkeypatch.setenv("POT_ZK_PROVER", str(program))
    proof, proof_type = fallback(core_prover, *step)
    assert proof_type == "zk-halo2" and json.loads(proof)["step"] == 0
    assert make_prover("crash") == program
    with pytest.raises(ProofGenerationError, match="^SGD fallback failed: gave up after 4 attempt") as caught:
        fallback(core_prover, *step)
    assert isinstance(caught.value.__context__, RetryExhaustedError) and len(slept) == 3
