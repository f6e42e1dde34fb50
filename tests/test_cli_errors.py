"""Errors on the command line (pot_zk/cli/main.py, pot_zk/cli/apps.py), from the installed
`pot-zk` script: a configuration error is one line naming key and value, exit 2, with nothing
written (not even Hydra's .hydra/ or train.log); `-v` or HYDRA_FULL_ERROR=1 adds the traceback;
every command says "no such file or directory" or "not a run" with exit 2 (never 1, the verdict
of a forged run); a file that does not parse is named with its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from process_support import run, stderr_lines


def _nothing_written(directory: Path) -> None:
    assert sorted(p.name for p in directory.iterdir()) == [], "the command wrote something"


@pytest.mark.parametrize(("overrides", "line"), [
    (["train.learning_rate=-1"], "pot-zk train: train.learning_rate must be > 0, got -1"),
    (["+train.max_step=6"], "pot-zk train: unknown key train.max_step (did you mean train.max_steps?)"),
    (["train.max_step=6"], "pot-zk train: unknown key train.max_step (did you mean train.max_steps?)"),
    (["train.batch_size=0", "data.holdout=2"],
     "pot-zk train: 2 configuration errors: train.batch_size must be >= 1, got 0; data.holdout must be in [0, 1), got 2"),
    (["prover.binary=/nonexistent/prover"],
     "pot-zk train: prover program '/nonexistent/prover' not found; searched: /nonexistent/prover. Install pot-zk (it provides the "
     "prover programs), or set prover.binary to an absolute path, or add its directory to prover.search_paths."),
    (["mode=production", "prover=groth16"],
     "pot-zk train: mode production refuses dev Groth16 keys (a setup run by the prover itself: it knows the trapdoor and could "
     "forge proofs); set srs.path to the key directory your auditor made with `pot-zk keys new prover=groth16 ...`, or accept "
     "the risk explicitly with srs.allow_dev_srs=true"),
])
def test_a_configuration_error_of_train_is_one_line_exit_2_and_nothing_written(tmp_path, overrides, line):
    failed = run("train", *overrides, "run_dir=run", cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert stderr_lines(failed.stderr) == [line]
    _nothing_written(tmp_path)


def test_show_config_gives_the_same_one_line_errors(tmp_path):
    failed = run("show-config", "train.learning_rate=-1", "+train.max_step=6", cwd=tmp_path)
    assert failed.returncode == 2
    assert stderr_lines(failed.stderr) == [
        "pot-zk show-config: 2 configuration errors: unknown key train.max_step (did you mean train.max_steps?); "
        "train.learning_rate must be > 0, got -1"
    ]
    _nothing_written(tmp_path)


@pytest.mark.parametrize("how", ["-v", "HYDRA_FULL_ERROR=1"])
def test_verbose_or_hydra_full_error_adds_the_traceback(tmp_path, how):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"} if how.startswith("HYDRA") else None
    failed = run("train", *([how] if how == "-v" else []), "train.learning_rate=-1", "run_dir=run", cwd=tmp_path, env=env)
    assert failed.returncode == 2
    lines = stderr_lines(failed.stderr)
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "pot-zk train: train.learning_rate must be > 0, got -1"
    _nothing_written(tmp_path)


COMMANDS = [
    ["verify", "RUN"],
    ["resume", "RUN"],
    ["challenge", "RUN", "--count", "1", "--out", "c.json"],
    ["respond", "RUN", "c.json"],
    ["export", "RUN", "--out", "x.tar.gz"],
    ["prove-pending", "RUN"],
    ["report", "RUN"],
    ["keys", "new", "--run", "RUN", "--out", "keys"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_missing_run_directory_is_a_usage_error_in_every_command(tmp_path, command):
    failed = run(*[a.replace("RUN", "nope") for a in command], cwd=tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    [line] = stderr_lines(failed.stderr)
    assert line.startswith(f"pot-zk {command[0]}: nope") and ("no such" in line or "not a pot-zk run directory" in line), line
    _nothing_written(tmp_path)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] != "prove-pending"], ids=lambda c: c[0])
def test_a_directory_that_is_not_a_run_is_a_usage_error_in_every_command(tmp_path, command):
    """(prove-pending also takes a directory of parked jobs: an empty one has nothing to prove.)"""
    (tmp_path / "empty").mkdir()
    failed = run(*[a.replace("RUN", "empty") for a in command], cwd=tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    [line] = stderr_lines(failed.stderr)
    assert "empty is not a pot-zk run directory (no manifest.json)" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"] and not any((tmp_path / "empty").iterdir())


@pytest.mark.parametrize("command", [["audit", "verify", "nope.jsonl"], ["verify-step", "nope.json"]], ids=lambda c: c[0])
def test_a_missing_file_is_a_usage_error(tmp_path, command):
    failed = run(*command, cwd=tmp_path)
    assert failed.returncode == 2
    [line] = stderr_lines(failed.stderr)
    assert line.startswith(f"pot-zk {command[0]}: nope.json") and "no such file" in line, line


def test_a_manifest_or_config_that_does_not_parse_is_named_with_its_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text('{"format": "pot-zk-run/1",\n  "training": {,}\n}\n')
    for command in (["resume", "run"], ["challenge", "run", "--count", "1", "--out", "c.json"], ["export", "run"]):
        failed = run(*command, cwd=tmp_path)
        assert failed.returncode == 2
        assert stderr_lines(failed.stderr) == [
            f"pot-zk {command[0]}: run/manifest.json line 2 column 16: not JSON (Expecting property name enclosed in double quotes)"
        ]
    (run_dir / "manifest.json").write_text('{"format": "pot-zk-run/1", "training": {"batch_order": "seeded"}}\n')
    (run_dir / "config.yaml").write_text("train:\n  epochs: [1,\nmodel: 2\n")
    failed = run("resume", "run", cwd=tmp_path)
    assert failed.returncode == 2
    [line] = stderr_lines(failed.stderr)
    assert line.startswith("pot-zk resume: run/config.yaml line 4 column 1: not YAML ("), line


TORCH_FREE = COMMANDS + [["audit", "verify", "nope.jsonl"], ["verify-step", "nope.json"]]


@pytest.mark.parametrize("command", TORCH_FREE, ids=lambda c: c[0] + ("-" + c[1] if c[0] in ("keys", "audit") else ""))
def test_a_usage_error_is_reported_before_torch_is_imported(tmp_path, command):
    """A mistyped path costs a fraction of a second, not torch's import (~2-3 s here): each
    command checks its path before it imports what does the work."""
    import subprocess
    import sys

    probe = "import sys; from pot_zk.cli.main import main; status = main(sys.argv[1:]); print('torch' in sys.modules, status)"
    done = subprocess.run([sys.executable, "-c", probe, *[a.replace("RUN", "nope") for a in command]], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "2"], done.stdout + done.stderr
    [line] = stderr_lines(done.stderr)
    assert line.startswith(f"pot-zk {command[0]}: nope"), line


@pytest.mark.parametrize(("command", "line"), [
    (["train", "prover=nope"], "unknown prover 'nope'; valid: ezkl, groth16"),
    (["train", "+train.max_step=6"], "unknown key train.max_step (did you mean train.max_steps?)"),
    (["train", "train.learning_rate=-1", "handler=contine"], "2 configuration errors: unknown handler 'contine'; valid: continue, fail_fast, fallback, retry; "
                                                             "train.learning_rate must be > 0, got -1"),
    (["train", "train.record_loss=maybe"], "train.record_loss=maybe: Value 'maybe' is not a valid bool (type str)"),
    (["train", "data.name=mnist"], "data.name: unknown data set 'mnist'; valid: digits, synthetic"),
    (["show-config", "train.batch_size=0"], "train.batch_size must be >= 1, got 0"),
], ids=["group-option", "key", "two", "type", "data-set", "show-config"])
def test_a_configuration_error_is_reported_before_torch_is_imported(tmp_path, command, line):
    """A mistyped key or value of `pot-zk train` (or show-config) is refused in a fraction of a
    second: composing and checking the configuration (pot_zk/config/compose.py, validate.py)
    imports no torch and no backend; only a configuration that passes is built."""
    import subprocess
    import sys

    probe = "import sys; from pot_zk.cli.main import main; status = main(sys.argv[1:]); print('torch' in sys.modules, status)"
    done = subprocess.run([sys.executable, "-c", probe, *command, "run_dir=run"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "2"], done.stdout + done.stderr
    assert stderr_lines(done.stderr) == [f"pot-zk {command[0]}: {line}"]
    _nothing_written(tmp_path)


def test_train_into_a_directory_holding_other_files_is_refused_and_leaves_them(tmp_path):
    """A review: `pot-zk train run_dir=` (an unset shell variable) trained into the current
    directory and wrote over its config.yaml and train.log."""
    (tmp_path / "config.yaml").write_text("precious\n")
    (tmp_path / "train.log").write_text("notes\n")
    failed = run("train", "run_dir=", "train.max_steps=1", "mode=disabled", cwd=tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    [line] = stderr_lines(failed.stderr)
    assert line.startswith("pot-zk train: ") and "holds files that are not a pot-zk run (config.yaml, train.log): a run would write over them" in line, line
    assert (tmp_path / "config.yaml").read_text() == "precious\n" and (tmp_path / "train.log").read_text() == "notes\n"
    assert {p.name for p in tmp_path.iterdir()} <= {"config.yaml", "train.log", ".pot-zk.lock"}


def test_a_configuration_error_found_as_training_starts_leaves_no_run_directory(tmp_path):
    """A review: errors found once the app ran (the data set's shape, a base run, a key
    directory, a schedule reaching rate 0) left .hydra/, train.log and the lock behind."""
    failed = run("train", "model.dims=[5,8,10]", "mode=disabled", "run_dir=run", cwd=tmp_path)
    assert failed.returncode == 2
    assert stderr_lines(failed.stderr) == ["pot-zk train: the digits data needs a model with 16 or 64 inputs and 10 outputs, not 5 -> 10"]
    _nothing_written(tmp_path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    made = run("train", "model=tiny_mlp", "data=synthetic", "train.max_steps=2", "mode=disabled", f"run_dir={root / 'run'}", cwd=root)
    assert made.returncode == 0, made.stderr
    return root / "run"


@pytest.mark.parametrize(("arguments", "line"), [
    (["verify", "RUN", "--srs", "nope.srs"], "pot-zk verify: --srs nope.srs: no such file or directory"),
    (["verify", "RUN", "--json", "nodir/report.json"], "pot-zk verify: --json nodir/report.json: no such directory "),
    (["verify-step", "bad.json"], "pot-zk verify-step: bad.json: not JSON ("),
    (["keys", "new", "model=tiny_mlp", "data=synthetic", "--out", "bad.json", "--cache-dir", "cache"], "pot-zk keys: bad.json: file exists"),
    (["verify", "cut.tar.gz"], "pot-zk verify: cut.tar.gz is not a readable pot-zk export: "),
    (["export", "other", "--out", "x.tar.gz"], "pot-zk export: other/manifest.json: a bundle of format 'pot-zk-run/9'; this pot-zk reads 'pot-zk-run/1'"),
    (["resume", "latin"], "pot-zk resume: latin/manifest.json: not UTF-8 text ("),
    (["export", "RUN", "--out", "latin"], "pot-zk export: --out latin is a directory; name the archive to write"),
    (["export", "RUN", "--out", "nodir/x.tar.gz"], "pot-zk export: --out nodir/x.tar.gz: no such directory "),
    (["report", "RUN", "--out", "bad.json"], "pot-zk report: --out bad.json is a file; give the directory to write the report to"),
    (["audit", "verify", "latin"], "pot-zk audit: latin is a directory; give its audit trail file (e.g. latin/audit.jsonl)"),
    (["verify", "RUN", "--max-data-values", "0"], "pot-zk verify: --max-data-values must be a count >= 1, got 0"),
    (["verify", "RUN", "--max-records", "-1"], "pot-zk verify: --max-records must be a count >= 1, got -1"),
], ids=["srs", "json", "verify-step-json", "keys-out-file", "truncated-export", "other-format", "not-utf8", "export-out-dir", "export-out-nodir",
        "report-out-file", "audit-dir", "max-data-values", "max-records"])
def test_bad_input_on_the_command_line_is_one_line_exit_2_before_any_work(tiny_run, tmp_path, arguments, line):
    """A review: these were tracebacks (exit 1, the code of a failed verification), or a
    verdict after the whole check (--srs, --json)."""
    import shutil

    (tmp_path / "bad.json").write_text("{\n")
    other = Path(shutil.copytree(tiny_run, tmp_path / "other"))
    (other / "manifest.json").write_text((other / "manifest.json").read_text().replace("pot-zk-run/1", "pot-zk-run/9"))
    latin = Path(shutil.copytree(tiny_run, tmp_path / "latin"))
    (latin / "manifest.json").write_bytes(b'{"format": "\xe9"}')
    exported = run("export", str(tiny_run), "--out", str(tmp_path / "x.tar.gz"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "cut.tar.gz").write_bytes((tmp_path / "x.tar.gz").read_bytes()[:1500])
    failed = run(*[str(tiny_run) if a == "RUN" else a for a in arguments], cwd=tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    [shown] = stderr_lines(failed.stderr)
    assert shown.startswith(line), shown
    assert not (tmp_path / "nodir").exists() and (tmp_path / "x.tar.gz").is_file()


def test_verify_of_a_bundle_of_another_format_fails_and_a_closed_pipe_is_no_traceback(tiny_run, tmp_path):
    import shutil
    import subprocess
    import sys

    other = Path(shutil.copytree(tiny_run, tmp_path / "other"))
    (other / "manifest.json").write_text((other / "manifest.json").read_text().replace("pot-zk-run/1", "pot-zk-run/9"))
    failed = run("verify", str(other), cwd=tmp_path)
    assert failed.returncode == 1 and "unknown-format" in failed.stdout, failed.stdout
    reader_gone = subprocess.Popen([str(Path(sys.executable).parent / "pot-zk"), "verify", str(tiny_run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader_gone.stdout.close()  # before the verdict is printed: its write fails with EPIPE
    err = reader_gone.stderr.read()
    assert reader_gone.wait(timeout=120) == 141 and "Traceback" not in err, err


@pytest.mark.parametrize("command", [["export", "--out", "run.tar.gz"], ["challenge", "--count", "1", "--out", "c.json", "--cache-dir", "cache"]],
                         ids=lambda c: c[0])
def test_an_export_or_a_challenge_of_a_run_does_not_import_torch(tiny_run, tmp_path, command):
    """Both copy or hash records and nothing else: export named the revealed witness's file name
    through the certificate module, challenge its cache directory through verify's modules, and
    each imported torch (3.7 s for a 0.6 s export)."""
    import subprocess
    import sys

    probe = "import sys; from pot_zk.cli.main import main; status = main(sys.argv[1:]); print('torch' in sys.modules, status)"
    done = subprocess.run([sys.executable, "-c", probe, command[0], str(tiny_run), *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-2:] == ["False", "0"], done.stdout + done.stderr
    assert (tmp_path / command[command.index("--out") + 1]).is_file()


def test_printed_commands_quote_paths_with_spaces(tiny_run):
    """A review: a run in a directory with a space printed commands that broke when pasted."""
    import shlex

    from pot_zk.runs.bundle import RunBundle
    from pot_zk.runs.summary import verify_command

    command = verify_command("my runs/run.tar.gz", "ab" * 32, RunBundle.open(tiny_run))
    assert shlex.split(command)[:3] == ["pot-zk", "verify", "my runs/run.tar.gz"], command


def test_a_failed_key_import_leaves_no_key_directory(tmp_path):
    """A review: a failed `keys import-zkey` (or an interrupted `keys new`) left an empty --out."""
    (tmp_path / "junk.zkey").write_bytes(b"junk")
    failed = run("keys", "import-zkey", "junk.zkey", "prover=groth16", "model=tiny_mlp", "data=synthetic", "--out", "keys",
                 "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert failed.returncode == 2
    assert stderr_lines(failed.stderr) == ["pot-zk keys: junk.zkey is not a snarkjs zkey: no 'zkey' magic"]
    assert not (tmp_path / "keys").exists()


def test_train_into_the_files_of_a_run_that_never_started_says_so(tmp_path):
    """A run killed while it was prepared leaves its dataset.json (and maybe config.yaml) but no
    manifest: training into it again is refused naming them as such, not as someone's files."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "dataset.json").write_text("{}")
    (tmp_path / "run" / "config.yaml").write_text("train: {}\n")
    failed = run("train", "run_dir=run", "train.max_steps=1", "mode=disabled", cwd=tmp_path)
    assert failed.returncode == 2
    [line] = stderr_lines(failed.stderr)
    assert "holds the files of a run that never started (config.yaml, dataset.json, no manifest.json: killed while it was prepared?)" in line, line
    (tmp_path / "lock-write").mkdir()  # a review: a kill during the lock record's atomic write left its temporary file
    (tmp_path / "lock-write" / "..pot-zk.lock.json.33q66pe4.tmp").write_text("{")
    failed = run("train", "run_dir=lock-write", "train.max_steps=1", "mode=disabled", cwd=tmp_path)
    [line] = stderr_lines(failed.stderr)
    assert "holds the files of a run that never started (..pot-zk.lock.json.33q66pe4.tmp, no manifest.json" in line, line


