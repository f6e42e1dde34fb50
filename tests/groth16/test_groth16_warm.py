"""pot-zk-groth16-prover --keep-key-s: the key holder answers as the one-shot program does, without
reloading the key; it proves --provers requests at once on one loaded key; a dead holder is
replaced, and so is a wedged one; an idle holder exits; a proof it cannot write is answered, not its
end; refusals keep their exit codes; an interrupted run stops a holder only when no other run's
prover waits for it; a request whose prover is gone is not proven."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pot_zk.backends.groth16 import keys, warm
from pot_zk.backends.groth16.warm import read_line

from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.core import protocol
from pot_zk.core.stages import read_stages
from provers.groth16_held import _holder_pid, socket_path

from groth16_support import honest_step, most_at_once, sgd_integers, tiny_spec
from test_groth16_prover_program import REPO, request_for, write_step

pytestmark = pytest.mark.prover


def run_held(request: dict, keep_s: float, *args: str) -> tuple[int, dict, float]:
    document = {"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "provers.groth16_prover", "--keep-key-s", str(keep_s), *args],
        input=json.dumps(document), capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0]), time.perf_counter() - started


def run_side_by_side(requests: list[dict], keep_s: float, *args: str) -> list[tuple[int, dict]]:
    """Start one prover program per request at once (as executor=process does); their answers."""
    programs = [
        subprocess.Popen(
            [sys.executable, "-m", "provers.groth16_prover", "--keep-key-s", str(keep_s), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        )
        for _ in requests
    ]
    for program, request in zip(programs, requests):  # every program has its request before any answers
        program.stdin.write(json.dumps({"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request}))
        program.stdin.close()
    answers = []
    for program in programs:
        out = program.stdout.read()
        program.wait(timeout=300)
        lines = out.strip().splitlines()
        assert len(lines) == 1, out
        answers.append((program.returncode, json.loads(lines[0])))
    return answers


def _holder(cache: Path) -> int | None:
    pid_file = Path(f"{socket_path(str(cache), tiny_spec().to_dict())}.pid")
    return int(pid_file.read_text()) if pid_file.exists() else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pid: int | None) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cache(tiny_keys, groth16_cache):
    """The session's cache of the tiny key, with no holder of it alive: a run of another test
    file (pot-zk's default keeps a key 60 s) may have left one, which would answer these tests'
    programs with its own --provers and retire on its own schedule."""
    _stop(_holder(groth16_cache))
    Path(socket_path(str(groth16_cache), tiny_spec().to_dict())).unlink(missing_ok=True)  # the killed holder's, if any
    yield groth16_cache
    _stop(_holder(groth16_cache))


def _proves(cache: Path, tmp_path: Path, seed: int, keep_s: float) -> tuple[dict, float]:
    spec = tiny_spec()
    tensors = honest_step(spec, seed=seed)
    directory = tmp_path / f"step-{seed}"
    witness = write_step(tmp_path / f"step-{seed}.safetensors", spec, *tensors)
    code, response, wall = run_held({**request_for(directory, cache, witness)}, keep_s)
    assert code == protocol.EXIT_OK, response
    vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
    assert verify_groth16(spec, Path(response["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
    assert response["public"]["keys"]["provenance"] == "dev"
    return response, wall


def test_the_holder_proves_like_the_program_and_keeps_its_key(cache, tmp_path):
    first, _ = _proves(cache, tmp_path, 21, 30)
    holder = _holder(cache)
    assert _alive(holder)
    second, _ = _proves(cache, tmp_path, 22, 30)
    assert "key_load_s" not in first["timings"] and "key_load_s" not in second["timings"]  # the holder loaded it
    assert _holder(cache) == holder
    os.kill(holder, signal.SIGKILL)
    time.sleep(0.3)
    third, _ = _proves(cache, tmp_path, 23, 30)
    assert _holder(cache) not in (None, holder)


def test_a_holder_whose_keys_were_replaced_retires_and_the_new_keys_prove(tiny_keys, groth16_cache, tmp_path):
    """A review: with the cache deleted and made again (new keys at the same path), the holder
    kept proving with the key it had loaded and every proof failed its check until it exited.
    It now retires before answering, and the prover's retry starts a holder of the new key."""
    import shutil

    own = tmp_path / "cache"
    directory = keys.key_directory(groth16_cache, tiny_spec())
    shutil.copytree(directory, keys.key_directory(own, tiny_spec()))
    try:
        _proves(own, tmp_path, 26, 30)
        first = _holder(own)
        assert _alive(first)
        shutil.rmtree(own)
        keys.ensure_keys(tiny_spec(), own)  # a new setup: another proving and verifying key
        _proves(own, tmp_path, 27, 30)  # proves, and verifies under the new verifying key
        assert _holder(own) not in (None, first)
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(first), "the stale holder retired"
    finally:
        _stop(_holder(own))


def test_an_idle_holder_exits_and_removes_its_socket_and_files(cache, tmp_path):
    """...its pid file, its start lock and its (empty) log too: they stayed, two files per key
    location and circuit in the holders' directory for good (session 18's leftover)."""
    _proves(cache, tmp_path, 24, 1.0)
    holder = _holder(cache)
    deadline = time.monotonic() + 30
    while _alive(holder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(holder)
    path = socket_path(str(cache), tiny_spec().to_dict())
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(path.name)] == []


def test_tidy_keeps_a_log_with_anything_in_it_and_leaves_the_files_of_a_prover_starting_a_holder(tmp_path):
    from provers.groth16_held import start_lock

    path = tmp_path / "k.sock"
    Path(f"{path}.log").write_text("Traceback (most recent call last):\n")
    with start_lock(path):  # a prover starting a holder
        warm.tidy(path)
        assert Path(f"{path}.lock").exists()
    warm.tidy(path)
    assert not Path(f"{path}.lock").exists() and Path(f"{path}.log").read_text().startswith("Traceback")
    path.touch()  # another holder listens
    with start_lock(path):
        pass
    warm.tidy(path)
    assert Path(f"{path}.lock").exists()


def test_a_prover_waiting_on_a_start_lock_a_holder_removes_takes_the_one_at_its_name(tmp_path):
    """The lock file an exiting holder removes (under the lock) may have been opened meanwhile by
    a prover about to start a holder: once it has the lock, it must hold the file at the name, or a
    third prover would lock a new file and two holders would start at once."""
    import threading

    from provers.groth16_held import start_lock

    path = tmp_path / "k.sock"
    name = f"{path}.lock"
    first = start_lock(path)
    taken = []
    waiting = threading.Thread(target=lambda: taken.append(start_lock(path)))
    waiting.start()
    time.sleep(0.3)  # it has opened the file and waits for the lock
    os.unlink(name)  # what tidy does, under the lock
    first.close()
    waiting.join(timeout=10)
    [second] = taken
    with second:
        assert os.path.samestat(os.fstat(second.fileno()), os.stat(name))


def test_refusals_keep_their_exit_codes_through_the_holder(cache, tmp_path):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=25)
    w_after[0] += 1
    witness = write_step(tmp_path / "bad.safetensors", spec, w, x, y, w_after)
    code, response, _ = run_held(request_for(tmp_path, cache, witness), 30)
    assert code == protocol.EXIT_INVALID_WITNESS and response["error"]["error_class"] == "WitnessBuilderError"
    assert _alive(_holder(cache))
    code, response, _ = run_held({**request_for(tmp_path, cache, witness), "kind": "conv"}, 30)
    assert code == protocol.EXIT_BAD_REQUEST
    code, response, _ = run_held({**request_for(tmp_path, cache, witness), "circuit": {**spec.to_dict(), "batch_size": "two"}}, 30)
    assert code == protocol.EXIT_BAD_REQUEST


