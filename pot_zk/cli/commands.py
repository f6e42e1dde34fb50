"""``pot-zk`` subcommands that work on a run bundle: resume, verify, prove-pending, report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from pot_zk.verify.run import RunReport

CommandHandler = Callable[[argparse.Namespace], int]


def resume_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="a run directory made by `pot-zk train`")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every audit record on the terminal")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.cli.handover import run_manifest, trainers_run
        from pot_zk.exceptions import ConfigurationError

        root = trainers_run(args.run, "resume")  # a usage error before torch's import, below
        from pot_zk.cli.apps import ENDED_RUNS
        from pot_zk.config.build import load_run_config
        from pot_zk.runs.bundle import CONFIG
        from pot_zk.runs.summary import summary_lines
        from pot_zk.runs.train import train

        order = (run_manifest(root).get("training") or {}).get("batch_order", "seeded")
        if order != "seeded":
            raise ConfigurationError(
                f"{args.run} was trained by a user loop (batch_order={order!r}): its steps follow your loop, which "
                "`pot-zk resume` cannot replay: it continues runs of `pot-zk train` only",
                key="run",
            )
        cfg = load_run_config(root / CONFIG, run_dir=root)
        if args.verbose:
            cfg.console.records = True
        summary = train(cfg, resume=True)
        ENDED_RUNS.append(summary)
        print("\n".join(summary_lines(summary)))
        return 0

    return run


def verify_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="a run directory made by `pot-zk train`")
    parser.add_argument("--srs", help="the verifier's own SRS file, or zk-groth16 key directory (default: the dev SRS or key in the cache, if it matches)")
    parser.add_argument("--cache-dir", help="your cache: its trust store (keys you made, challenges you issued), dev keys, and "
                        "verify's own cache of the zk-halo2 circuits and keys it derived, CACHE/verifier (default: $POT_ZK_CACHE or ~/.cache/pot-zk)")
    parser.add_argument("--no-verifier-cache", action="store_true", help="derive zk-halo2 circuits and keys afresh, in a directory of this process's own, instead of reusing CACHE/verifier")
    parser.add_argument("--allow-dev-srs", action="store_true", help="accept proofs made with a locally generated SRS in a production-mode run")
    parser.add_argument("--keys", help="your own key material from `pot-zk keys new` (instead of --srs)")
    parser.add_argument("--challenge", metavar="C.json", help="your challenge (issued with the same --cache-dir): every step it picked must carry a verified proof")
    parser.add_argument("--allow-no-nonce", action="store_true", help="accept a challenge without a nonce (its steps follow from the head alone: grindable)")
    parser.add_argument("--json", metavar="FILE", help="also write the machine-readable report here ('-' for stdout)")
    parser.add_argument("--expect-root", metavar="HEX", help="the dataset root you agreed on (checked for every run; needed where verify cannot recompute it)")
    parser.add_argument("--expect-head", metavar="HEX", help="the commitment head you received when the run ended (pot-zk train prints it)")
    parser.add_argument("--expect-base", metavar="HEX|RUN", help="a LoRA run: the frozen base you accept: the base run you verified (its directory or export: pins its values, layer shapes and grid), or its last commitment (its integers only)")
    parser.add_argument("--expect-initial", metavar="HEX|MODEL", help="the initial model you agreed on: W_0's commitment, or the model file (safetensors of its state_dict) verify commits itself; needed where verify cannot recompute it")
    parser.add_argument("--max-tolerance-ulps", type=int, metavar="N", help="the largest update tolerance you accept (default: the statement's default, not the manifest's)")
    parser.add_argument("--min-proven", type=int, metavar="N", help="fail unless at least N steps carry a verified proof (default: as many as the declared policy selects)")
    parser.add_argument(
        "--max-data-values", type=int, metavar="N", default=None,
        help="the most values verify makes from a size the trainer declared: the model's parameters, a synthetic set's samples times the model's "
        "inputs and outputs, or the positions a held-out set is chosen among (default: 10,000,000, minutes of work); a run declaring more fails "
        "statement-too-large or dataset-too-large and nothing else is checked",
    )
    parser.add_argument(
        "--max-records", type=int, metavar="N", default=None,
        help="the most records verify reads from one of the bundle's record files, audit.jsonl, commitments.jsonl, proofs.jsonl or "
        "evaluations.jsonl (default: 10,000,000, minutes of work); a file with more lines fails too-many-records and nothing else is checked",
    )
    parser.add_argument("--accept-setting", action="append", metavar="KEY=VALUE",
                        help="a statement setting (scale, param_scale, ...), batch_order=recorded, data=unopened or data=undeclared, or the held-out "
                        "choice's holdout_seed=N or holdout_fraction=F you accept other than its default; repeatable")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.cli.handover import verifiable
        from pot_zk.exceptions import ConfigurationError
        from pot_zk.verify.report import EXIT_CODES

        if args.keys and args.srs:
            raise ConfigurationError("give --keys or --srs, not both", key="keys")
        for option, given in (("--srs", args.srs), ("--keys", args.keys), ("--challenge", args.challenge)):
            if given and not Path(given).exists():
                raise ConfigurationError(f"{option} {given}: no such file or directory", key=option.lstrip("-"), path=given)
        if args.json and args.json != "-" and not Path(args.json).absolute().parent.is_dir():
            raise ConfigurationError(f"--json {args.json}: no such directory {Path(args.json).absolute().parent}", key="json", path=args.json)
        with verifiable(args.run) as run:
            report = _verify_run(args, run)
        report.run = Path(args.run)
        if args.json == "-":
            print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        else:
            print(report.summary())
            if args.json:  # atomic: a full disk or a kill never leaves a truncated report (a review), and is one line (StorageError)
                from pot_zk.core.atomic import write_bytes_atomic

                write_bytes_atomic(Path(args.json), (json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n").encode())
        return EXIT_CODES[report.verdict]

    return run


def _verify_run(args: argparse.Namespace, run: Path) -> "RunReport":
    """verify_run on ``run`` with the command's options."""
    from pot_zk.backends.keys import KeySet
    from pot_zk.core.challenge import Challenge
    from pot_zk.verify.run import default_cache_dir, verify_run
    from pot_zk.verify.statement import parse_accepted

    return verify_run(
        run,
        cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
        srs_path=Path(args.srs) if args.srs else None,
        allow_dev_srs=args.allow_dev_srs,
        challenge=Challenge.load(Path(args.challenge)) if args.challenge else None,
        keys=KeySet.load(Path(args.keys)) if args.keys else None,
        expect_root=args.expect_root,
        expect_head=args.expect_head,
        expect_base=args.expect_base,
        expect_initial=args.expect_initial,
        max_tolerance_ulps=args.max_tolerance_ulps,
        min_proven=args.min_proven,
        accept_settings=parse_accepted(args.accept_setting),
        allow_no_nonce=args.allow_no_nonce,
        verifier_cache=not args.no_verifier_cache,
        **{name: getattr(args, name) for name in ("max_data_values", "max_records") if getattr(args, name) is not None},
    )


