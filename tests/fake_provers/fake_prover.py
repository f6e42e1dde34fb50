"""A small real prover program for tests: behaves as told by its first argument.

    fake_prover.py ok [PROOF_TYPE]          read the request, write a proof file, answer ok (default type:
                                            zk-halo2, what the tests' strategies make)
    fake_prover.py crash                    print to stderr, exit 1
    fake_prover.py signal                   die by SIGKILL
    fake_prover.py hang                     sleep for an hour
    fake_prover.py hang-with-child PIDFILE  start a sleeping child, write its pid, sleep
    fake_prover.py garbage                  print non-JSON, exit 0
    fake_prover.py truncated                print cut-off JSON, exit 0
    fake_prover.py wrong-protocol           answer with another protocol version
    fake_prover.py transient-then-ok STATE N   exit 75 the first N runs (counted in STATE), then ok
    fake_prover.py exit CODE                print an error response, exit CODE
    fake_prover.py partial-kill             write half a response to stdout, then SIGKILL itself
    fake_prover.py corrupt-proof [TYPE]     answer ok, but the proof file holds random bytes
    fake_prover.py copied-proof FILE [PUBLIC]   answer ok (zk-groth16) with a copy of FILE as the proof (and PUBLIC's JSON)
    fake_prover.py bad-notes                answer ok with notes that are not a list of strings
    fake_prover.py wrapped LIE              the real zk-groth16 prover, then LIE (relabel:TYPE, misreport-key, junk-proof, swap-key)
    fake_prover.py missing-proof [TYPE]     answer ok, naming a proof file it never wrote
    fake_prover.py random SEED STATE [TYPE] the n-th run (counted in STATE) behaves as
                                            choose(SEED, n): a seeded random fault, or ok

``FAULTS`` and ``choose`` are imported by scripts/fault_campaign.py to predict what each
run of a ``random`` prover will do.
"""

import json
import os
import signal
import subprocess
import sys
import time

PROTOCOL = "pot-zk-prover/1"

# Behaviours a ``random`` prover picks from (weights: how often). "ok" ends a fault streak.
FAULTS = {
    "ok": 3,
    "crash": 2,
    "signal": 1,
    "partial-kill": 2,
    "hang": 1,
    "garbage": 1,
    "truncated": 1,
    "wrong-protocol": 1,
    "missing-proof": 1,
    "exit 64": 1,
    "exit 65": 1,
    "exit 70": 1,
    "exit 75": 2,
}


def choose(seed: str, run: int) -> str:
    """The behaviour of run number ``run`` (0-based) of a ``random`` prover seeded ``seed``."""
    import random

    names = sorted(FAULTS)
    return random.Random(f"{seed}:{run}").choices(names, weights=[FAULTS[n] for n in names])[0]


def next_run(state: str) -> int:
    """Count this run in the STATE file; return how many runs came before it."""
    runs = int(open(state).read()) if os.path.exists(state) else 0
    with open(state, "w") as handle:
        handle.write(str(runs + 1))
    return runs


def answer_ok(proof_type: str) -> None:
    request = json.load(sys.stdin)
    assert request["protocol"] == PROTOCOL, request
    os.makedirs(request["output_dir"], exist_ok=True)
    proof = os.path.join(request["output_dir"], "proof.json")
    with open(proof, "w") as handle:
        json.dump({"step": request["step"], "fake": True, "cache_dir": request["cache_dir"]}, handle)
    print(json.dumps({
        "protocol": PROTOCOL, "status": "ok", "proof_type": proof_type,
        "artifacts": {"proof": proof}, "public": {"step": request["step"]},
        "timings": {"prove_s": 0.01}, "sizes": {"proof_bytes": os.path.getsize(proof)},
    }))


def answer_with_bad_proof(proof_type: str, write: bool) -> None:
    request = json.load(sys.stdin)
    os.makedirs(request["output_dir"], exist_ok=True)
    proof = os.path.join(request["output_dir"], "proof.json")
    if write:
        with open(proof, "wb") as handle:
            handle.write(os.urandom(64))
    print(json.dumps({
        "protocol": PROTOCOL, "status": "ok", "proof_type": proof_type,
        "artifacts": {"proof": proof}, "public": {"step": request["step"]}, "timings": {}, "sizes": {},
    }))