def _step_requests(cache: Path, tmp_path: Path, seeds: range) -> list[tuple[dict, tuple]]:
    spec = tiny_spec()
    made = []
    for seed in seeds:
        tensors = honest_step(spec, seed=seed)
        witness = write_step(tmp_path / f"step-{seed}.safetensors", spec, *tensors)
        made.append((request_for(tmp_path / f"step-{seed}", cache, witness), tensors))
    return made


def _holder_request(cache: Path, tmp_path: Path, seed: int) -> tuple[Path, dict, tuple]:
    """(the holder socket of the tiny statement's keys in ``cache``, a request for the step of
    ``seed`` as a prover hands it over, that step's tensors)."""
    [(request, tensors)] = _step_requests(cache, tmp_path, range(seed, seed + 1))
    document = {"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request}
    return socket_path(str(cache), tiny_spec().to_dict()), document, tensors


@pytest.mark.parametrize("provers", [2, 1])
def test_one_holder_proves_as_many_requests_at_once_as_it_has_provers(cache, tmp_path, provers):
    """Four prover programs started together: one holder (one key load) answers them all, on
    ``provers`` threads; its proving intervals overlap up to ``provers`` deep, never deeper."""
    spec = tiny_spec()
    made = _step_requests(cache, tmp_path, range(60, 64))
    progress = [tmp_path / f"progress-{index}.jsonl" for index in range(len(made))]
    answers = run_side_by_side([{**request, "progress_path": str(path)} for (request, _), path in zip(made, progress)], 30, "--provers", str(provers))
    vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
    for (code, response), (_, tensors) in zip(answers, made):
        assert code == protocol.EXIT_OK, response
        assert verify_groth16(spec, Path(response["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
    provers_seen = [response["public"]["prover"] for _, response in answers]
    assert {p["pid"] for p in provers_seen} == {_holder(cache)}
    assert all(p["witness_engine"].startswith("wasmtime ") for p in provers_seen)
    assert most_at_once([(p["began_at"], p["ended_at"]) for p in provers_seen]) == provers
    assert len({p["thread"] for p in provers_seen}) == provers
    for path in progress:  # each request's stage lines went to its own file, once each
        stages = [line.stage for line in read_stages(path)]
        assert stages.count("prove") == 1 and stages.count("verify") == 1, (path.name, stages)


def test_a_proof_that_cannot_be_written_is_answered_as_transient_naming_why_and_the_holder_lives_on(cache, tmp_path):
    """review32: a proof that cannot be written (here its output directory lies under a file; a
    full disk, an unwritable proofs/) stopped the holder, and the program answered "the key
    holder ... closed the connection without an answer (it died)": each retry reloaded the key,
    and the write error was only in the holder's log."""
    [(request, _)] = _step_requests(cache, tmp_path, range(65, 66))
    (tmp_path / "a-file").write_text("")
    code, response, _ = run_held({**request, "output_dir": str(tmp_path / "a-file" / "out")}, 30)
    assert code == protocol.EXIT_TRANSIENT, response
    assert response["message"].startswith(f"cannot write the proof into {tmp_path / 'a-file' / 'out'}: ") and "died" not in response["message"]
    holder = _holder(cache)
    assert _alive(holder)
    _proves(cache, tmp_path, 66, 30)
    assert _holder(cache) == holder, "the same holder proves the next request"


def _client(cache: Path):
    """A prover's connection to the holder of the tiny key, greeted, its request not yet sent."""
    import socket as sockets

    connection = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    connection.connect(str(socket_path(str(cache), tiny_spec().to_dict())))
    connection.settimeout(30)
    assert connection.recv(64) == warm.GREETING
    return connection


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def test_an_interrupted_run_stops_a_shared_holder_only_once_no_other_prover_waits_for_it(cache, tmp_path):
    """review32: Ctrl-C of one run killed the key holder another run on the same cache was
    proving with; with retry=none that run's step failed for good. Now the interrupted run asks
    its helpers to stop (SIGTERM) and a holder goes on while another prover waits for it."""
    from pot_zk.core import prover_processes

    [(request, tensors)] = _step_requests(cache, tmp_path, range(70, 71))
    document = json.dumps({"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request})
    interrupted_run = prover_processes.start_prover([sys.executable, "-m", "provers.groth16_prover", "--keep-key-s", "30"])
    out, _ = interrupted_run.communicate(document.encode(), timeout=300)  # it started the holder, and reported it
    prover_processes.forget(interrupted_run)
    assert interrupted_run.returncode == protocol.EXIT_OK, out
    holder = _holder(cache)
    other_run = _client(cache)  # another run's prover, waiting on the holder
    try:
        prover_processes.stop_provers()
        time.sleep(warm.STOP_GRACE_S + 1)
        assert _alive(holder), "the holder another run's prover waits for goes on"
        other = json.dumps({"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request, "output_dir": str(tmp_path / "other-out")})
        other_run.sendall(json.dumps({"request": other}).encode() + b"\n")
        reply = json.loads(read_line(other_run))
        assert reply["code"] == protocol.EXIT_OK, reply
        spec = tiny_spec()
        vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
        assert verify_groth16(spec, Path(reply["document"]["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
        other_run.close()
        prover_processes.stop_provers()  # now nobody waits for it
        assert _gone_within(holder, warm.STOP_GRACE_S + 5)
        assert not socket_path(str(cache), tiny_spec().to_dict()).exists()
    finally:
        other_run.close()
        prover_processes.allow_provers()


def test_a_request_whose_prover_is_gone_before_its_turn_is_not_proven(cache, tmp_path):
    """A prover killed (a timeout, an interruption) while its request waited for a busy holder
    left the holder proving it for nobody."""
    made = _step_requests(cache, tmp_path, range(71, 73))
    _proves(cache, tmp_path, 73, 30)
    holder = _holder(cache)
    argv = Path(f"/proc/{holder}/cmdline").read_bytes().split(b"\0")
    threads = int(argv[argv.index(b"pot_zk.backends.groth16.warm") + 3])  # ... MODULE SOCKET KEEP_S PROVERS STARTER
    blockers = [_client(cache) for _ in range(threads)]  # every prover thread of the holder waits for a request line
    try:
        (killed_request, _), (later_request, _) = made
        killed = _client(cache)  # greeted: queued behind the blockers
        document = json.dumps({"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **killed_request})
        killed.sendall(json.dumps({"request": document}).encode() + b"\n")  # what a prover program sends (groth16_held._exchange)
        killed.close()  # ... and then it is killed: its connection closes (review44: a fixed sleep before a kill could come before the request was sent)
    finally:
        for blocker in blockers:
            blocker.close()
    code, response, _ = run_held(later_request, 30)  # served after the killed one's turn (first in, first out)
    assert code == protocol.EXIT_OK, response
    assert _holder(cache) == holder
    assert not (Path(killed_request["output_dir"])).exists(), "the killed prover's request was not proven"
    assert Path(later_request["output_dir"]).exists()


def test_a_wedged_holder_is_replaced(cache, tmp_path, monkeypatch):
    """review32: a holder that listens but never answers (SIGSTOPped here; hung) was reconnected
    to by every attempt, each timing out, for ever: the kernel queues connections for it, and the
    runner's kill of a prover's group misses it (its own session). Now a holder greets each
    connection; one that does not within the greeting timeout is killed and replaced."""
    import provers.groth16_held as held

    _proves(cache, tmp_path, 74, 30)
    wedged = _holder(cache)
    os.kill(wedged, signal.SIGSTOP)
    try:
        [(request, tensors)] = _step_requests(cache, tmp_path, range(75, 76))
        monkeypatch.setattr(held, "GREETING_TIMEOUT_S", 3.0)  # the new holder greets within it too, on a loaded machine (review44)
        code, document = held.forward(json.dumps({"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request}), 30, 1)
        assert code == protocol.EXIT_OK, document
        assert _gone_within(wedged, 10)
        assert _holder(cache) not in (None, wedged)
        spec = tiny_spec()
        vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
        assert verify_groth16(spec, Path(json.loads(document)["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
    finally:
        _stop(wedged)


def _catches(pid: int, signal_number: int) -> bool:
    """Process ``pid`` has a handler of its own for ``signal_number`` (``SigCgt`` in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal_number - 1) & 1)
    return False


def _stops_as_told(holder: subprocess.Popen, listened_at: float, answered_at: float, keep_s: float = 30) -> None:
    """A holder told to stop before it listened decides STOP_GRACE_S after it listens: it stops
    then if its one proof was answered by that time, else (a loaded machine: review44 measured
    0.27 s of margin) it serves on and stops once idle for ``keep_s``."""
    if answered_at - listened_at < warm.STOP_GRACE_S - 0.25:
        holder.wait(timeout=10)
    else:
        holder.wait(timeout=keep_s + 20)


def test_a_holder_told_to_stop_while_it_loads_its_key_serves_the_prover_waiting_for_it(cache, tmp_path):
    """review35: SIGTERM (another run interrupted) while a holder loaded its key killed it, and
    the prover that had started it paid a new holder's key load. Here the holder is held before
    its key load by its progress file, a named pipe nobody reads yet, and signalled there."""
    path, document, tensors = _holder_request(cache, tmp_path, 76)
    pipe = tmp_path / "progress"
    os.mkfifo(pipe)
    holder = subprocess.Popen(
        [sys.executable, "-m", "pot_zk.backends.groth16.warm", str(path), "30", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, start_new_session=True,
    )
    holder.stdin.write(json.dumps({**document, "progress_path": str(pipe)}).encode())
    holder.stdin.close()
    try:
        deadline = time.monotonic() + 60
        while not _catches(holder.pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.01)
        holder.send_signal(signal.SIGTERM)  # it waits to write its "keys" stage: the key is not loaded yet
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # now it loads its key and listens
        try:
            deadline = time.monotonic() + 60
            connection = None
            while connection is None and holder.poll() is None and time.monotonic() < deadline:
                try:
                    connection = _client(cache)  # the prover that started it, connecting as it listens
                except (FileNotFoundError, ConnectionRefusedError):  # not listening yet (or an earlier test's killed holder's socket file)
                    time.sleep(0.01)
            assert connection is not None, f"the holder ended ({holder.poll()}) before it listened"
            listened_at = time.monotonic()
        finally:
            os.close(reader)
        with connection:
            connection.sendall(json.dumps({"request": json.dumps(document)}).encode() + b"\n")
            reply = json.loads(read_line(connection))
        assert reply["code"] == protocol.EXIT_OK, reply
        assert reply["document"]["public"]["prover"]["pid"] == holder.pid
        spec = tiny_spec()
        vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
        assert verify_groth16(spec, Path(reply["document"]["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
        _stops_as_told(holder, listened_at, time.monotonic())  # then, nobody waiting, it stops as it was told
    finally:
        _stop(holder.pid)
        holder.wait(timeout=30)


def test_a_holder_told_to_stop_as_it_starts_before_its_imports_serves_the_prover_waiting_for_it(cache, tmp_path):
    """review35: SIGTERM in the holder's first second (its interpreter starting, its modules
    importing, before any handler of its own) killed it. A holder started as a prover starts it
    is signalled the moment it exists, and still proves for the prover that started it."""
    from provers.groth16_held import spawn_holder

    path, document, tensors = _holder_request(cache, tmp_path, 78)
    with open(tmp_path / "holder.log", "wb") as log:
        holder = spawn_holder(path, json.dumps(document), 30, 1, log)
    try:
        holder.send_signal(signal.SIGTERM)  # it has not imported anything yet
        deadline = time.monotonic() + 120
        connection = None
        while connection is None and holder.poll() is None and time.monotonic() < deadline:
            try:
                connection = _client(cache)
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.01)
        assert connection is not None, f"the holder ended ({holder.poll()}) before it listened: {(tmp_path / 'holder.log').read_text()}"
        listened_at = time.monotonic()
        with connection:
            connection.sendall(json.dumps({"request": json.dumps(document)}).encode() + b"\n")
            reply = json.loads(read_line(connection))
        assert reply["code"] == protocol.EXIT_OK, reply
        spec = tiny_spec()
        vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
        assert verify_groth16(spec, Path(reply["document"]["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
        _stops_as_told(holder, listened_at, time.monotonic())  # then, nobody waiting, it stops as it was told
        assert not path.exists()
    finally:
        _stop(holder.pid)
        holder.wait(timeout=30)


def test_a_connection_that_never_sends_its_request_is_closed_and_the_holder_still_ends_idle(cache, tmp_path, monkeypatch):
    """review35: a local process that connected and sent nothing (or a byte now and then) held one
    of the holder's prover threads for ever, and the holder never became idle, so it never exited.
    Now a connection has REQUEST_TIMEOUT_S for its whole request line (1 s here)."""
    import socket as sockets
    import tempfile
    import threading

    [(request, _)] = _step_requests(cache, tmp_path, range(80, 81))
    monkeypatch.setattr(warm, "REQUEST_TIMEOUT_S", 1.0)
    path = Path(tempfile.mkdtemp(prefix="pot-zk-h-")) / "s"  # a socket path short enough for AF_UNIX
    first = json.dumps({"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request})
    holder = threading.Thread(target=warm.hold, args=(path, 2.0, first, 2, warm.StopCount()), daemon=True)
    holder.start()
    deadline = time.monotonic() + 120
    while not path.exists() and holder.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    clients = []
    for _ in range(2):
        client = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        client.connect(str(path))
        client.settimeout(30)
        assert client.recv(64) == warm.GREETING
        clients.append(client)
    silent, dripping = clients
    started = time.monotonic()
    dripped = 0
    try:
        for dripped in range(1, 21):  # a byte every 0.25 s, never a whole line, until the holder hangs up
            dripping.sendall(b"{")
            time.sleep(0.25)
    except OSError:  # the holder closed it
        pass
    try:
        assert silent.recv(64) == b"" and (dripped < 20 or dripping.recv(64) == b""), "the holder closes both connections"
    except sockets.timeout:
        pytest.fail("a connection that sends no request line holds a prover thread for ever")
    finally:
        for client in clients:
            client.close()
    assert time.monotonic() - started < 10
    holder.join(timeout=30)
    assert not holder.is_alive(), "the holder, idle again, exits"
    assert not path.exists()


LATE_SIGNAL = """\
import sys
from pot_zk.backends.groth16 import warm

class SignalledRightAfterTheFirstLook(warm.StopCount):
    looks = 0

    @property
    def count(self):  # SIGTERM arrives just after the holder's first look, as it starts to listen
        self.looks += 1
        return 0 if self.looks == 1 else 1

    @count.setter
    def count(self, value):
        pass

warm.main(sys.argv[1:], SignalledRightAfterTheFirstLook())
"""


def test_a_holder_told_to_stop_just_as_it_starts_to_listen_stops(cache, tmp_path):
    """CI saw a holder outlive an interrupted run by its whole keep time: the SIGTERM that came
    between the holder's look at the signal and its clearing of it was lost. A holder process
    signalled at exactly that moment (its first look) and with nobody waiting for it stops."""
    path, document, _ = _holder_request(cache, tmp_path, 82)
    holder = subprocess.Popen(
        [sys.executable, "-c", LATE_SIGNAL, str(path), "60", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True,
    )
    try:
        holder.stdin.write(json.dumps(document).encode())
        holder.stdin.close()
        try:
            holder.wait(timeout=45)  # its imports and key load, then it stops at once: not 60 s of keep time
        except subprocess.TimeoutExpired:
            pytest.fail("a holder told to stop as it started to listen went on as if never told")
        assert holder.returncode == 0, holder.stderr.read()
        assert not path.exists()
    finally:
        _stop(holder.pid)
        holder.wait(timeout=30)


def test_a_holder_sent_sigterm_after_sigterm_stops(cache, tmp_path):
    """review44: the holder's SIGTERM handler set a threading.Event, whose lock the main thread
    may hold (in ``clear``, or in the handler's own ``set`` when the next signal comes): a second
    SIGTERM then deadlocked the holder for good (one Ctrl-C stops a run's provers twice, and
    runs sharing a key add more). A holder started as provers start it, sent SIGTERMs back to back
    from its start on, stops once nobody waits for it."""
    from provers.groth16_held import spawn_holder

    path, document, _ = _holder_request(cache, tmp_path, 84)
    with open(tmp_path / "holder.log", "wb") as log:
        holder = spawn_holder(path, json.dumps(document), 60, 1, log)
    try:
        sent = 0
        deadline = time.monotonic() + 60
        while holder.poll() is None and time.monotonic() < deadline:
            try:
                os.kill(holder.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
            sent += 1
            if sent % 50 == 0:
                time.sleep(0.001)
        assert holder.poll() is not None, f"after {sent} SIGTERMs the holder is still running (deadlocked?): {(tmp_path / 'holder.log').read_text()}"
        assert holder.returncode == 0, (tmp_path / "holder.log").read_text()
    finally:
        _stop(holder.pid)
        holder.wait(timeout=30)


STARTER_GONE = """\
import sys
from pathlib import Path
from provers.groth16_held import spawn_holder

with open(sys.argv[3], "wb") as log:
    holder = spawn_holder(Path(sys.argv[1]), sys.stdin.read(), float(sys.argv[2]), 1, log)
print(holder.pid)  # and exit at once: a prover killed before it could report (or connect to) the holder it started
"""


def test_a_holder_whose_prover_died_before_it_listened_stops_unless_someone_connects(cache, tmp_path):
    """review44: a prover killed with its interrupted run between starting a holder and reporting
    it to the run left the holder unstopped, idle for its whole keep time (60 s) with its key in
    memory. Now a holder whose starter is gone when it listens decides STOP_GRACE_S later."""
    path, document, _ = _holder_request(cache, tmp_path, 86)
    starter = subprocess.run(
        [sys.executable, "-c", STARTER_GONE, str(path), "60", str(tmp_path / "holder.log")],
        input=json.dumps(document), capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    holder = int(starter.stdout.strip())
    try:
        assert _gone_within(holder, 45), f"the holder of a dead prover idles on: {(tmp_path / 'holder.log').read_text()}"
        assert not path.exists()
    finally:
        _stop(holder)


def test_a_proof_whose_prover_went_away_while_it_was_made_is_not_written(cache, tmp_path, monkeypatch):
    """review44: a holder told to stop by an interrupted run finished the proof in progress and
    wrote it into the run after `pot-zk train` had exited and let go of the run (nothing records
    such a proof). Here the prover goes away while its proof is being made: nothing is written,
    and the holder serves the next request."""
    import socket as sockets
    import tempfile
    import threading

    from pot_zk.backends.groth16 import request as requests

    (gone_request, _), (later_request, _) = _step_requests(cache, tmp_path, range(88, 90))
    clients = []
    killed = threading.Event()
    real_prove_step = requests.prove_step

    def prover_killed_meanwhile(*args, **kwargs):
        proof = real_prove_step(*args, **kwargs)
        if not killed.is_set():
            clients[0].close()  # the prover of the first request is killed while its proof is made
            killed.set()
        return proof

    monkeypatch.setattr(requests, "prove_step", prover_killed_meanwhile)
    path = Path(tempfile.mkdtemp(prefix="pot-zk-h-")) / "s"
    document = {"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **gone_request}
    holder = threading.Thread(target=warm.hold, args=(path, 2.0, json.dumps(document), 1, warm.StopCount()), daemon=True)
    holder.start()
    deadline = time.monotonic() + 120
    while not path.exists() and holder.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)

    def client() -> sockets.socket:
        connection = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        connection.connect(str(path))
        connection.settimeout(60)
        assert connection.recv(64) == warm.GREETING
        return connection

    clients.append(client())
    clients[0].sendall(json.dumps({"request": json.dumps(document)}).encode() + b"\n")
    assert killed.wait(timeout=60)
    later = client()
    clients.append(later)
    with later:
        later.sendall(json.dumps({"request": json.dumps({**document, **later_request})}).encode() + b"\n")
        reply = json.loads(read_line(later))
    assert reply["code"] == protocol.EXIT_OK, reply
    assert Path(later_request["output_dir"]).exists()
    gone = Path(gone_request["output_dir"])
    assert not gone.exists() or not list(gone.iterdir()), f"the proof of a prover that went away was written: {list(gone.iterdir())}"
    holder.join(timeout=30)
    assert not holder.is_alive()


def _wait_until_it_listens(holder: subprocess.Popen, path: Path) -> None:
    """Until ``holder`` listens at ``path`` (its pid in the pid file: the socket an earlier test's
    killed holder left there is not it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and holder.poll() is None:
        if path.exists() and _holder_pid(path) == holder.pid:
            return
        time.sleep(0.05)
    raise AssertionError(f"the holder did not listen at {path}")


HUNG_HOLDER = """\
import sys, threading
from pathlib import Path
from pot_zk.backends.groth16 import request as requests, warm

warm.ABANDONED_S = float(sys.argv[3])
hung_once = threading.Lock()
real = requests.prove_step

def hung(*args, **kwargs):  # the first proof never returns (a prover hung inside groth16py, say)
    if hung_once.acquire(blocking=False):
        Path(sys.argv[4]).touch()
        threading.Event().wait()
    return real(*args, **kwargs)

requests.prove_step = hung
warm.main([sys.argv[1], sys.argv[2], "1"])
"""


def test_a_holder_hung_in_a_proof_whose_prover_went_retires_and_the_next_attempt_is_proven_by_a_new_holder(cache, tmp_path):
    """Session 18's leftover: a holder hung inside a proof was never noticed. Its prover timed out
    and was killed, but the holder lived on (a request in progress is never idle), holding its
    prover thread and its socket: every later attempt went to it and waited for its own timeout.
    review48: waiting until every request had lost its prover, it still never retired while
    attempts kept coming. Now, ABANDONED_S (2 s here) after a prover went, the holder stops
    listening, closes the connection of the attempt queued behind the hung proof (its prover starts
    a new holder, which proves it) and exits; while the hung proof's own prover still waits, it
    goes on."""
    import socket as sockets

    path, document, _ = _holder_request(cache, tmp_path, 91)
    (later, _), = _step_requests(cache, tmp_path, range(92, 93))
    marker = tmp_path / "proving"
    with open(tmp_path / "holder.log", "w") as log:
        holder = subprocess.Popen([sys.executable, "-c", HUNG_HOLDER, str(path), "60", "2", str(marker)],
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        holder.stdin.write(json.dumps(document))
        holder.stdin.close()
        _wait_until_it_listens(holder, path)
        prover = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        prover.connect(str(path))
        prover.settimeout(30)
        assert prover.recv(64) == warm.GREETING
        prover.sendall(json.dumps({"request": json.dumps(document)}).encode() + b"\n")
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), (tmp_path / "holder.log").read_text()
        time.sleep(3 * 2)
        assert holder.poll() is None, "a holder whose prover still waits for its proof goes on"
        prover.close()  # the prover is killed on its timeout; its retry comes at once and queues behind the hung proof
        code, response, _ = run_held(later, 30)
        assert code == protocol.EXIT_OK, response
        assert response["public"]["prover"]["pid"] != holder.pid, "a new holder proved the attempt"
        holder.wait(timeout=30)
        assert "retiring" in (tmp_path / "holder.log").read_text()
    finally:
        _stop(holder.pid)
        holder.wait(timeout=30)


FAILING_HOLDER = """\
import sys, threading, time
from pathlib import Path
from pot_zk.backends.groth16 import request as requests, warm

real = requests.prove_step
first = threading.Lock()

def patched(*args, **kwargs):
    if first.acquire(blocking=False):  # the first proof is slow, still in progress when the second fails
        Path(sys.argv[2]).touch()
        time.sleep(8)
        return real(*args, **kwargs)
    raise RuntimeError("a bug in a request: the error the log must keep")

requests.prove_step = patched
warm.main([sys.argv[1], "60", "2"])
"""


def test_a_holder_stopped_by_an_unexpected_error_has_written_it_to_its_log_when_its_socket_goes(cache, tmp_path):
    """review48: a holder stopped by an unexpected error in a request removed its socket at once
    but wrote the traceback only after its other proofs in progress; another holder of the key
    starting, idling and exiting meanwhile removed the log as empty (tidy), and the traceback went
    to a removed file. Now it is in the log before the socket goes, once."""
    import socket as sockets

    path, document, _ = _holder_request(cache, tmp_path, 93)
    (failing, _), = _step_requests(cache, tmp_path, range(94, 95))
    log_path, marker = tmp_path / "holder.log", tmp_path / "slow"
    with open(log_path, "w") as log:
        holder = subprocess.Popen([sys.executable, "-c", FAILING_HOLDER, str(path), str(marker)],
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        holder.stdin.write(json.dumps(document))
        holder.stdin.close()
        _wait_until_it_listens(holder, path)
        deadline = time.monotonic() + 120
        connections = []
        for request, wait_for_marker in ((document, True), ({**document, **failing}, False)):
            connection = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
            connection.connect(str(path))
            connection.settimeout(60)
            assert connection.recv(64) == warm.GREETING
            connection.sendall(json.dumps({"request": json.dumps(request)}).encode() + b"\n")
            connections.append(connection)
            while wait_for_marker and not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not path.exists()
        assert "RuntimeError: a bug in a request" in log_path.read_text(), "the error is in the log as the socket goes"
        assert holder.wait(timeout=60) == 1
        assert log_path.read_text().count("RuntimeError: a bug in a request") == 1
        for connection in connections:
            connection.close()
    finally:
        _stop(holder.pid)
        holder.wait(timeout=30)


@pytest.mark.parametrize("planted", ["mode-0777", "a-link"])
def test_a_holders_directory_that_is_not_this_users_alone_is_not_used(cache, tmp_path, planted):
    """review53: the holders' directory has a predictable name in the temporary directory;
    another user who made it first (mode 0777) controlled its sockets and pid files: a fake holder
    answered "ok" with a proof of its own, named a process Ctrl-C then killed, and a pid file
    linked to another file was written through. A directory not of this user's, 0700, is not
    used: the step is proven without a holder, and the prover says why."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    name = temporary / f"pot-zk-groth16-{os.getuid()}"
    if planted == "a-link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        name.symlink_to(tmp_path / "elsewhere")
    else:
        name.mkdir()
        name.chmod(0o777)
    spec = tiny_spec()
    tensors = honest_step(spec, seed=31)
    witness = write_step(tmp_path / "step.safetensors", spec, *tensors)
    document = {"protocol": protocol.PROTOCOL, "step": 0, "options": {}, **request_for(tmp_path / "step", cache, witness)}
    done = subprocess.run(
        [sys.executable, "-m", "provers.groth16_prover", "--keep-key-s", "30"], input=json.dumps(document), capture_output=True, text=True,
        cwd=REPO, timeout=300, env={**os.environ, "TMPDIR": str(temporary)},
    )
    assert done.returncode == protocol.EXIT_OK, done.stdout + done.stderr
    assert f"the key holders' directory {name} is not private to this user" in done.stderr and "proving without a key holder" in done.stderr
    response = json.loads(done.stdout)
    assert "key_load_s" in response["timings"]  # loaded by this program: no holder served it
    assert len(response["notes"]) == 1 and response["notes"][0].startswith(f"no key holder: the key holders' directory {name} is not private to this user")
    assert list((name if planted == "mode-0777" else tmp_path / "elsewhere").iterdir()) == []
    vk = keys.load_verifying_key(spec, keys.key_directory(cache, spec))
    assert verify_groth16(spec, Path(response["artifacts"]["proof"]).read_bytes(), spec.commitments(sgd_integers(*tensors)), vk).ok