def test_a_failed_train_leaves_the_directorys_own_hydra_record_and_log_alone(tmp_path):
    """A review of the cleanup: a failed train removed `.hydra/` and `train.log` it had not made
    (a user's own Hydra app's output directory, or run_dir=.). Such a directory is refused
    before anything is written, and nothing of it is removed."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "keep.yaml").write_text("mine\n")
    (tmp_path / "train.log").write_text("my notes\n")
    failed = run("train", "run_dir=.", "model.dims=[5,8,10]", "mode=disabled", cwd=tmp_path)
    assert failed.returncode == 2
    assert (tmp_path / ".hydra" / "keep.yaml").read_text() == "mine\n" and (tmp_path / "train.log").read_text() == "my notes\n"


def test_a_train_under_its_own_hydra_job_name_runs_and_resume_v_still_prints_records(tmp_path):
    """A review: hydra.job.name=foo made Hydra write foo.log before the run's files, which the
    new-directory check refused; and `-v` taken for a traceback flag hid resume's own -v."""
    made = run("train", "hydra.job.name=foo", "model=tiny_mlp", "data=synthetic", "train.max_steps=1", "mode=disabled", "run_dir=run", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "run" / "foo.log").is_file() and (tmp_path / "run" / "manifest.json").is_file()
    from pot_zk.cli.main import parser

    root = parser("resume")
    assert root.owns_verbose and root.parse_args(["resume", "-v", "run"]).verbose


