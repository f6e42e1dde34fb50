"""`pot-zk respond RUN C.json` with RUN relative to the working directory, while the zk-groth16
key holder the training started (it stays 60 s, serving the same cache and circuit) runs from
another directory: the challenged steps are proven (found by a review: the holder was handed
the witness path relative to the responder's directory and the steps were recorded failed). The
auditor challenges the export archive it was handed."""

from __future__ import annotations

import json

import pytest

from process_support import holder_pid, kill, run, tiny_run

pytestmark = pytest.mark.prover


def test_respond_with_a_relative_run_path_answers_through_a_warm_key_holder(tmp_path):
    elsewhere, cache = tmp_path / "elsewhere", tmp_path / "cache"
    elsewhere.mkdir()
    run_dir = tmp_path / "run"
    try:
        trained = run("train", *tiny_run(run_dir, cache, steps=4, k=4), cwd=elsewhere)
        assert trained.returncode == 0, trained.stderr
        assert holder_pid(cache, run_dir) is not None, "the key holder of the training is warm"
        assert run("export", "run", "--out", "run.tar.gz", cwd=tmp_path).returncode == 0
        # the auditor challenges the export it was handed (review24: refused as "an archive")
        challenged = run("challenge", "run.tar.gz", "--count", "2", "--nonce", "00", "--out", "C.json", "--cache-dir", str(cache), cwd=tmp_path)
        assert challenged.returncode == 0, challenged.stderr
        assert ("the trainer answers with: pot-zk respond RUN C.json (RUN: its own run directory, which holds the witnesses an "
                "export leaves out)") in challenged.stdout
        steps = json.loads((tmp_path / "C.json").read_text())["steps"]
        answered = run("respond", "run", "C.json", cwd=tmp_path)
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert f"{len(steps)} of {len(steps)} challenged steps proven" in answered.stdout
        verified = run("verify", "run", "--cache-dir", str(cache), "--challenge", "C.json", cwd=tmp_path)
        assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout
        own = run("challenge", "run", "--count", "1", "--out", "C2.json", "--cache-dir", str(cache), cwd=tmp_path)
        assert own.returncode == 0 and "the trainer answers with: pot-zk respond run C2.json\n" in own.stdout, own.stdout
    finally:
        kill(holder_pid(cache, run_dir))
