"""A LoRA run names its frozen base by commitment only: a trainer who fine-tuned another base
(say, a backdoored one) records that base consistently in every step, both model files and the
manifest, and every check of the run itself passes. ``verify --expect-base`` pins it (real
bundles; proving disabled: the base is a record question, no proof can tell)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.base_run import base_commitment
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

COMMON = ["prover=ezkl", "mode=disabled", "data=synthetic", "train.batch_size=2", "train.max_steps=2", "train.progress=false", "model.loss=mse"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("base")
    paths = {name: root / name for name in ("base", "other", "lora")}
    for name, seed in (("base", 0), ("other", 1)):
        assert train(compose_config(["model=tiny_mlp", *COMMON, f"train.seed={seed}", f"run_dir={paths[name]}"])).status == "completed"
    lora = ["model=lora_tiny", f"model.base_run={paths['other']}", *COMMON, f"run_dir={paths['lora']}"]
    assert train(compose_config(lora)).status == "completed"
    return paths


def _findings(report) -> set[tuple[str, str]]:
    return {(f.check, f.reason) for f in report.findings}


def test_a_lora_run_on_another_base_passes_its_own_checks_and_fails_the_expected_base(runs, tmp_path):
    agreed, used = base_commitment(runs["base"]), base_commitment(runs["other"])
    assert agreed != used
    alone = verify_run(runs["lora"], cache_dir=tmp_path)  # the base unpinned: the trainer's word, most of the model
    assert _findings(alone) == {("base-model", "base-not-pinned")} and alone.references["base_commitment"] == used
    assert "--expect-base" in alone.findings[0].message
    pinned = verify_run(runs["lora"], cache_dir=tmp_path, expect_base=agreed.upper())
    assert _findings(pinned) == {("base-model", "unexpected-base")}
    honest = verify_run(runs["lora"], cache_dir=tmp_path, expect_base=used)
    assert not honest.findings and "base-reference" in honest.passed
    assert not verify_run(runs["lora"], cache_dir=tmp_path, expect_base="0x" + used).findings  # as a groth16 commitment is written
    assert any("not its layer shapes" in note for note in honest.notes)  # a commitment pins values; the base run pins shapes


def test_an_expected_base_for_a_run_without_one_is_a_finding(runs, tmp_path):
    report = verify_run(runs["base"], cache_dir=tmp_path, expect_base=base_commitment(runs["base"]))
    assert _findings(report) == {("base-model", "unexpected-base")}
    assert "base_commitment" not in verify_run(runs["base"], cache_dir=tmp_path).references


def test_pot_zk_verify_takes_expect_base(runs, tmp_path, capsys):
    from pot_zk.cli.main import main

    code = main(["verify", str(runs["lora"]), "--cache-dir", str(tmp_path), "--json", "-", "--expect-base", base_commitment(runs["base"])])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and [(f["check"], f["reason"]) for f in report["findings"]] == [("base-model", "unexpected-base")]


def test_the_base_run_as_expect_base_pins_the_base_and_a_reshaped_auditors_base_is_refused(runs, tmp_path):
    """--expect-base RUN reads the base run's last commitment and the architecture it trained;
    the auditor's own base model with other layer shapes (same names, same values in order) is
    refused by base_commitment rather than hashed to the same commitment."""
    from safetensors.torch import load_file

    from pot_zk.backends.registry import spec_from_dict
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.verify.base_model import base_commitment as auditors_base_commitment

    assert _findings(verify_run(runs["lora"], cache_dir=tmp_path, expect_base=runs["base"])) == {("base-model", "unexpected-base")}
    assert not verify_run(runs["lora"], cache_dir=tmp_path, expect_base=runs["other"]).findings
    with pytest.raises(ConfigurationError, match="no such file or directory"):
        verify_run(runs["lora"], cache_dir=tmp_path, expect_base=tmp_path / "missing")
    spec = spec_from_dict(json.loads((runs["lora"] / "manifest.json").read_text())["circuit"])
    state = load_file(runs["other"] / "model_final.safetensors")
    assert auditors_base_commitment(state, spec) == base_commitment(runs["other"])
    reshaped = {**state, "0.weight": state["0.weight"].reshape(state["0.weight"].shape[::-1]).clone()}
    with pytest.raises(ConfigurationError, match="layer shapes are not the statement's base: 0.weight"):
        auditors_base_commitment(reshaped, spec)


def test_a_malformed_base_run_is_refused_and_one_named_like_a_commitment_is_read_as_a_run_only_as_a_path(runs, tmp_path, monkeypatch):
    """(Found by a review.) A base run whose last commitment record lacks w_after is named, not a
    traceback (it fails its own checks: base-not-verified; read unverified, a one-line usage
    error); a directory named like a commitment is read as the run it is."""
    from pot_zk.verify.references import BaseRun
    import shutil

    from pot_zk.exceptions import ConfigurationError

    broken = Path(shutil.copytree(runs["other"], tmp_path / "broken"))
    records = (broken / "commitments.jsonl").read_text().splitlines()
    last = json.loads(records[-1])
    del last["w_after"]
    (broken / "commitments.jsonl").write_text("\n".join([*records[:-1], json.dumps(last)]) + "\n")
    assert _findings(verify_run(runs["lora"], cache_dir=tmp_path, expect_base=broken)) == {("base-model", "base-not-verified")}
    with pytest.raises(ConfigurationError, match="cannot read the base run .*malformed"):
        BaseRun.read(broken)
    shutil.copytree(runs["base"], tmp_path / ("ab" * 32))
    monkeypatch.chdir(tmp_path)
    report = verify_run(runs["lora"], cache_dir=tmp_path, expect_base="./" + "ab" * 32)
    assert _findings(report) == {("base-model", "unexpected-base")}
    assert base_commitment(runs["base"]).lower().removeprefix("0x") in report.findings[0].message, report.findings[0].message  # read as the run
    report = verify_run(runs["lora"], cache_dir=tmp_path, expect_base="ab" * 32)  # review29: 64 hex digits are a commitment, always
    assert _findings(report) == {("base-model", "unexpected-base")} and "you expect " + "ab" * 32 in report.findings[0].message


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / "copy"))


@pytest.mark.parametrize("edit", ["a-steps-base", "base-undeclared", "base-in-the-final-model"])
def test_each_base_check_names_its_finding(runs, tmp_path, edit):
    """Mutation testing found these base checks removable with every test passing."""
    from safetensors.torch import load_file, save_file

    from pot_zk.testing.bundle_edit import jsonl, read_json, sync_audit, write_json, write_jsonl

    run = _copy(runs["lora"], tmp_path)
    expected = {"a-steps-base": ("base-model", "base-mismatch", 1), "base-undeclared": ("base-model", "base-mismatch", 0),
                "base-in-the-final-model": ("final-model", "base-mismatch", None)}[edit]
    if edit == "a-steps-base":
        records = jsonl(run / "commitments.jsonl")
        records[1]["base"] = records[0]["w_before"]
        write_jsonl(run / "commitments.jsonl", records)
    elif edit == "base-undeclared":
        manifest = read_json(run / "manifest.json")
        manifest["base"]["commitment"] = None
        write_json(run / "manifest.json", manifest)
    else:
        tensors = load_file(str(run / "model_final.safetensors"))
        name = next(k for k in tensors if "base" in k and k.endswith("weight"))
        tensors[name] = tensors[name] + 1.0
        save_file(tensors, str(run / "model_final.safetensors"))
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache", expect_base=base_commitment(runs["other"]))
    assert expected in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()


def test_an_expected_base_commitment_is_never_read_as_a_run_of_that_name(tmp_path, monkeypatch):
    """review29: --expect-base HEX was read as a base run where a directory of that name existed
    (one a trainer may plant beside its bundle): its last commitment, unverified, became the base."""
    from pot_zk.verify.references import base_reference

    hex_value = "0x" + "ab" * 32
    monkeypatch.chdir(tmp_path)
    (tmp_path / hex_value).mkdir()
    (tmp_path / hex_value.removeprefix("0x")).mkdir()
    assert base_reference(hex_value) == hex_value
    assert base_reference(hex_value.removeprefix("0x")) == hex_value.removeprefix("0x")


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    """Bases trained on all of the data set and on its first half (data.part=base), and a LoRA
    run adapting each on the second half (data.part=adapt)."""
    root = tmp_path_factory.mktemp("parts")
    paths = {name: root / name for name in ("base-all", "base-half", "lora-on-all", "lora-on-half")}
    for name, part in (("base-all", "all"), ("base-half", "base")):
        assert train(compose_config(["model=tiny_mlp", *COMMON, f"data.part={part}", f"run_dir={paths[name]}"])).status == "completed"
    for name, base in (("lora-on-all", "base-all"), ("lora-on-half", "base-half")):
        lora = ["model=lora_tiny", f"model.base_run={paths[base]}", *COMMON, "data.part=adapt", f"run_dir={paths[name]}"]
        assert train(compose_config(lora)).status == "completed"
    return paths


def test_held_out_samples_the_base_run_trained_on_are_named_when_the_base_run_is_given(parts, tmp_path):
    """review33: a base trained on all samples, adapted on the second half: most of the LoRA
    run's held-out samples were the base's training samples, and verify said VERIFIED."""
    report = verify_run(parts["lora-on-all"], cache_dir=tmp_path, expect_base=parts["base-all"])
    assert _findings(report) == {("holdout", "trained-by-base")}, report.summary()
    assert f"of the 6 held-out samples are in the training split of the base run {parts['base-all']} (data.part=all)" in report.summary()


def test_a_base_on_one_half_adapted_on_the_other_shares_no_sample_and_a_commitment_says_what_is_not_checked(parts, tmp_path):
    assert not verify_run(parts["lora-on-half"], cache_dir=tmp_path, expect_base=parts["base-half"]).findings
    by_commitment = verify_run(parts["lora-on-all"], cache_dir=tmp_path, expect_base=base_commitment(parts["base-all"]))
    assert not by_commitment.findings
    assert any("whether the base model was trained on these samples is not checked" in note for note in by_commitment.notes)


def _edited_copy(run: Path, destination: Path, edit) -> Path:
    import shutil

    shutil.copytree(run, destination)
    edit(destination)
    return destination


def test_a_base_run_that_fails_its_own_checks_is_no_reference(runs, tmp_path):
    """review50: --expect-base RUN read the base bundle's last commitment unchecked: with one line
    of the agreed base's commitments.jsonl set to the final weights of the base the LoRA run
    really adapted, verify passed base-reference. The base is now verified here too, and a base
    that fails its own checks is named; an honest one is stated with its verdict and head."""
    def last_record_to_others(run: Path) -> None:
        records = [json.loads(line) for line in (run / "commitments.jsonl").read_text().splitlines()]
        records[-1]["w_after"] = base_commitment(runs["other"])
        (run / "commitments.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    edited = _edited_copy(runs["base"], tmp_path / "edited-base", last_record_to_others)
    assert base_commitment(edited) == base_commitment(runs["other"])
    report = verify_run(runs["lora"], cache_dir=tmp_path, expect_base=edited)
    assert _findings(report) == {("base-model", "base-not-verified")}, report.summary()
    [finding] = report.findings
    assert "steps (audit-mismatch)" in finding.message and "--expect-base HEX" in finding.message
    assert "base-reference" not in report.passed
    honest = verify_run(runs["lora"], cache_dir=tmp_path, expect_base=runs["other"])
    head = verify_run(runs["other"], cache_dir=tmp_path).references["commitment_head"]
    assert honest.references["base_run"] == f"{runs['other']}: UNPROVEN when verified here, commitment head {head}"
    assert any(note.startswith(f"base run {runs['other']}: UNPROVEN when verified here") and "no step of it carries a verified proof" in note
               for note in honest.notes), honest.notes


def test_a_base_manifest_edited_to_hide_the_held_out_overlap_is_no_reference(parts, tmp_path):
    """review50: trained-by-base read the held-out set from the base run's manifest unchecked:
    its held-out fraction edited from 0.2 to 0.95 hid the overlap, and verify passed holdout."""
    def hide(run: Path) -> None:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["dataset"]["holdout"]["fraction"] = 0.95
        (run / "manifest.json").write_text(json.dumps(manifest))

    edited = _edited_copy(parts["base-all"], tmp_path / "edited-base", hide)
    report = verify_run(parts["lora-on-all"], cache_dir=tmp_path, expect_base=edited)
    assert ("base-model", "base-not-verified") in _findings(report) and not report.ok, report.summary()


@pytest.mark.parametrize("trick", ["fifo", "deep-manifest", "many-records"])
def test_a_base_run_is_verified_before_anything_of_it_is_read(runs, tmp_path, trick):
    """review51: --expect-base RUN read the base's commitments.jsonl and manifest before verifying
    it: a named pipe there hung verify, ten million lines were parsed past --max-records (68 s,
    6.3 GB), a manifest nested 100,000 deep was a RecursionError traceback. The base is verified
    first, and of one that fails nothing more is read: base-not-verified, at once."""
    import os
    import shutil
    import subprocess
    import sys

    base = Path(shutil.copytree(runs["other"], tmp_path / "base"))
    limit = None
    if trick == "fifo":
        (base / "commitments.jsonl").unlink()
        os.mkfifo(base / "commitments.jsonl")
    elif trick == "deep-manifest":
        (base / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    else:
        limit = max(len((runs["lora"] / name).read_text().splitlines()) for name in ("audit.jsonl", "commitments.jsonl"))
        with (base / "commitments.jsonl").open("a") as records:
            records.write("{}\n" * (limit + 1))
    command = [str(Path(sys.executable).parent / "pot-zk"), "verify", str(runs["lora"]), "--cache-dir", str(tmp_path / "cache"), "--expect-base", str(base)]
    done = subprocess.run([*command, *(["--max-records", str(limit)] if limit else [])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "FAILED base-model (base-not-verified)" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