def prove_pending_in_run(run: Path, overrides: list[str]) -> int:
    """Prove the jobs parked in a run, holding its lock, recording each outcome in the bundle and
    its audit trail; configured by the run's own config.yaml with dotted ``overrides``."""
    from pot_zk.cli.handover import trainers_run
    from pot_zk.proving.parking import parked_jobs
    from pot_zk.runs.bundle import AUDIT, RunBundle
    from pot_zk.runs.lifecycle import RunLifecycle
    from pot_zk.runs.pending import check_parked_keys, prove_parked
    from pot_zk.runs.respond import named_key_location, run_config

    bundle = RunBundle.open(trainers_run(str(run), "prove-pending").resolve())  # absolute: a warm key holder reads its witness paths
    with RunLifecycle.from_config(run_config(bundle, overrides)) as lifecycle:  # the run's own retry schedule, prover and mode
        lifecycle.claim(bundle.root, "pot-zk prove-pending")
        cache_dir, options = named_key_location(lifecycle.runtime.plan, overrides)
        check_parked_keys(bundle, cache_dir=cache_dir, options=options)  # before the session's first record
        audit = lifecycle.open(bundle.path(AUDIT), "pending.start", run=bundle.root.name, command="prove-pending", parked=len(parked_jobs(bundle.park_dir)))
        results = prove_parked(bundle, lifecycle.runtime, audit, lifecycle.stats, cache_dir=cache_dir, options=options)
        remaining = len(parked_jobs(bundle.park_dir))
        lifecycle.end("completed", command="prove-pending", proved=len(results) - remaining, still_parked=remaining)
    return _print_pending(results, remaining, bundle.park_dir)