def test_a_runs_recorded_configuration_takes_a_group_option_then_single_keys_over_it(tiny_run):
    from pot_zk.config.build import load_run_config

    for overrides in (["retry=none", "retry.max_retries=5"], ["retry.max_retries=5", "retry=none"]):
        assert load_run_config(tiny_run / "config.yaml", overrides).retry.max_retries == 5
    assert load_run_config(tiny_run / "config.yaml", ["retry=aggressive"]).retry.max_retries == 6


def test_a_train_failing_inside_hydra_on_a_full_disk_before_its_run_starts_leaves_nothing(tmp_path):
    """A review: Hydra turns an error of its own (here ENOSPC saving .hydra/ on a full 8 KiB
    tmpfs) into exit 1, which skipped the cleanup: .hydra/, train.log and the lock stayed, and
    training again into the directory was refused."""
    import subprocess

    from skip_policy import has_mount_privilege

    if not has_mount_privilege():  # an expected skip only then (tests/conftest.py EXPECTED_SKIPS)
        pytest.skip("no mount privilege (CAP_SYS_ADMIN) to mount a tmpfs")
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)], capture_output=True, text=True)
    assert mounted.returncode == 0, mounted.stderr
    try:
        failed = run("train", f"run_dir={disk / 'run'}", "model=tiny_mlp", "data=synthetic", "mode=disabled", "train.max_steps=2",
                     "train.progress=false", f"cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
        assert failed.returncode != 0 and "No space left on device" in failed.stderr
        assert not (disk / "run").exists(), sorted(p.name for p in (disk / "run").iterdir())
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_verify_json_onto_a_full_disk_is_one_line_and_keeps_the_earlier_report(tmp_path):
    """A review: `verify --json FILE` wrote the report in place: on a full disk a traceback and
    a truncated (empty) report.json, an earlier report at that path lost."""
    import subprocess

    from skip_policy import has_mount_privilege

    if not has_mount_privilege():  # an expected skip only then (tests/conftest.py EXPECTED_SKIPS)
        pytest.skip("no mount privilege (CAP_SYS_ADMIN) to mount a tmpfs")
    trained = run("train", f"run_dir={tmp_path / 'run'}", "model=tiny_mlp", "data=synthetic", "mode=disabled", "train.max_steps=2",
                  "train.progress=false", f"cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(disk)], capture_output=True, text=True)
    assert mounted.returncode == 0, mounted.stderr
    try:
        (disk / "report.json").write_text('{"earlier": true}\n')
        (disk / "fill").write_bytes(b"\0" * 8192)
        failed = run("verify", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--json", str(disk / "report.json"), cwd=tmp_path)
        assert failed.returncode == 2, failed.stderr
        said = stderr_lines(failed.stderr)
        assert len(said) == 1 and said[0].startswith(f"pot-zk verify: StorageError: cannot write {disk / 'report.json'}"), said
        assert (disk / "report.json").read_text() == '{"earlier": true}\n'
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_verify_without_the_runs_backend_installed_is_one_line_exit_2_not_a_failed_bundle(tiny_run, monkeypatch, capsys):
    """review23: it printed `FAILED statement (unreadable-bundle): ... pip install` with exit 1,
    so the verdict blamed the bundle for the verifier's install."""
    from pot_zk.cli.main import main
    from pot_zk.core.extras import missing_extra
    from pot_zk.verify import run as verify_module

    def not_installed(data):
        raise missing_extra(ModuleNotFoundError("No module named 'groth16py'", name="groth16py"))

    monkeypatch.setattr(verify_module, "spec_from_dict", not_installed)
    assert main(["verify", str(tiny_run)]) == 2
    captured = capsys.readouterr()
    assert "result:" not in captured.out
    assert stderr_lines(captured.err) == [
        "pot-zk verify: the groth16 backend (zk-groth16 proofs) needs the Python package 'groth16py', which is not installed: "
        "pip install 'pot-zk[groth16]'"
    ]


def test_hydra_flags_after_the_overrides_work(tmp_path):
    """review25: pot-zk appended its own overrides after a trailing flag, so `show-config k=v
    --cfg job` and `train k=v --multirun` failed with "unrecognized arguments"."""
    shown = run("show-config", "model=tiny_mlp", "--cfg", "job", cwd=tmp_path)
    assert shown.returncode == 0 and "dims:" in shown.stdout, shown.stderr
    swept = run("train", "model=tiny_mlp", "data=synthetic", "train.max_steps=1", "mode=disabled", "train.progress=false",
                f"hydra.sweep.dir={tmp_path / 'sweep'}", "--multirun", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert (tmp_path / "sweep" / "0" / "manifest.json").is_file()


def test_a_log_file_that_cannot_be_written_is_one_warning_line_not_a_traceback_per_record(tmp_path, capsys):
    """review32: on a full disk, Hydra's train.log handler printed a "--- Logging error ---"
    traceback for every record. The app's logging configuration (conf/hydra/job_logging) now
    says once that the file is not written and drops its records."""
    import logging
    import logging.config

    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "conf" / "hydra" / "job_logging" / "pot_zk.yaml").read_text())
    config["handlers"]["file"]["filename"] = "/dev/full"  # every write: ENOSPC
    config["handlers"]["console"]["stream"] = "ext://sys.stdout"
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(config)
        for number in range(5):
            logging.getLogger("pot_zk.test").info("record %d", number)
        logging.getLogger("pot_zk.test").warning("still shown on the terminal")
        file_handler = next(h for h in root.handlers if getattr(h, "baseFilename", None) == "/dev/full")
        file_handler.close()
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.handlers[:], root.level = saved
    captured = capsys.readouterr()
    assert stderr_lines(captured.err) == ["pot-zk warning: /dev/full cannot be written (No space left on device); it is not written to from here on"]
    assert "still shown on the terminal" in captured.out


def test_verify_help_names_the_limits_verify_applies():
    """The help's defaults are the constants verify uses (they are written out: the CLI imports no torch)."""
    from pot_zk.verify.limits import MAX_DATA_VALUES, MAX_RECORDS

    shown = run("verify", "--help", cwd=Path.cwd())
    text = " ".join(shown.stdout.split())
    assert shown.returncode == 0, shown.stderr
    for option, default in (("--max-data-values", MAX_DATA_VALUES), ("--max-records", MAX_RECORDS)):
        assert f"(default: {default:,}," in text.split(f"{option} N")[-1].split(" --", 1)[0], shown.stdout


def test_a_sweep_into_a_directory_whose_job_is_held_is_refused_before_hydra_writes(tmp_path):
    """review53: a second sweep into the directory of a sweep still running wrote its job's
    .hydra/ over the live job's (Hydra writes it before the job takes its run's lock), and its
    refused job left job_error.json there. It is refused in one line, and writes nothing; a
    sweep without hydra.sweep.dir gets a directory of its own, to the microsecond."""
    import subprocess
    import sys

    job = tmp_path / "sweep" / "0"
    job.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pot_zk.runs.lock import RunLock\n"
         "with RunLock(sys.argv[1], 'pot-zk train'):\n    print('held', flush=True)\n    time.sleep(120)", str(job)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        before = sorted(p.name for p in job.iterdir())
        swept = [
            run("train", "model=tiny_mlp", "data=synthetic", "train.max_steps=1", "mode=disabled", "train.progress=false",
                "train.learning_rate=0.05,0.07", f"{given}hydra.sweep.dir={tmp_path / 'sweep'}", "--multirun", cwd=tmp_path)
            for given in ("", "++")  # review54: ++hydra.sweep.dir=D was not checked
        ]
    finally:
        holder.kill()
        holder.wait()
    for refused in swept:
        assert refused.returncode == 2, refused.stdout + refused.stderr
        [line] = stderr_lines(refused.stderr)
        assert line.startswith(f"pot-zk train: the sweep directory {tmp_path / 'sweep'} is in use ({job} is in use by pid {holder.pid}")
        assert line.endswith("pass hydra.sweep.dir=DIR to sweep into another directory")
    assert sorted(p.name for p in job.iterdir()) == before and [p.name for p in (tmp_path / "sweep").iterdir() if p.name != ".pot-zk.sweep.lock"] == ["0"]
    sweeping = subprocess.Popen(  # review54: between jobs no job is held; the sweep's own lock is, for the whole sweep
        [sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
         "with FileLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)", str(tmp_path / "sweep" / ".pot-zk.sweep.lock")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert sweeping.stdout.readline() == "held\n"
        second = run("train", "model=tiny_mlp", "data=synthetic", "train.max_steps=1", "mode=disabled", "train.progress=false",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", "--multirun", cwd=tmp_path)
    finally:
        sweeping.kill()
        sweeping.wait()
    assert second.returncode == 2 and stderr_lines(second.stderr) == [
        f"pot-zk train: the sweep directory {tmp_path / 'sweep'} is in use by another sweep: pass hydra.sweep.dir=DIR to sweep into another directory"
    ], second.stderr
    assert sorted(p.name for p in job.iterdir()) == before
    default = run("train", "model=tiny_mlp", "data=synthetic", "train.max_steps=1", "mode=disabled", "train.progress=false", "--multirun",
                  cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    [day] = (tmp_path / "multirun").iterdir()
    [when] = day.iterdir()
    assert len(when.name.split("-")) == 4 and len(when.name.split("-")[3]) == 6, when.name  # HH-MM-SS-microseconds
