"""The zk-halo2 backend: ezkl circuits, keys, proving and verification."""
