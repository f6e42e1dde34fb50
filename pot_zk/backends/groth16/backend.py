"""The ``groth16`` prover backend: ``zk-groth16`` proofs (Groth16 on BN254 through groth16py, our
circom circuits) of the exact fixed-point SGD, momentum, Adam / AdamW and LoRA steps (docs/groth16.md, docs/proofs.md).

* Circuit settings (config group ``circuit``, set by ``conf/prover/groth16.yaml``): ``scale``,
  ``param_scale``, ``value_bits``, ``quotient_bits`` -- the statement's grid and bounds (null:
  the statement's own, e.g. ``value_bits`` 16, or 17 for ten cross-entropy classes at scale 12).
* Statements (:data:`~pot_zk.backends.groth16.statements.STATEMENTS`, one folder each under
  ``backends/groth16/<kind>/``): ``sgd`` (losses mse and cross_entropy, the integer softmax of
  :mod:`pot_zk.kinds.exact_softmax` checked line by line in the circuit), ``momentum`` (the same
  losses, the velocity committed next to the weights), ``adamw`` (the same losses, the moments and
  step count committed) and ``lora`` (mse and cross_entropy); a kind without a statement is
  refused before anything runs.
* Commitments: Poseidon hash chains (up to 11 packed elements per call) over packed limbs (:class:`~pot_zk.backends.groth16.scheme.PackedPoseidon`),
  the circuit's public outputs.
* Training arithmetic: exact (:class:`~pot_zk.backends.groth16.training.ExactTraining`): the
  initial model is snapped onto the grid and every update is the statement's integer step,
  so W_t+1 is a function of (W_t, batch) and a proof leaves no tolerance.
* Keys: the configured key directory (``srs.path``: one made by ``pot-zk keys new
  prover=groth16`` -- the auditor's, provenance ``auditor`` -- or an imported ceremony,
  ``zkey``), else a single-party setup run here and cached by circuit id (``dev``: refused
  unless ``srs.allow_dev_srs``). The verifier uses a key it holds: ``verify --keys DIR``, or
  the dev key in its own cache (labelled, refused for production runs unless allowed).
* Held keys: on Dask workers (``executor=dask``) the proving key is loaded once per worker
  process and kept for the run (:meth:`key_holder`, :mod:`pot_zk.backends.groth16.held`)
  instead of a program run per attempt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from pot_zk.backends.base import GeneratedKeys, KeySettings, ProverBackend, Receipt, StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.groth16 import auditor_keys
from pot_zk.backends.groth16 import keys as groth16_keys
from pot_zk.backends.groth16.ceremony import CeremonyFiles, write_ceremony_files
from pot_zk.backends.groth16.held import HeldKeys
from pot_zk.backends.groth16.prove import PROOF_TYPE
from pot_zk.backends.groth16.request import prove_integers, witness_integers
from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.backends.groth16.statements import STATEMENTS
from pot_zk.backends.groth16.training import ExactTraining
from pot_zk.backends.groth16.verifier import Groth16VerifierKey, read_proof, verifier_key, verify_proof_bytes, verify_proof_file
from pot_zk.backends.keys import KeySet
from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.core.stages import stage
from pot_zk.exceptions import ConfigurationError, ProofVerificationError
from pot_zk.kinds.base import BatchStep, StepKind


class Groth16Backend(ProverBackend):
    name = "groth16"
    proof_type = PROOF_TYPE
    zero_knowledge = True
    exact = True
    description = "Groth16 on BN254 through groth16py, pot-zk's own circom circuits (exact)"
    statements = STATEMENTS
    ceremony = True

    def commitments(self, spec: Groth16Statement) -> PackedPoseidon:
        return PackedPoseidon(spec.scale, spec.value_bits, tuple(spec.tensor_grids.items()))

    def scheduled_spec(self, kind: StepKind, architecture: Any, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> Groth16Statement:
        """The statement at ``learning_rate`` with its rate public: each step's c_fix is a public
        input, range-checked to at most this rate's (docs/groth16.md, schedules)."""
        spec = self.circuit_spec(kind, architecture, batch_size, learning_rate, settings)
        return dataclasses.replace(spec, rate_public=True)

    def training_arithmetic(self, spec: Groth16Statement) -> ExactTraining:
        return ExactTraining(spec)

    program = "pot-zk-groth16-prover"

    def key_holder(self) -> HeldKeys:
        return HeldKeys()

    def check_key_policy(self, keys: KeySettings, mode: str) -> None:
        if keys.allow_dev:
            return
        where = "" if keys.path is None else f" (srs.path={keys.path} holds one: its provenance.json says dev)"
        if keys.path is None or _says_dev(Path(keys.path)):  # review24: a dev key directory named as srs.path trained, then failed verify
            raise ConfigurationError(
                f"mode {mode} refuses dev Groth16 keys{where} (a setup run by the prover itself: it knows the trapdoor "
                "and could forge proofs); set srs.path to the key directory your auditor made with "
                "`pot-zk keys new prover=groth16 ...`, or accept the risk explicitly with srs.allow_dev_srs=true",
                key="srs.path",
            )

    def prepare(self, spec: Groth16Statement, cache_dir: Path, keys: KeySettings) -> dict[str, Any]:
        """Open the configured key directory, or run (once per circuit id) the dev setup."""
        key_dir = _configured_keys(spec, Path(keys.path)) if keys.path is not None else groth16_keys.ensure_keys(spec, cache_dir)
        record = key_dir.record
        return {
            "keys": {
                "provenance": key_dir.provenance,
                "circuit_id": key_dir.circuit_id,
                "vk_sha256": record["vk_sha256"],
                "constraints": (record.get("constraints") or {}).get("constraints"),
                "engine": f"{record.get('engine')} {record.get('engine_version')}",
            }
        }

    def prover_options(self, keys: KeySettings) -> dict[str, Any]:
        return {"keys_dir": str(Path(keys.path).absolute())} if keys.path is not None else {}

    def check_keys_at_hand(self, spec: Groth16Statement, cache_dir: Path, options: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
        declared = (manifest.get("keys") or {}).get("vk_sha256")
        if not isinstance(declared, str):
            return  # a run that declared no key: proving was off
        given = options.get("keys_dir")
        directory = Path(given) if given else groth16_keys.key_directory(Path(cache_dir), spec)
        found = groth16_keys.open_keys(spec, directory).record.get("vk_sha256") if directory.exists() else None
        if found != declared:
            where = f"srs.path {directory}" if given else f"the cache ({directory}: cache_dir)"
            raise ConfigurationError(
                f"the run's zk-groth16 key (vk sha256 {declared[:16]}...) is not in {where}: "
                f"{'another key is there' if found else 'no key is there'}; a key made now would prove steps no verifier of "
                "this run accepts, and the run's earlier proofs need their own key too: put the run's key directory back there, or name "
                "where it is (prove-pending and respond take cache_dir=DIR or srs.path=DIR; a relative cache_dir is relative to "
                "the directory the command runs in); a lost dev key leaves the run's proofs unverifiable: train it again",
                key="srs.path" if given else "cache_dir",
                expected=declared,
                actual=found,
            )

    def prove(self, spec: Groth16Statement, step: BatchStep, cache_dir: Path, out_dir: Path, options: Mapping[str, Any]) -> ProverResponse:
        stage("witness")
        integers = witness_integers(spec, step)
        stage("keys")
        if options.get("keys_dir"):
            key_dir = groth16_keys.open_keys(spec, Path(options["keys_dir"]))
        else:
            key_dir = groth16_keys.ensure_keys(spec, Path(cache_dir))
        return prove_integers(spec, integers, key_dir, Path(out_dir))

    def verifier_keys(self, spec: Groth16Statement, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys:
        key = verifier_key(spec, declared, Path(options.cache_dir), options.key_path, options.allow_dev_keys, trusted=options.key_path_trusted)
        return VerifierKeys(key, key.record, key.notes)

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        if keys is None:
            raise ConfigurationError("verifying a zk-groth16 proof needs a verifying key (--keys, or the dev key in the cache)", key="keys")
        verify_proof_file(statement.spec, statement.commitment.to_dict(), proof, keys.material)

    def check_on_receipt(
        self, request: ProverRequest, response: ProverResponse, commitments: Mapping[str, Any], key: str | None
    ) -> Receipt | None:
        """A pairing check (milliseconds) against the verifying key of the key directory the
        request was proven with (``keys_dir``, else the dev key in its cache): the trainer's key,
        which must be ``key`` (review55: a program that made a setup of its own in the cache had
        its proofs checked, and counted, under it) and the one the response reports. Keys are
        named by the SHA-256 of their ``vk.bin``."""
        spec = self.spec_from_dict(request.circuit)
        given = request.options.get("keys_dir")
        loaded = verifier_key(spec, None, Path(request.cache_dir), Path(given) if given else None, allow_dev=True).key
        if key is not None and loaded.vk_sha256 != key:
            raise ProofVerificationError(
                f"the key in {loaded.directory} (vk sha256 {loaded.vk_sha256[:16]}...) is not the run's ({key[:16]}...)",
                reason="keys-unavailable",
            )
        reported = ((response.public or {}).get("keys") or {}).get("vk_sha256")
        if reported != loaded.vk_sha256:
            raise ProofVerificationError(
                f"the program reports verifying key {str(reported)[:16]}... for this proof, not the key it was asked to prove with ({loaded.vk_sha256[:16]}...)",
                reason="foreign-keys",
            )
        proof = response.artifacts.get("proof")
        if not isinstance(proof, str):
            raise ProofVerificationError("the response names no proof file", reason="malformed-proof")
        data = read_proof(Path(proof))
        verify_proof_bytes(spec, commitments, data, Groth16VerifierKey(loaded, {}))
        return Receipt(hashlib.sha256(data).hexdigest(), loaded.vk_sha256)

    def current_key(self, request: ProverRequest) -> str | None:
        spec = self.spec_from_dict(request.circuit)
        given = request.options.get("keys_dir")
        directory = Path(given) if given else groth16_keys.key_directory(Path(request.cache_dir), spec)
        if not directory.is_dir():
            return None
        try:
            return str(groth16_keys.open_keys(spec, directory).record["vk_sha256"])
        except (ConfigurationError, KeyError):
            return None

    def declared_key(self, manifest: Mapping[str, Any]) -> str | None:
        declared = (manifest.get("keys") or {}).get("vk_sha256")
        return declared if isinstance(declared, str) else None

    def new_keys(self, statements: Sequence[Groth16Statement], out_dir: Path, cache_dir: Path) -> GeneratedKeys:
        return auditor_keys.new_keys(statements, out_dir, cache_dir)

    def auditor_key_path(self, keys: KeySet, circuit_id: str) -> Path | None:
        return auditor_keys.key_path(keys, circuit_id)

    def check_run_keys(self, report: Any, manifest: Mapping[str, Any], proofs: Sequence[Mapping[str, Any]], keys: KeySet) -> dict[str, Path]:
        return auditor_keys.check_run_keys(report, manifest, proofs, keys)

    def ceremony_files(self, spec: Groth16Statement, out_dir: Path, statement_args: str) -> CeremonyFiles:
        return write_ceremony_files(spec, out_dir, statement_args)

    def import_keys(self, spec: Groth16Statement, path: Path, out_dir: Path) -> GeneratedKeys:
        return auditor_keys.import_zkey(spec, path, out_dir)


GROTH16 = Groth16Backend()


def _configured_keys(spec: Groth16Statement, path: Path) -> groth16_keys.KeyDirectory:
    """``srs.path``'s key directory. A path that is not there, or the key set `pot-zk keys new`
    wrote (its root, a directory per circuit), is named in one line (review58: docs/scaling.md
    gave the root, and the error said only "not a groth16 key directory")."""
    if not path.is_dir():
        raise ConfigurationError(
            f"srs.path={path}: {'not a directory' if path.exists() else 'no such directory'} (the key directory your auditor made: "
            "`pot-zk keys new` prints the srs.path= the trainer proves with)",
            key="srs.path",
        )
    if not (path / "provenance.json").exists() and (path / spec.circuit_id()).is_dir():
        raise ConfigurationError(
            f"srs.path={path} holds key directories, one per circuit: this run's is srs.path={path / spec.circuit_id()}",
            key="srs.path",
        )
    return groth16_keys.open_keys(spec, path)


def _says_dev(directory: Path) -> bool:
    """The key directory's provenance record says ``dev`` (an unreadable one is refused when the
    directory is opened)."""
    try:
        return json.loads((directory / "provenance.json").read_text()).get("provenance") == "dev"
    except (OSError, ValueError, AttributeError):
        return False
