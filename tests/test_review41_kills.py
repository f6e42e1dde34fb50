"""review41 (mutation testing of the verify side changed since review34): tests that kill the
mutants that survived the rest of the suite. Each passes on this code and fails with its
mutant: the commitment head as a known answer and field by field; forms pot-zk never writes (each
another head for the same run); the "earlier head" note only where it is true; a sample position
past the declared size; a proof reached through a linked directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pot_zk.core.challenge import commitment_head

from test_schedule import _setup

# --- the head: a known answer (kills H02, H11) and every state field by name (kills H03, H04, H05)

_MANIFEST = {
    "circuit_id": "c1", "mode": "development", "proving_enabled": True, "policy": {"name": "every_k", "k": 3},
    "dataset": {"name": "digits", "part": "all", "num_batches": 179, "root": "r1", "holdout": None},
    "training": {"batch_order": "seeded", "epochs": 1, "max_steps": None, "seed": 0},
}
_STREAMED = {**_MANIFEST, "dataset": {"name": "user", "part": "all", "num_batches": None, "root": "r1", "holdout": None, "size": 16, "leaf": "sample"},
             "training": {"batch_order": "recorded", "batches": "streamed"}}
_RECORDS = [{"step": s, "batch_index": s, "w_before": f"{s:064x}", "batch": f"{s + 100:064x}", "w_after": f"{s + 1:064x}", "scale": 12} for s in range(3)]
# computed with the code of main at ee1bd32: a change of what the head hashes (or how) changes these, and every head an
# auditor pinned for an earlier run stops matching (review39 met this for streamed runs): make such a change on purpose
KNOWN_HEADS = {
    "seeded": "4ec4d309c866cc1d394811d72aba5fd0fa3c0775eefdb4744f8f540f4cb975b4",
    "streamed": "bc03f1634177a8e3b883ff34ff3e0cfcdeba5a894d9d2a0dfa7a4dbc79062b22",
}


def test_the_head_of_a_fixed_run_is_a_known_answer():
    assert commitment_head(_MANIFEST, _RECORDS) == KNOWN_HEADS["seeded"]
    streamed = [{**r, "batch_index": None, "samples": [2 * r["step"], 2 * r["step"] + 1]} for r in _RECORDS]
    assert commitment_head(_STREAMED, streamed) == KNOWN_HEADS["streamed"]


@pytest.mark.parametrize("name", ["samples", "learning_rate", "v_before", "v_after", "m_before", "m_after", "t_before", "t_after"])
def test_the_head_covers_each_recorded_state_field_named_here_not_read_from_the_tuple(name):
    """Named one by one: a loop over STATE_FIELDS itself cannot see a name dropped from it."""
    records = [{**r, name: [0, 1] if name == "samples" else (0.1 if name == "learning_rate" else f"{7:064x}")} for r in _RECORDS]
    changed = [dict(r) for r in records]
    changed[1][name] = [2, 3] if name == "samples" else (0.05 if name == "learning_rate" else f"{8:064x}")
    assert commitment_head(_MANIFEST, changed) != commitment_head(_MANIFEST, records), name


# --- the accepted forms (kills C03, C09, C11, C21, C22, C28, C42)

OVERRIDES = ["mode=disabled", "prover=groth16"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """An ezkl run of pot-zk train (seeded, max_steps=4) and a loop's streamed runs: own data, undeclared."""
    from pot_zk.config import compose_config
    from pot_zk.runs.track import track
    from pot_zk.runs.train import train

    root = tmp_path_factory.mktemp("review41")
    train(compose_config([
        "prover=ezkl", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2",
        "handler=fallback", "retry=none", "prover.binary=/bin/false", "train.progress=false", f"cache_dir={root / 'cache'}", f"run_dir={root / 'seeded'}",
    ]), sleep=lambda seconds: None)
    for name in ("own", "undeclared", "scheduled"):
        model, optimizer, loader = _setup()  # test_schedule's 4-3-3 model and its 16 samples, shuffled
        data = loader.dataset
        schedule = ["optimizer.schedule.name=step", "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=0.5"] if name == "scheduled" else []
        with track(model, optimizer, run_dir=root / name, overrides=[*OVERRIDES, *schedule], dataset=None if name == "undeclared" else data) as run:
            for number, (x, y) in enumerate(loader):
                if schedule:
                    for group in optimizer.param_groups:
                        group["lr"] = 0.1 * 0.5 ** (number // 2)
                run.batch(x, y)
                optimizer.zero_grad()
                torch.nn.CrossEntropyLoss()(model(x), y).backward()
                optimizer.step()
    return root


def _pins(run: Path) -> dict:
    """The pins the trainer hands over for the run as it is now (a trainer re-forming its bundle before hand-over)."""
    import shlex

    from pot_zk.runs.bundle import RunBundle
    from pot_zk.runs.summary import verify_command

    bundle = RunBundle.open(run)
    words = shlex.split(verify_command(run, commitment_head(bundle.manifest(), bundle.commitments()), bundle, declared=True))
    flags = {"--expect-head": "expect_head", "--expect-root": "expect_root", "--expect-initial": "expect_initial"}
    found = {flags[w]: words[i + 1] for i, w in enumerate(words) if w in flags}
    found["accept_settings"] = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--accept-setting")
    return found


def _in_both(key_change):
    def edit(run: Path) -> None:
        for name in ("manifest.json", "dataset.json"):
            document = json.loads((run / name).read_text())
            key_change(document["dataset"] if name == "manifest.json" else document)
            (run / name).write_text(json.dumps(document))
    return edit


def _manifest(change):
    def edit(run: Path) -> None:
        manifest = json.loads((run / "manifest.json").read_text())
        change(manifest)
        (run / "manifest.json").write_text(json.dumps(manifest))
    return edit


def _record(step, change):
    def edit(run: Path) -> None:
        from pot_zk.testing.bundle_edit import jsonl, write_jsonl
        records = jsonl(run / "commitments.jsonl")
        change(records[step])
        write_jsonl(run / "commitments.jsonl", records)
    return edit


def _upper_batch(record):
    record["batch"] = "0X" + record["batch"][2:].upper()


FORMS = {  # each: another head for the same run; verify must refuse the form, not only the head
    "seeded-without-batch-order": ("seeded", _manifest(lambda m: m["training"].pop("batch_order")), ("statement", "plan-not-canonical", None)),  # review43
    "float-max-steps": ("seeded", _manifest(lambda m: m["training"].update(max_steps=4.0)), ("statement", "plan-not-canonical", None)),
    "string-max-steps": ("seeded", _manifest(lambda m: m["training"].update(max_steps="4")), ("statement", "plan-not-canonical", None)),
    "recorded-with-epochs": ("own", _manifest(lambda m: m["training"].update(epochs=7)), ("statement", "plan-not-canonical", None)),
    "own-without-leaf": ("own", _manifest(lambda m: m["dataset"].pop("leaf")), ("statement", "plan-not-canonical", None)),
    "undeclared-without-size": ("undeclared", _in_both(lambda d: d.pop("size", None)), ("statement", "plan-not-canonical", None)),
    "undeclared-with-leaf": ("undeclared", _manifest(lambda m: m["dataset"].update(leaf="sample")), ("statement", "plan-not-canonical", None)),
    "schedule-string-gamma": ("scheduled", _manifest(lambda m: m["training"]["schedule"].update(gamma="0.5")), ("statement", "plan-not-canonical", None)),
    "schedule-float-step-size": ("scheduled", _manifest(lambda m: m["training"]["schedule"].update(step_size=2.0)), ("statement", "plan-not-canonical", None)),
    "own-sample-past-end": ("own", _record(1, lambda r: r.update(samples=[r["samples"][0], 16])), ("steps", "batch-samples-malformed", 1)),
    "own-uppercase-batch": ("own", _record(1, _upper_batch), ("steps", "record-not-canonical", 1)),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_form_pot_zk_does_not_write_is_refused(runs, tmp_path, form):
    from pot_zk.testing.bundle_edit import sync_audit
    from pot_zk.verify.run import verify_run

    fixture, edit, finding = FORMS[form]
    run = Path(shutil.copytree(runs / fixture, tmp_path / "run"))
    head = commitment_head(json.loads((run / "manifest.json").read_text()), [json.loads(l) for l in (run / "commitments.jsonl").read_text().splitlines()])
    edit(run)
    sync_audit(run)
    report = verify_run(run, cache_dir=runs / "cache", **(_pins(run) if fixture != "seeded" else {}))
    assert report.references["commitment_head"] != head, "the edit must give another head (else the test shows nothing)"
    assert report.verdict == "FAILED" and finding in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()


def test_a_rewritten_streamed_run_is_not_said_to_have_an_earlier_definitions_head(runs, tmp_path):
    """Kills R01: the note that the pinned head is this run's head as computed before 2026-12-07 (telling the
    auditor to pin the new head) must come only when that is so, never for a run rewritten after hand-over."""
    from pot_zk.testing.bundle_edit import sync_audit
    from pot_zk.verify.run import verify_run

    run = Path(shutil.copytree(runs / "own", tmp_path / "run"))
    handed_over = _pins(run)
    _in_both(lambda d: d.update(size=1_000_000))(run)
    sync_audit(run)
    report = verify_run(run, cache_dir=runs / "cache", **handed_over)
    [finding] = [f for f in report.findings if f.reason == "unexpected-head"]
    assert "before 2026-12-07" not in finding.message, finding.message


def test_a_proof_reached_through_a_linked_directory_is_not_the_bundles_own(runs, tmp_path):
    """Kills L03: tests/test_verify_each_check.py links the proof file itself; a link one directory up passed."""
    from pot_zk.testing.bundle_edit import jsonl
    from pot_zk.verify.run import verify_run

    run = Path(shutil.copytree(runs / "seeded", tmp_path / "run"))
    step_dir = run / Path(next(r for r in jsonl(run / "proofs.jsonl") if r["step"] == 0)["proof"]).parent
    step_dir.rename(step_dir.parent / "elsewhere")
    step_dir.symlink_to("elsewhere")
    report = verify_run(run, cache_dir=runs / "cache")
    assert ("proofs", "missing-proof-file", 0) in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()
