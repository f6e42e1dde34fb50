"""The zk-groth16 statement of ``adamw`` steps (spec, exact step, circuit, statement)."""
