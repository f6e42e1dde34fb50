"""The zk-groth16 statements by step kind: one line per statement (each in
``backends/groth16/<kind>/statement.py``), imported when first used; the backend and its prover
program read which kinds it proves from here."""

from __future__ import annotations

from pot_zk.core.registry import Registry

STATEMENTS: Registry[type] = Registry(
    "groth16 statement",
    "model.kind",
    {
        "sgd": "pot_zk.backends.groth16.sgd.statement:Groth16SgdStatement",
        "lora": "pot_zk.backends.groth16.lora.statement:Groth16LoraStatement",
    },
)
