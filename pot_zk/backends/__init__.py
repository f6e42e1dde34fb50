"""Proof backends: ezkl (zk-halo2) and the non-ZK certificates (freivalds, reexec)."""
