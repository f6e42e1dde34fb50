"""pot_zk/core/process_exit.py: a pot-zk process (the `pot-zk` script, a prover program, a key
holder) ends without the interpreter's teardown once its work is done, with its output flushed,
its atexit handlers run and its status kept; a signal in that moment ends it with that status
(review40: a Ctrl-C in the second of teardown after a run's summary ended `pot-zk train` by the
signal, without a word); a thread that is not a daemon is still waited for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    program = "import atexit, os, signal, sys, threading, time\nfrom pot_zk.core.process_exit import exit_now\n" + code
    return subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_the_output_is_flushed_the_atexit_handlers_run_and_the_status_is_kept(tmp_path):
    done = _run("atexit.register(lambda: open('ran', 'w').write('yes'))\nprint('buffered, not flushed', end='')\nsys.stderr.write('and this')\nexit_now(5)", tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (5, "buffered, not flushed", "and this")
    assert (tmp_path / "ran").read_text() == "yes"


def test_the_interpreters_teardown_is_skipped(tmp_path):
    """What costs ~1 CPU-s after torch's import: the module objects torn down one by one (here
    one with a finaliser, which only that teardown calls)."""
    (tmp_path / "alive").write_text("")
    done = _run("class Late:\n    def __del__(self, unlink=os.unlink):\n        unlink('alive')\nkept = Late()\nexit_now(0)", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "alive").exists(), "the interpreter tore the module down"


def test_a_signal_while_the_process_ends_ends_it_with_the_commands_status(tmp_path):
    for signum in ("SIGINT", "SIGTERM"):
        code = f"atexit.register(lambda: (os.kill(os.getpid(), signal.{signum}), time.sleep(30)))\nprint('done')\nexit_now(7)"
        done = _run(code, tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (7, "done\n", ""), signum


def test_a_thread_that_is_not_a_daemon_is_waited_for(tmp_path):
    code = "threading.Thread(target=lambda: (time.sleep(0.5), open('written', 'w').write('yes'))).start()\nexit_now(4)"
    done = _run(code, tmp_path)
    assert done.returncode == 4, done.stderr
    assert (tmp_path / "written").read_text() == "yes"


def test_the_pot_zk_script_ends_through_it(tmp_path):
    script = Path(sys.executable).parent / "pot-zk"
    assert "console()" in script.read_text(), "the installed script calls pot_zk.cli.main:console (pip install -e . again?)"
    done = subprocess.run([str(script), "verify", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (2, "pot-zk verify: nope: no such file or directory\n")