def prove_pending_in_park_dir(park_dir: Path, overrides: list[str], audit_file: Path | None) -> int:
    """Prove the jobs parked in a bare park directory (no run bundle around it), holding the lock
    of the directory above it, recording each attempt in ``audit_file`` (default: audit.jsonl
    beside the park directory); the same lifecycle as a run's (lock, Ctrl-C, run.end)."""
    from pot_zk.proving.parking import parked_jobs, prove_pending
    from pot_zk.runs.lifecycle import RunLifecycle

    owner = park_dir.resolve().parent
    with RunLifecycle.configure(overrides, run_dir=owner) as lifecycle:
        lifecycle.claim(owner, "pot-zk prove-pending")
        audit = lifecycle.open(audit_file or owner / "audit.jsonl", "pending.start", command="prove-pending", parked=len(parked_jobs(park_dir)))
        runtime = lifecycle.runtime
        results = prove_pending(park_dir, schedule=runtime.schedule, audit=audit, stats=lifecycle.stats, registry=runtime.registry)
        remaining = len(parked_jobs(park_dir))
        lifecycle.end("completed", command="prove-pending", proved=len(results) - remaining, still_parked=remaining)
    return _print_pending(results, remaining, park_dir)


def _print_pending(results: list[Any], remaining: int, park_dir: Path) -> int:
    for result in results:
        detail = result.proof_type if result.status == "proved" else (result.error or {}).get("error_class")
        print(f"step {result.step}: {result.status} ({detail})")
    print(f"{len(results) - remaining} proved, {remaining} still parked in {park_dir}")
    return 0 if remaining == 0 else 1


def prove_step_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("step_file", help="a step saved with pot_zk.kinds.registry.save_training_step (safetensors)")
    parser.add_argument("--out", required=True, help="a directory for the proof, the audit trail and result.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, right after STEP_FILE: handler=fallback circuit.tolerance_ulps=2")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.core.atomic import write_json_atomic
        from pot_zk.auto_prover import AutoProver
        from pot_zk.kinds.registry import load_training_step

        step = load_training_step(Path(args.step_file))
        with AutoProver(Path(args.out), args.overrides) as prover:
            result = prover.prove(step)
        if result is None:
            print("nothing proven: proving is disabled (mode=disabled)")
            return 1
        record = {
            "status": result.status,
            "proof_type": result.proof_type,
            "circuit": result.circuit,
            "commitment": result.commitment,
            "proof": None if result.proof_path is None else str(result.proof_path),
            "error": result.error,
        }
        write_json_atomic(Path(args.out) / "result.json", record)
        print(f"step {result.status} ({result.proof_type}): {record['proof']}")
        return 0

    return run


