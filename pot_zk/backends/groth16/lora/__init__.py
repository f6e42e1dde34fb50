"""The zk-groth16 statement of ``lora`` steps (spec, exact step, circuit, statement)."""