def wrapped(lie: str) -> None:
    """Prove with the real ``pot-zk-groth16-prover`` (no key holder), then lie: ``relabel:TYPE``
    answers with proof type TYPE; ``misreport-key`` reports another verifying key in ``public``;
    ``junk-proof`` answers with 256 random bytes in the proof file;
    ``swap-key`` first replaces the cache's key directory by a setup of its own (whose trapdoor it
    would know), so the proof is a valid one under the wrong key."""
    raw = sys.stdin.read()
    request = json.loads(raw)
    if lie == "swap-key":
        from pot_zk.backends.groth16 import keys
        from pot_zk.backends.registry import spec_from_dict

        spec = spec_from_dict(request["circuit"])
        directory = keys.key_directory(request["cache_dir"], spec)
        if not os.path.exists(str(directory) + ".original"):
            os.rename(directory, str(directory) + ".original")
            keys.create_keys(spec, directory)
    real = os.path.join(os.path.dirname(sys.executable), "pot-zk-groth16-prover")
    done = subprocess.run([real], input=raw, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        sys.exit(done.returncode)
    answer = json.loads(done.stdout)
    if lie.startswith("relabel:"):
        answer["proof_type"] = lie.split(":", 1)[1]
    elif lie == "misreport-key":
        answer["public"]["keys"]["vk_sha256"] = "0" * 64
    elif lie == "junk-proof":
        with open(answer["artifacts"]["proof"], "wb") as handle:
            handle.write(os.urandom(256))
    print(json.dumps(answer))


def main() -> None:
    behaviour, arguments = sys.argv[1], sys.argv[2:]
    if behaviour == "random":
        seed, state = arguments[0], arguments[1]
        chosen = choose(seed, next_run(state)).split()
        behaviour, arguments = chosen[0], chosen[1:] + (arguments[2:] if chosen[0] == "ok" else [])
    if behaviour == "ok":
        answer_ok(arguments[0] if arguments else "zk-halo2")
    elif behaviour == "crash":
        print("boom: simulated prover crash", file=sys.stderr)
        sys.exit(1)
    elif behaviour == "signal":
        print("about to be killed", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif behaviour == "hang":
        time.sleep(3600)
    elif behaviour == "hang-with-child":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(arguments[0], "w") as handle:
            handle.write(str(child.pid))
        time.sleep(3600)
    elif behaviour == "garbage":
        print("Segmentation fault? no: this is not JSON")
    elif behaviour == "truncated":
        sys.stdout.write('{"protocol": "pot-zk-prover/1", "status": "ok", "proof_ty')
    elif behaviour == "wrong-protocol":
        print(json.dumps({"protocol": "pot-zk-prover/0", "status": "ok", "proof_type": "x", "artifacts": {}}))
    elif behaviour == "transient-then-ok":
        state, failures = arguments[0], int(arguments[1])
        runs = next_run(state)
        if runs < failures:
            print(f"transient failure {runs + 1} of {failures}", file=sys.stderr)
            sys.exit(75)
        answer_ok("zk-halo2")
    elif behaviour == "exit":
        print(json.dumps({"status": "error", "message": f"simulated exit {arguments[0]}"}))
        print(f"exiting with {arguments[0]}", file=sys.stderr)
        sys.exit(int(arguments[0]))
    elif behaviour == "partial-kill":
        sys.stdin.read()
        sys.stdout.write('{"protocol": "pot-zk-prover/1", "status": "ok", "proof_type": "zk-h')
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif behaviour == "outside-proof":  # review53: a proof of its own, outside the request's output directory (here: a link out of it)
        request = json.load(sys.stdin)
        os.makedirs(request["output_dir"], exist_ok=True)
        elsewhere = arguments[0]
        with open(elsewhere, "w") as handle:
            handle.write("not this step's proof")
        proof = elsewhere
        if len(arguments) > 1 and arguments[1] == "link":
            proof = os.path.join(request["output_dir"], "proof.json")
            os.symlink(elsewhere, proof)
        print(json.dumps({
            "protocol": PROTOCOL, "status": "ok", "proof_type": "zk-groth16",
            "artifacts": {"proof": proof}, "public": {"step": request["step"]}, "timings": {}, "sizes": {},
        }))
    elif behaviour == "wrapped":  # the real zk-groth16 prover program, then a lie (review55)
        wrapped(arguments[0])
    elif behaviour == "bad-notes":  # notes must be a list of strings
        request = json.load(sys.stdin)
        print(json.dumps({"protocol": PROTOCOL, "status": "ok", "proof_type": "x", "artifacts": {}, "notes": "one string"}))
    elif behaviour == "copied-proof":  # a real zk-groth16 proof, of whichever step it was made for
        request = json.load(sys.stdin)
        os.makedirs(request["output_dir"], exist_ok=True)
        proof = os.path.join(request["output_dir"], "proof.bin")
        with open(arguments[0], "rb") as source, open(proof, "wb") as handle:
            handle.write(source.read())
        public = {"step": request["step"]}
        if len(arguments) > 1:  # what the real program answered with it
            with open(arguments[1]) as handle:
                public = json.load(handle)
        print(json.dumps({
            "protocol": PROTOCOL, "status": "ok", "proof_type": "zk-groth16",
            "artifacts": {"proof": proof}, "public": public, "timings": {}, "sizes": {},
        }))
    elif behaviour in ("corrupt-proof", "missing-proof"):
        answer_with_bad_proof(arguments[0] if arguments else "test-proof", write=behaviour == "corrupt-proof")
    else:
        sys.exit(f"unknown behaviour {behaviour}")


if __name__ == "__main__":
    main()