def verify_step_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("result", help="the result.json written by `pot-zk prove-step`")
    parser.add_argument("--circuit", help="the statement you expect, as a circuit spec JSON file (default: the one in result.json)")
    parser.add_argument("--step", help="the saved step the proof must be about: the commitments are recomputed from it (default: the ones in result.json)")
    parser.add_argument(
        "--learning-rate", type=float, metavar="LR",
        help="the rate you expect the step to have trained at, for a statement whose rate is public (a scheduled run's; default: the prover's, from result.json or --step)",
    )
    parser.add_argument("--srs", help="the verifier's SRS file, or zk-groth16 key directory (default: the dev SRS or key in the cache)")
    parser.add_argument("--keys", help="your own key material from `pot-zk keys new` (instead of --srs; checked against the trust store in --cache-dir)")
    parser.add_argument("--cache-dir", help="your cache: its trust store, the dev SRS and keys, and verify's own cache of the circuits and keys it derived (CACHE/verifier)")
    parser.add_argument("--no-verifier-cache", action="store_true", help="derive circuits and keys afresh instead of reusing CACHE/verifier")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.exceptions import ConfigurationError, ProofVerificationError

        result = _json_file(args.result)  # a usage error before the imports below (torch's among them)

        if args.keys and args.srs:
            raise ConfigurationError("give --keys or --srs, not both", key="keys")
        from pot_zk.backends.base import VerifierOptions
        from pot_zk.backends.keys import KeySet
        from pot_zk.backends.registry import spec_from_dict
        from pot_zk.kinds.encoding import StepCommitment
        from pot_zk.verify.run import default_cache_dir, verifier_workdir
        from pot_zk.verify.step import StepStatement, auditor_step_keys, step_keys, verify_step

        if result.get("status") != "proved":
            print(f"nothing to verify: the step was {result.get('status')}")
            return 1
        declared = _json_file(args.circuit) if args.circuit else result["circuit"]
        if not args.circuit:
            checked = ": --step checks its kind, architecture, batch size and learning rate, not its other settings" if args.step else ""
            print(f"note: the statement (circuit spec) is the prover's own{checked}; pass --circuit to check the one you expect")
        spec = spec_from_dict(declared)
        cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        workdir = verifier_workdir()
        options = VerifierOptions(cache, workdir, Path(args.srs) if args.srs else None, verifier_cache=not args.no_verifier_cache)
        try:
            if args.keys:
                keys = auditor_step_keys(spec, result["proof_type"], KeySet.load(Path(args.keys)), options)
            else:
                keys = step_keys(spec, result["proof_type"], options)
        except ProofVerificationError as exc:
            print(f"REJECTED ({result['proof_type']}): {exc.reason}: {exc.message}")
            return 1
        for note in keys.notes if keys is not None else ():
            print(f"note: {note}")
        if args.keys:
            print(f"keys: yours ({args.keys}, recorded in your trust store)")
        if args.step:
            from pot_zk.backends.base import check_step_matches
            from pot_zk.backends.registry import commit_step
            from pot_zk.exceptions import WitnessBuilderError
            from pot_zk.kinds.registry import load_training_step

            step = load_training_step(Path(args.step))
            try:  # review52: the statement came from result.json alone; a step at lr 0.5 verified against a step file saying 0.05
                check_step_matches(spec, step)
            except WitnessBuilderError as exc:
                print(f"REJECTED ({result['proof_type']}): step-mismatch: the statement {'you passed' if args.circuit else 'in result.json'} is not the step's: {exc.message}")
                return 1
            commitment = dataclasses.replace(commit_step(step, spec), learning_rate=step.learning_rate if getattr(spec, "rate_public", False) else None)
        else:
            print("note: the commitments are the ones in result.json; pass --step to check them against the step itself")
            commitment = StepCommitment.from_dict(result["commitment"])
        if getattr(spec, "rate_public", False):
            if args.learning_rate is not None:
                commitment = dataclasses.replace(commitment, learning_rate=args.learning_rate)
            else:
                print(f"note: the learning rate, {commitment.learning_rate!r}, is the prover's own; pass --learning-rate to check the one you expect")
        elif args.learning_rate is not None and args.learning_rate != spec.learning_rate:
            raise ConfigurationError(f"the statement fixes the learning rate at {spec.learning_rate!r}, not {args.learning_rate!r}", key="learning_rate")
        statement = StepStatement(spec, commitment)
        verdict = verify_step(statement, result["proof_type"], Path(result["proof"]), cache_dir=workdir, keys=keys)
        print(f"{'VERIFIED' if verdict.ok else 'REJECTED'} ({verdict.proof_type}){'' if verdict.ok else f': {verdict.reason}: {verdict.message}'}")
        return 0 if verdict.ok else 1

    return run


def _json_file(path: str) -> dict:
    """A JSON object from ``path``; ConfigurationError (a usage error) when it is not one."""
    from pot_zk.exceptions import ConfigurationError

    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path}: not JSON ({error})", key="path", path=path) from error
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: not a JSON object", key="path", path=path)
    return data


def report_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="a run directory made by `pot-zk train` or pot_zk.hooks")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: RUN/report)")
    parser.add_argument("--html", action="store_true", help="also verify the run and write report.html: one self-contained page, the verdict at the top")
    parser.add_argument("--cache-dir", help="with --html: the verifier's cache, as for pot-zk verify")
    parser.add_argument("--srs", help="with --html: the verifier's own SRS file, as for pot-zk verify")
    parser.add_argument("--keys", help="with --html: your key material from `pot-zk keys new`, as for pot-zk verify")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.cli.handover import existing_run
        from pot_zk.exceptions import ConfigurationError, PotZkError

        existing_run(args.run)  # a usage error before the imports below (torch's among them)
        if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
            raise ConfigurationError(f"--out {args.out} is a file; give the directory to write the report to", key="out", path=args.out)
        from pot_zk.report.run_report import write_report

        try:
            written = write_report(
                Path(args.run), Path(args.out) if args.out else None, with_html=args.html,
                cache_dir=Path(args.cache_dir) if args.cache_dir else None, srs_path=Path(args.srs) if args.srs else None,
                keys_dir=Path(args.keys) if args.keys else None,
            )
        except (PotZkError, OSError, ValueError, KeyError) as error:
            print(f"pot-zk report: {args.run}: {error}", file=sys.stderr)
            return 2
        print(f"report of {args.run} written to {written[0].parent}: " + ", ".join(p.name for p in written))
        return 0

    return run
