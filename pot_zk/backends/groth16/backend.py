"""The ``groth16`` prover backend: ``zk-groth16`` proofs (Groth16 on BN254 through groth16py, our
circom circuits) of the exact fixed-point SGD and LoRA steps (docs/groth16.md, docs/proofs.md).

* Circuit settings (config group ``circuit``, set by ``conf/prover/groth16.yaml``): ``scale``,
  ``param_scale``, ``value_bits``, ``quotient_bits`` -- the statement's grid and bounds (null:
  the statement's own, e.g. ``value_bits`` 16, or 17 for ten cross-entropy classes at scale 12).
* Losses: mse and cross_entropy for SGD steps (the integer softmax of
  :mod:`pot_zk.kinds.exact_softmax`, checked line by line in the circuit); LoRA steps mse only;
  SGD with momentum is refused before anything runs.
* Commitments: Poseidon(2) chains over packed limbs (:class:`~pot_zk.backends.groth16.scheme.PackedPoseidon`),
  the circuit's public outputs.
* Training arithmetic: exact (:class:`~pot_zk.backends.groth16.training.ExactTraining`): the
  initial model is snapped onto the grid and every update is the statement's integer step,
  so W_t+1 is a function of (W_t, batch) and a proof leaves no tolerance.
* Keys: the configured key directory (``srs.path``: one made by ``pot-zk keys new
  prover=groth16`` -- the auditor's, provenance ``auditor`` -- or an imported ceremony,
  ``zkey``), else a single-party setup run here and cached by circuit id (``dev``: refused
  unless ``srs.allow_dev_srs``). The verifier uses a key it holds: ``verify --keys DIR``, or
  the dev key in its own cache (labelled, refused for production runs unless allowed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.base import KeySettings, ProverBackend, StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.groth16 import keys as groth16_keys
from pot_zk.backends.groth16.lora_spec import Groth16LoraSpec, Groth16Spec
from pot_zk.backends.groth16.prove import PROOF_TYPE
from pot_zk.backends.groth16.request import prove_tensors, witness_tensors
from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.groth16.spec import Groth16SgdSpec
from pot_zk.backends.groth16.training import ExactTraining
from pot_zk.backends.groth16.verifier import verifier_key, verify_proof_file
from pot_zk.core.protocol import ProverResponse
from pot_zk.core.stages import stage
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import BatchStep, StepKind

SETTINGS = ("scale", "param_scale", "value_bits", "quotient_bits")
SPECS = {"sgd": Groth16SgdSpec, "lora": Groth16LoraSpec}


class Groth16Backend(ProverBackend):
    name = "groth16"
    proof_type = PROOF_TYPE

    def provable_kinds(self) -> tuple[str, ...]:
        return tuple(SPECS)

    def circuit_spec(self, kind: StepKind, architecture: Any, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> Groth16Spec:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ConfigurationError(
                f"unknown circuit setting(s) {unknown} for the groth16 backend; valid: {', '.join(SETTINGS)}",
                key=f"circuit.{unknown[0]}",
                valid=list(SETTINGS),
            )
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, int | None):
                raise ConfigurationError(f"circuit.{key} must be an integer (or null: the statement's own), got {value!r}", key=f"circuit.{key}")
        settings = {key: value for key, value in settings.items() if value is not None}
        if kind.name not in SPECS:
            raise ConfigurationError(f"the groth16 backend proves {list(SPECS)} steps, not {kind.name!r}", key="model.kind")
        mlp = kind.mlp(architecture)
        losses = Groth16SgdSpec.losses if kind.name == "sgd" else Groth16LoraSpec.losses
        if mlp.activation != "relu" or mlp.loss not in losses:
            raise ConfigurationError(
                f"the groth16 backend proves {kind.name} steps of ReLU MLPs with loss {' or '.join(losses)}, "
                f"not {mlp.activation} with {mlp.loss} (use prover=ezkl, or model.loss=mse)",
                key="model.loss",
            )
        if kind.name == "sgd":
            return Groth16SgdSpec(tuple(architecture.dims), batch_size, float(learning_rate), **settings, loss=mlp.loss)
        return Groth16LoraSpec(
            tuple(architecture.base.dims), tuple(architecture.adapted), int(architecture.rank), float(architecture.alpha),
            batch_size, float(learning_rate), **settings,
        )

    def spec_from_dict(self, data: Mapping[str, Any]) -> Groth16Spec:
        spec_type = SPECS.get(str(data.get("kind")))
        if spec_type is None:
            raise ConfigurationError(f"not a groth16 circuit spec of a known kind: {data.get('kind')!r}", key="circuit")
        return spec_type.from_dict(data)

    def commitments(self, spec: Groth16Spec) -> PackedPoseidon:
        return PackedPoseidon(spec.scale, spec.value_bits)

    def training_arithmetic(self, spec: Groth16Spec) -> ExactTraining:
        return ExactTraining(spec)

    def check_key_policy(self, keys: KeySettings, mode: str) -> None:
        if keys.path is None and not keys.allow_dev:
            raise ConfigurationError(
                f"mode {mode} refuses dev Groth16 keys (a setup run by the prover itself: it knows the trapdoor "
                "and could forge proofs); set srs.path to the key directory your auditor made with "
                "`pot-zk keys new prover=groth16 ...`, or accept the risk explicitly with srs.allow_dev_srs=true",
                key="srs.path",
            )

    def prepare(self, spec: Groth16Spec, cache_dir: Path, keys: KeySettings) -> dict[str, Any]:
        """Open the configured key directory, or run (once per circuit id) the dev setup."""
        key_dir = groth16_keys.open_keys(spec, Path(keys.path)) if keys.path is not None else groth16_keys.ensure_keys(spec, cache_dir)
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

    def prove(self, spec: Groth16Spec, step: BatchStep, cache_dir: Path, out_dir: Path, options: Mapping[str, Any]) -> ProverResponse:
        stage("witness")
        tensors = witness_tensors(spec, step)
        stage("keys")
        if options.get("keys_dir"):
            key_dir = groth16_keys.open_keys(spec, Path(options["keys_dir"]))
        else:
            key_dir = groth16_keys.ensure_keys(spec, Path(cache_dir))
        return prove_tensors(spec, tensors, key_dir, Path(out_dir))

    def verifier_keys(self, spec: Groth16Spec, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys:
        key = verifier_key(spec, declared, Path(options.cache_dir), options.key_path, options.allow_dev_keys)
        return VerifierKeys(key, key.record, key.notes)

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        if keys is None:
            raise ConfigurationError("verifying a zk-groth16 proof needs a verifying key (--keys, or the dev key in the cache)", key="keys")
        verify_proof_file(statement.spec, statement.commitment.to_dict(), proof, keys.material)


GROTH16 = Groth16Backend()
