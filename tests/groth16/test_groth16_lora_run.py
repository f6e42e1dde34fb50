"""LoRA fine-tuning with prover=groth16: on a base run trained exactly (so its final model is on the
grid), the adapters train exactly, the proven steps verify with the base commitment; a base
trained with ezkl (in float, committed with ezkl's scheme) is refused before anything runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs.base_run import base_commitment
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.export import export_run
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run
from provers.groth16_held import socket_path

pytestmark = pytest.mark.prover

COMMON = ["model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "train.progress=false"]


def _train(run: Path, cache: Path, *extra: str):
    return train(compose_config([*COMMON, f"run_dir={run}", f"cache_dir={cache}", *extra]), sleep=lambda s: None)


def test_a_lora_run_on_an_exact_base_proves_and_verifies(tmp_path):
    cache = tmp_path / "cache"
    _train(tmp_path / "base", cache, "prover=groth16", "mode=disabled", "data.part=base")
    lora = tmp_path / "lora"
    try:
        summary = _train(lora, cache, "prover=groth16", "model=lora_tiny", f"model.base_run={tmp_path / 'base'}", "data.part=adapt", "policy=every_k", "policy.k=2")
    finally:
        pid_file = Path(f"{socket_path(str(cache), RunBundle.open(lora).manifest()['circuit'])}.pid")
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert summary.progress["proof_types"] == {"zk-groth16": 2}
    assert RunBundle.open(lora).manifest()["circuit"]["circuit_version"] == "groth16-lora/2"
    report = verify_run(lora, cache_dir=cache)  # the base unpinned: the trainer's word
    assert {(f.check, f.reason) for f in report.findings} == {("base-model", "base-not-pinned")}, report.summary()
    assert "base-model" not in report.passed and report.coverage == {"zk-groth16": 2, "commitment-only": 2}  # a check with a finding never passed
    assert report.references["base_commitment"] == base_commitment(tmp_path / "base")
    pinned = verify_run(lora, cache_dir=cache, expect_base=base_commitment(tmp_path / "base"))
    assert pinned.ok and "base-reference" in pinned.passed, pinned.summary()
    assert any("not its layer shapes" in note for note in pinned.notes), pinned.notes
    other = verify_run(lora, cache_dir=cache, expect_base="ab" * 32)
    assert {(f.check, f.reason) for f in other.findings} == {("base-model", "unexpected-base")}
    by_run = verify_run(lora, cache_dir=cache, expect_base=tmp_path / "base")  # the base run itself: values and shapes
    assert by_run.ok and "base-reference" in by_run.passed and not any("layer shapes" in n for n in by_run.notes), by_run.summary()
    archive = export_run(tmp_path / "base", tmp_path / "base.tar.gz").archive
    assert verify_run(lora, cache_dir=cache, expect_base=archive).ok


def test_a_base_trained_with_ezkl_is_refused(tmp_path):
    cache = tmp_path / "cache"
    _train(tmp_path / "base", cache, "prover=ezkl", "mode=disabled", "data.part=base")
    with pytest.raises(ConfigurationError, match="trained with prover=ezkl.*train the base with prover=groth16"):
        _train(tmp_path / "lora", cache, "prover=groth16", "model=lora_tiny", f"model.base_run={tmp_path / 'base'}", "data.part=adapt")
    assert not (tmp_path / "lora" / "manifest.json").exists()


def test_expect_base_hex_pins_the_base_values_not_its_shapes_the_base_run_and_the_auditors_keys_close_that(tmp_path):
    """What --expect-base HEX does not check (docs/lora.md): a base commitment covers the base's
    values in order and their count, not its layer shapes. A 4-3-2 base's 23 values read as a
    4-1-4-2 MLP (also 23) have the same commitment, so a LoRA run on that other network passes
    the pin; the statement line names its base dims, --expect-base with the base run itself
    refuses it (unexpected-base), and so do the auditor's keys, made for the agreed statement
    (4-3-2: keys-statement-mismatch)."""
    import json
    import shutil
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file, save_file

    from pot_zk.backends.keys import KeySet

    cache = tmp_path / "cache"
    _train(tmp_path / "base", cache, "prover=groth16", "mode=disabled", "data.part=base")
    reshaped = tmp_path / "base-as-4-1-4-2"
    shutil.copytree(tmp_path / "base", reshaped)
    manifest = json.loads((reshaped / "manifest.json").read_text())
    manifest["circuit"]["architecture"]["dims"] = [4, 1, 4, 2]
    (reshaped / "manifest.json").write_text(json.dumps(manifest))
    state = load_file(tmp_path / "base" / "model_final.safetensors")
    flat = torch.cat([state[k].reshape(-1) for k in ("0.weight", "0.bias", "2.weight", "2.bias")])
    shapes = {"0.weight": (1, 4), "0.bias": (1,), "2.weight": (4, 1), "2.bias": (4,), "4.weight": (2, 4), "4.bias": (2,)}
    sizes = [torch.Size(shape).numel() for shape in shapes.values()]
    save_file({name: part.reshape(shape).clone() for (name, shape), part in zip(shapes.items(), flat.split(sizes))}, str(reshaped / "model_final.safetensors"))
    lora = tmp_path / "lora"
    _train(lora, cache, "prover=groth16", "mode=disabled", "model=lora_tiny", "model.dims=[4,1,4,2]", f"model.base_run={reshaped}", "data.part=adapt")
    pin = base_commitment(tmp_path / "base")
    pinned = verify_run(lora, cache_dir=cache, expect_base=pin)
    assert pinned.ok and "base-reference" in pinned.passed, pinned.summary()  # the documented gap
    assert "'base': {'dims': [4, 1, 4, 2]" in pinned.summary()  # the statement line names the base dims
    by_run = verify_run(lora, cache_dir=cache, expect_base=tmp_path / "base")  # the base run pins its shapes too
    assert [(f.check, f.reason) for f in by_run.findings] == [("base-model", "unexpected-base")], by_run.summary()
    assert "[4, 1, 4, 2]" in by_run.findings[0].message and "[4, 3, 2]" in by_run.findings[0].message
    keys = tmp_path / "auditor-keys"
    made = subprocess.run(
        [str(Path(sys.executable).parent / "pot-zk"), "keys", "new", "prover=groth16", "model=lora_tiny", "data=synthetic", "train.batch_size=2",
         "--out", str(keys), "--cache-dir", str(tmp_path / "auditor-cache")],
        capture_output=True, text=True, timeout=600,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    closed = verify_run(lora, cache_dir=tmp_path / "auditor-cache", keys=KeySet.load(keys), expect_base=pin)
    named = {(f.check, f.reason) for f in closed.findings}
    assert ("keys", "keys-statement-mismatch") in named, closed.summary()
    assert ("keys", "keys-layout") not in named and ("keys", "foreign-keys") in named, closed.summary()  # review25: honest keys, another statement


def test_expect_base_run_pins_the_grid_the_base_was_committed_on(tmp_path):
    """(Found by a review.) The agreed base run is trained at circuit.scale=11; a cheater halves
    every weight of its final model (the same integers read at 2**-12) and fine-tunes on that at
    the default scale 12: the same commitment and the same architecture, other weights. The base
    run as --expect-base refuses it by its commitment grid; the commitment alone cannot."""
    import shutil

    from safetensors.torch import load_file, save_file

    cache = tmp_path / "cache"
    _train(tmp_path / "base", cache, "prover=groth16", "mode=disabled", "data.part=base", "circuit.scale=11")
    halved = tmp_path / "halved"
    shutil.copytree(tmp_path / "base", halved)
    state = load_file(tmp_path / "base" / "model_final.safetensors")
    save_file({k: (v / 2).contiguous() for k, v in state.items()}, str(halved / "model_final.safetensors"))
    lora = tmp_path / "lora"
    _train(lora, cache, "prover=groth16", "mode=disabled", "model=lora_tiny", f"model.base_run={halved}", "data.part=adapt")
    assert RunBundle.open(lora).manifest()["circuit"]["scale"] == 12
    assert verify_run(lora, cache_dir=cache, expect_base=base_commitment(tmp_path / "base")).ok  # the commitment is the same
    unaccepted = verify_run(lora, cache_dir=cache, expect_base=tmp_path / "base")  # the base run is verified too: its scale is not the default
    assert [(f.check, f.reason) for f in unaccepted.findings] == [("base-model", "base-not-verified")], unaccepted.summary()
    by_run = verify_run(lora, cache_dir=cache, expect_base=tmp_path / "base", accept_settings={"scale": "11"})
    assert [(f.check, f.reason) for f in by_run.findings] == [("base-model", "unexpected-base")], by_run.summary()
    assert "scale=12" in by_run.findings[0].message and "scale=11" in by_run.findings[0].message
