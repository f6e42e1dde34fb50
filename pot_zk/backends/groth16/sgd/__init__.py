"""The zk-groth16 statement of ``sgd`` steps (spec, exact step, circuit, statement)."""
