"""``pot-zk`` subcommands of the auditor-trainer exchange: challenge, respond, keys (new, circuit, import-zkey)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pot_zk.backends.keys import KeySet
    from pot_zk.bundle.layout import BundleReader, not_regular
    from pot_zk.backends.base import Statement

CommandHandler = Callable[[argparse.Namespace], int]


def challenge_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="the run to challenge: its directory, or the export archive the trainer handed over")
    parser.add_argument("--count", type=int, required=True, help="how many distinct steps to challenge")
    nonce = parser.add_mutually_exclusive_group()
    nonce.add_argument("--nonce", help="your nonce, hex (default: 32 random bytes)")
    nonce.add_argument("--no-nonce", action="store_true", help="no nonce: the steps follow from the run's commitments alone (a trainer can grind them)")
    parser.add_argument("--out", required=True, help="where to write the challenge (C.json) for the trainer")
    parser.add_argument("--cache-dir", help="your cache, whose trust store records the challenge (default: $POT_ZK_CACHE or ~/.cache/pot-zk); verify with the same")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.cli.handover import run_manifest, verifiable

        with verifiable(args.run) as root:  # the run directory or the export archive handed over (review24)
            run_manifest(root)  # a usage error before the imports below (torch's among them)
            _check_new_file(args.out, "a challenge")
            return _challenge(args, root)

    return run


def _challenge(args: argparse.Namespace, root: Path) -> int:
    import shlex

    from pot_zk.bundle.layout import BundleReader, not_regular
    from pot_zk.core.atomic import write_json_atomic
    from pot_zk.core.challenge import new_challenge, new_nonce
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.runs.export import EXPORT_MANIFEST
    from pot_zk.runs.witnesses import declared_retention
    from pot_zk.verify.trust import TrustStore, default_cache_dir

    bundle = BundleReader.open(root)
    foreign = not_regular(root)
    if foreign is not None:
        raise ConfigurationError(f"{args.run}: {foreign}", key="run")
    _check_finished(root, args.run)
    nonce = "" if args.no_nonce else (args.nonce if args.nonce is not None else new_nonce())
    challenge = new_challenge(bundle.manifest(), _commitment_records(bundle, args.run), args.count, nonce)
    store = TrustStore.in_cache(Path(args.cache_dir) if args.cache_dir else default_cache_dir())
    recorded = store.record_challenge(challenge)
    write_json_atomic(Path(args.out), challenge.to_dict())
    print(f"challenged {challenge.count} of {challenge.total_steps} steps: {list(challenge.steps)}")
    print(f"commitment head {challenge.head}")
    print(f"nonce {challenge.nonce or 'none (grindable: verify accepts it only with --allow-no-nonce; see docs/runs.md)'}")
    print(f"recorded in your trust store: {recorded} (verify --challenge accepts only challenges recorded there)")
    retention = declared_retention(bundle.manifest())
    if not retention.keeps_all:
        order = bundle.manifest()["training"].get("batch_order", "seeded")
        answer = ("the trainer recomputes the others by replaying the run from its initial model (up to as many training steps as the run has)"
                  if order == "seeded" else "the others cannot be answered (a user-loop run cannot be replayed)")
        print(f"note: this run keeps only the witnesses of its scheduled steps ({retention.rule}); {answer}")
    if (root / EXPORT_MANIFEST).is_file():  # an export: the trainer answers from its own run directory, not this copy
        print(f"written to {args.out}; the trainer answers with: pot-zk respond RUN {shlex.quote(args.out)} (RUN: its own run directory, "
              "which holds the witnesses an export leaves out)")
    else:
        print(f"written to {args.out}; the trainer answers with: pot-zk respond {shlex.quote(args.run)} {shlex.quote(args.out)}")
    return 0


def _check_finished(root: Path, run: str) -> None:
    """ConfigurationError unless the run's training has completed (review53: a challenge of a run
    still training said "challenged 2 of 2 steps", was recorded, and failed
    challenge-head-mismatch once training went on). Once the trail holds the training's
    ``completed`` end, nothing changes the head (resume refuses the run; respond and
    prove-pending add proofs only), so a process holding the run now is no reason to refuse
    (review54: a lock record the trainer planted made an honest finished run unchallengeable). A
    last line a kill cut short is left out, as resume reads it."""
    import shlex

    from pot_zk.bundle.layout import AUDIT, complete_records, training_ends
    from pot_zk.exceptions import ConfigurationError

    try:
        ends = training_ends([e for e in complete_records(root / AUDIT) if isinstance(e, dict)])
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"{run}: its audit trail cannot be read ({str(error)[:200]}); nothing to challenge (pot-zk verify {shlex.quote(run)} says what is wrong)",
            key="run",
        ) from None
    if not ends or ends[-1].get("status") != "completed":
        how = "has no end recorded (it is training, or was stopped)" if not ends else f"ended {ends[-1].get('status')}"
        raise ConfigurationError(
            f"{run}: the run {how}: its commitment head, which a challenge binds, changes when it is resumed, and verify fails it "
            "(run-not-completed); challenge it once it has completed", key="run",
        )


def _commitment_records(bundle: "BundleReader", run: str) -> list[dict]:
    """The run's commitment records; ConfigurationError (one line, pointing at verify) when
    commitments.jsonl is not JSON lines of objects: a damaged bundle has no head to challenge."""
    import shlex

    from pot_zk.exceptions import ConfigurationError

    try:
        return bundle.commitments()
    except (OSError, ValueError) as error:  # ValueError: a malformed line, a record not an object, not UTF-8
        raise ConfigurationError(f"{run}: {error}; nothing to challenge (pot-zk verify {shlex.quote(run)} says what is wrong)", key="run") from error


def _check_new_file(path: str, what: str) -> None:
    """``path`` as a file to write ``what`` to: ConfigurationError (a usage error) when something is
    there already (an earlier challenge the trainer may hold) or its directory is missing."""
    from pot_zk.exceptions import ConfigurationError

    out = Path(path)
    if out.exists() or out.is_symlink():
        raise ConfigurationError(f"--out {path} exists; name a new file for {what} (nothing is overwritten)", key="out", path=path)
    if not out.absolute().parent.is_dir():
        raise ConfigurationError(f"--out {path}: no such directory {out.absolute().parent}", key="out", path=path)


def respond_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="your own run directory (not its export: proving needs its witnesses and checkpoint)")
    parser.add_argument("challenge", help="the auditor's challenge file (C.json)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the run's own config, e.g. retry.max_retries=5 handler.name=fail_fast")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.cli.handover import trainers_run

        run_dir = trainers_run(args.run, "respond")  # a usage error before the imports below (torch's among them)
        from pot_zk.core.challenge import Challenge
        from pot_zk.runs.lock import RunLock
        from pot_zk.runs.respond import respond

        with RunLock(run_dir, "pot-zk respond"):
            answers = respond(run_dir, Challenge.load(Path(args.challenge)), args.overrides)
        for answer in answers:
            detail = answer.proof_type or answer.detail
            print(f"step {answer.step}: {answer.status}" + (f" ({detail})" if detail else ""))
        unanswered = [a.step for a in answers if a.status not in ("proved", "already-proved")]
        print(f"{len(answers) - len(unanswered)} of {len(answers)} challenged steps proven" + (f"; not proven: {unanswered}" if unanswered else ""))
        return 0 if not unanswered else 1

    return run


def keys_command(parser: argparse.ArgumentParser) -> CommandHandler:
    actions = parser.add_subparsers(dest="keys_action", required=True)
    new = actions.add_parser("new", help="generate key material for a declared statement (run this as the verifier)")
    _statement_arguments(new, "a new directory for the keys and keys.json")
    new.add_argument("--cache-dir", help="your cache: where circuits are compiled, and whose trust store records the keys (default: $POT_ZK_CACHE or ~/.cache/pot-zk)")
    circuit = actions.add_parser("circuit", help="write a zk-groth16 statement's circom source and the commands of a snarkjs ceremony for it")
    _statement_arguments(circuit, "a directory for circuit.circom and CEREMONY.txt")
    imported = actions.add_parser("import-zkey", help="keys of a zk-groth16 statement from a snarkjs ceremony's .zkey (provenance zkey)")
    imported.add_argument("zkey", help="the ceremony's final .zkey (made from the source `keys circuit` writes, compiled with --O2)")
    _statement_arguments(imported, "a new directory for the keys and keys.json")
    imported.add_argument("--cache-dir", help="your cache, whose trust store records the keys (default: $POT_ZK_CACHE or ~/.cache/pot-zk)")
    handlers = {"new": _keys_new, "circuit": _keys_circuit, "import-zkey": _keys_import_zkey}
    return lambda args: handlers[args.keys_action](args)


def _statement_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("overrides", nargs="*", help="the training config's Hydra overrides (the statement: model, train, circuit, prover)")
    parser.add_argument("--run", help="take the statement from this run's manifest instead (its directory or export archive)")
    parser.add_argument("--out", required=True, help=out_help)


def _keys_new(args: argparse.Namespace) -> int:
    statement, schedule = _declared(args)
    from pot_zk.backends.keys import new_keys
    from pot_zk.verify.run import default_cache_dir

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    keys = new_keys([statement], Path(args.out), cache, schedule)
    _print_handover(keys, statement, cache, args.run)
    return 0


def _keys_circuit(args: argparse.Namespace) -> int:
    from pot_zk.backends.registry import backend_of

    statement = _declared_statement(args)
    backend_of(statement).check_ceremony()
    files = backend_of(statement).ceremony_files(statement, Path(args.out), _statement_args(args))
    print(files.text, end="")
    print(f"written: {files.circuit}, {files.instructions}")
    return 0


def _keys_import_zkey(args: argparse.Namespace) -> int:
    from pot_zk.backends.keys import write_key_set
    from pot_zk.backends.registry import backend_of

    from pot_zk.verify.run import default_cache_dir

    statement, schedule = _declared(args)
    backend = backend_of(statement)
    backend.check_ceremony()
    keys = write_key_set(backend.proof_type, [statement], Path(args.out), lambda out: backend.import_keys(statement, Path(args.zkey), out), schedule)
    print(f"imported {args.zkey} (sha256 {keys.details['zkey_sha256']}): provenance zkey, checked against the circuit's header and a trial proof")
    _print_handover(keys, statement, Path(args.cache_dir) if args.cache_dir else default_cache_dir(), args.run)
    return 0


def _print_handover(keys: "KeySet", statement: "Statement", cache: Path, run: str | None) -> None:
    from pot_zk.verify.trust import TrustStore

    recorded = TrustStore.in_cache(cache).record_keys(keys)
    print(f"keys for {keys.proof_type} statement {statement.circuit_id()} in {keys.directory}")
    if keys.schedule is not None:
        from pot_zk.kinds.schedule import Schedule, canonical

        schedule = Schedule(canonical(keys.schedule, "training.schedule"), statement.learning_rate)
        # review50: keys made with --run take the trainer's schedule; the keys pin it, but it is the trainer's choice
        taken = f", taken from {run}'s manifest: the trainer's declaration, compare it with the schedule you agreed on" if run else ""
        print(f"learning-rate schedule: {schedule.describe()} (verify --keys refuses a run that declares another){taken}")
    print(f"recorded in your trust store: {recorded}")
    print(f"hand the trainer: {', '.join(str(keys.path(role)) for role in keys.handover)}")
    print(f"the trainer proves with: {' '.join(keys.trainer_overrides)}")
    print(f"verify its run with: pot-zk verify RUN --keys {keys.directory} --cache-dir {cache}")


def _statement_args(args: argparse.Namespace) -> str:
    import shlex

    return f"--run {shlex.quote(str(args.run))}" if args.run else " ".join(shlex.quote(o) for o in args.overrides)


def _declared_statement(args: argparse.Namespace) -> "Statement":
    return _declared(args)[0]


def _declared(args: argparse.Namespace) -> "tuple[Statement, dict | None]":
    """The statement ``--run`` or the overrides declare, and its learning-rate schedule (None: a
    constant rate)."""
    from pot_zk.exceptions import ConfigurationError

    if args.run:
        if args.overrides:
            raise ConfigurationError("give either --run or config overrides, not both", key="keys")
        from pot_zk.cli.handover import run_manifest, verifiable

        with verifiable(args.run) as root:  # the run directory or its export archive
            manifest = run_manifest(root)  # a usage error before torch's import
        from pot_zk.backends.registry import spec_from_dict

        return spec_from_dict(manifest["circuit"]), (manifest.get("training") or {}).get("schedule")
    from pot_zk.config import build, compose_config

    plan = build(compose_config(args.overrides, run_dir=".")).plan
    return plan.spec, None if plan.schedule is None else dict(plan.schedule.to_dict())
