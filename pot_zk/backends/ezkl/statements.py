"""The ezkl statements by step kind: one line per statement (each in ``backends/ezkl/<kind>.py``),
imported when first used; the backend and its prover program read which kinds it proves from
here."""

from __future__ import annotations

from pot_zk.core.registry import Registry

STATEMENTS: Registry[type] = Registry(
    "ezkl statement",
    "model.kind",
    {
        "sgd": "pot_zk.backends.ezkl.sgd:SgdCircuitSpec",
        "lora": "pot_zk.backends.ezkl.lora:LoraCircuitSpec",
        "momentum": "pot_zk.backends.ezkl.momentum:MomentumCircuitSpec",
    },
)
