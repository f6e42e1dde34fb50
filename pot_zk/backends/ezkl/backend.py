"""The ``ezkl`` prover backend: ``zk-halo2`` proofs (Halo2 + KZG through ezkl) of its check
statements (``backends/ezkl/{sgd,momentum,lora}.py``, sharing
:class:`~pot_zk.backends.ezkl.statement.FixedPointCheck`).

Circuit settings (config group ``circuit``): ``scale``, ``param_scale`` (null: the statement's
own, 20 for mse and ``scale`` for cross_entropy), ``decomp_base``, ``decomp_legs``,
``tolerance_ulps`` (docs/proofs.md). Keys: a KZG SRS, either configured
(``srs.path``, provenance ``configured``) or generated and cached here (``dev-srs``, refused
unless ``srs.allow_dev_srs``); proving and verifying keys are derived from the circuit and the
SRS and cached by content hash (:mod:`pot_zk.backends.ezkl.adapter`). Verification derives its
own circuit and verifying key, kept in the verifier's cache
(:mod:`pot_zk.backends.ezkl.verifier_cache`), never the prover's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from pot_zk.backends.base import KeySettings, ProverBackend, StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.backends.ezkl import halo2
from pot_zk.backends.ezkl import keys as ezkl_keys
from pot_zk.backends.ezkl.commitments import PoseidonPerValue
from pot_zk.backends.ezkl.statement import FixedPointCheck
from pot_zk.backends.ezkl.statements import STATEMENTS
from pot_zk.backends.ezkl.verifier_cache import DerivedVerifier, VerifierCache
from pot_zk.backends.base import GeneratedKeys
from pot_zk.backends.keys import KeySet
from pot_zk.core.digest import file_sha256
from pot_zk.core.protocol import ProverResponse
from pot_zk.exceptions import ConfigurationError, ProofVerificationError
from pot_zk.kinds.base import BatchStep


DEV_SRS_NOTE = (
    "zk-halo2 proofs were checked with a locally generated dev SRS: whoever generated it knows its "
    "trapdoor and could forge proofs. Use --srs with an SRS from a ceremony you trust."
)


ROWS_PER_PRODUCT = 4
"""A lower bound of the rows pot-zk's ezkl circuits lay out per product of the forward pass:
measured 14-20 (4-3-2 b2: 36 products in 2^12 rows; 64-16-10 b8: 9,472 in 141,343 rows); the
leanest layout measured, without commitments and range checks, 5 (review51: a bound of half a
row per product let circuits 30 times too large for the SRS be compiled first)."""


def _check_fits(spec: FixedPointCheck, srs_logrows: int) -> None:
    """ProofVerificationError (``srs-mismatch``) when ``spec``'s circuit cannot fit the SRS's
    2**``srs_logrows`` rows, told from the statement before its circuit is compiled (review49:
    verify compiled a trainer's declared [4, 512, 512, 2] for 4 min 39 s before comparing its rows
    with the auditor's SRS, and kept it in the verifier's cache)."""
    from pot_zk.kinds.registry import STEP_KINDS

    dims = STEP_KINDS.get(spec.kind).mlp(spec.architecture).dims
    products = sum(fan_in * fan_out for fan_in, fan_out in zip(dims, dims[1:])) * spec.batch_size
    if products * ROWS_PER_PRODUCT > 1 << srs_logrows:
        raise ProofVerificationError(
            f"the statement's forward pass has {products:,} products (dims {list(dims)}, batch {spec.batch_size}), more than a circuit "
            f"of the SRS's 2^{srs_logrows} rows holds (at least {ROWS_PER_PRODUCT} rows per product): no proof of it verifies with "
            "this SRS, so its circuit was not compiled",
            reason="srs-mismatch",
        )


class EzklBackend(ProverBackend):
    name = "ezkl"
    proof_type = halo2.PROOF_TYPE
    zero_knowledge = True
    exact = False
    description = "Halo2 with KZG commitments, through ezkl (within the statement's tolerance)"
    statements = STATEMENTS
    program = "pot-zk-ezkl-prover"

    def commitments(self, spec: FixedPointCheck) -> PoseidonPerValue:
        return PoseidonPerValue(spec.scale, spec.value_bound)

    def check_key_policy(self, keys: KeySettings, mode: str) -> None:
        if keys.path is None and not keys.allow_dev:
            raise ConfigurationError(
                f"mode {mode} refuses the locally generated dev SRS (whoever made it knows its trapdoor and "
                "could forge proofs); set srs.path to an SRS file from a ceremony you trust, or accept the "
                "risk explicitly with srs.allow_dev_srs=true",
                key="srs.path",
            )

    def prepare(self, spec: FixedPointCheck, cache_dir: Path, keys: KeySettings) -> dict[str, Any]:
        """Compile the circuit (cached) and settle which SRS its proofs use."""
        circuit = halo2.compiled_circuit(spec, cache_dir)
        if keys.path is not None:
            srs = ezkl_adapter.configured_srs(Path(keys.path), circuit.logrows)
        else:
            srs = ezkl_adapter.dev_srs(cache_dir, circuit.logrows)
        return {"srs": {"provenance": srs.provenance, "sha256": srs.sha256, "logrows": srs.logrows, "circuit_logrows": circuit.logrows}}

    def prover_options(self, keys: KeySettings) -> dict[str, Any]:
        return {"srs_path": str(Path(keys.path).absolute())} if keys.path is not None else {}

    def check_keys_at_hand(self, spec: FixedPointCheck, cache_dir: Path, options: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
        declared = manifest.get("srs") or {}
        sha256, logrows = declared.get("sha256"), declared.get("logrows")
        if not isinstance(sha256, str) or not isinstance(logrows, int):
            return  # a run that declared no SRS: proving was off
        given = options.get("srs_path")
        path = Path(given) if given else ezkl_adapter.dev_srs_path(Path(cache_dir), logrows)
        found = file_sha256(path) if path.is_file() else None
        if found != sha256:
            where = f"srs.path {path}" if given else f"{path} (in cache_dir)"
            raise ConfigurationError(
                f"the run's SRS (sha256 {sha256[:16]}...) is not at {where}: "
                f"{'another SRS is there' if found else 'no SRS is there'}; an SRS made now would prove steps no verifier of "
                "this run accepts, and the run's earlier proofs need their own SRS too: put the run's SRS back there, or name "
                "where it is (prove-pending and respond take cache_dir=DIR or srs.path=DIR; a relative cache_dir is relative to "
                "the directory the command runs in); a lost dev SRS leaves the run's proofs unverifiable: train it again",
                key="srs.path" if given else "cache_dir",
                expected=sha256,
                actual=found,
            )

    def prove(self, spec: FixedPointCheck, step: BatchStep, cache_dir: Path, out_dir: Path, options: Mapping[str, Any]) -> ProverResponse:
        srs = None
        if options.get("srs_path"):
            srs = ezkl_adapter.configured_srs(Path(options["srs_path"]), halo2.compiled_circuit(spec, cache_dir).logrows)
        proof = halo2.prove_step(step, spec, cache_dir, srs, out_dir)
        return ProverResponse(
            proof_type=self.proof_type,
            artifacts={"proof": str(proof.proof_path)},
            public={
                "commitment": proof.commitment.to_dict(),
                "circuit_id": proof.circuit_id,
                "srs": {"provenance": proof.srs.provenance, "sha256": proof.srs.sha256, "logrows": proof.srs.logrows},
            },
            timings=proof.timings,
            sizes={"proof_bytes": proof.proof_path.stat().st_size},
        )

    def verifier_keys(self, spec: FixedPointCheck, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys:
        """The verifier's SRS, and the circuit and verifying key derived from ``spec`` under it
        (reused from the verifier's own cache when its checks pass: :mod:`~pot_zk.backends.ezkl.verifier_cache`).
        The SRS, for a run (``declared`` is its manifest): ``options.key_path``, else the dev SRS
        in the verifier's cache if its hash is the run's (refused for a production run unless
        ``allow_dev_keys``). For one step: ``options.key_path``, else the cached dev SRS
        (generated if missing)."""
        cache = VerifierCache.open(options.cache_dir, options.workdir, options.verifier_cache)
        if declared is None:
            logrows = cache.circuit(spec)[0].logrows
            if options.key_path is not None:
                return _keys(cache.verifier(spec, ezkl_adapter.configured_srs(options.key_path, logrows)))
            note = "checked with the dev SRS in the cache; whoever generated it can forge proofs"
            return _keys(cache.verifier(spec, ezkl_adapter.dev_srs(options.cache_dir, logrows)), note)
        recorded = declared.get("srs") or {}
        logrows = int(recorded.get("logrows", 0))
        if options.key_path is not None:
            _check_fits(spec, ezkl_adapter.srs_logrows(options.key_path))
            return _keys(cache.verifier(spec, ezkl_adapter.configured_srs(options.key_path, logrows)))
        candidate = Path(options.cache_dir) / "srs" / f"dev-kzg{logrows}.srs"
        if not candidate.is_file() or ezkl_adapter.file_sha256(candidate) != recorded.get("sha256"):
            raise ProofVerificationError(
                f"no SRS given (--srs) and no dev SRS with the run's hash in {options.cache_dir}/srs", reason="srs-unavailable"
            )
        if declared.get("mode") == "production" and not options.allow_dev_keys:
            raise ProofVerificationError("a production-mode run proven with a dev SRS (pass --allow-dev-srs to accept)", reason="dev-srs-refused")
        _check_fits(spec, logrows)
        return _keys(cache.verifier(spec, ezkl_adapter.SrsRef(candidate, logrows, "dev-srs", recorded["sha256"])), DEV_SRS_NOTE)

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        if keys is None:
            raise ConfigurationError("verifying a zk-halo2 proof needs an SRS (srs.path, or a dev SRS)", key="srs.path")
        size = Path(proof).stat().st_size
        if size > MAX_PROOF_BYTES:  # review31: an oversized file is not parsed to learn it is no proof
            raise ProofVerificationError(
                f"the proof file has {size:,} bytes; a zk-halo2 proof file of pot-zk's statements has far fewer than {MAX_PROOF_BYTES:,}",
                reason="malformed-proof",
            )
        _check_redundant_encoding(proof)
        derived: DerivedVerifier = keys.material
        halo2.check_step_proof(statement.spec, statement.commitment, proof, derived.circuit, derived.vk, derived.srs)


    def new_keys(self, statements: Sequence[FixedPointCheck], out_dir: Path, cache_dir: Path) -> GeneratedKeys:
        return ezkl_keys.new_keys(statements, out_dir, cache_dir)

    def auditor_key_path(self, keys: KeySet, circuit_id: str) -> Path | None:
        return keys.path("srs") if "srs" in keys.files else None

    def check_run_keys(self, report: Any, manifest: Mapping[str, Any], proofs: Sequence[Mapping[str, Any]], keys: KeySet) -> dict[str, Path]:
        return ezkl_keys.check_run_keys(report, manifest, proofs, keys)


def _keys(derived: DerivedVerifier, *notes: str) -> VerifierKeys:
    srs = derived.srs
    record = {"provenance": srs.provenance, "sha256": srs.sha256, "path": str(srs.path), "verifying_key": derived.record()}
    return VerifierKeys(derived, record, (*notes, *derived.notes))


MAX_PROOF_BYTES = 16 << 20
"""Far above any proof file of pot-zk's statements (tens of kilobytes: the reference step's is
6.7 KB); a larger one is malformed before it is read."""


def _check_redundant_encoding(proof: Path) -> None:
    """ezkl's proof file carries the proof twice: ``proof`` (bytes, what ezkl verifies) and
    ``hex_proof`` (what e.g. an EVM verifier is given). A file whose two encodings differ is
    malformed: whatever reads the other one must not see an unverified proof."""
    try:
        data = json.loads(Path(proof).read_text())
        hex_proof = data.get("hex_proof") if isinstance(data, dict) else None
        if hex_proof is not None and hex_proof.lower() != "0x" + bytes(data["proof"]).hex():
            raise ProofVerificationError("the proof file's hex_proof differs from its proof bytes", reason="malformed-proof")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return  # unreadable files are reported by the verifier itself, with its own reason


EZKL = EzklBackend()
