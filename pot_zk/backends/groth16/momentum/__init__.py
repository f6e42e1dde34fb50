"""The zk-groth16 statement of ``momentum`` steps (spec, exact step, circuit, statement)."""
