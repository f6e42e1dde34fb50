"""Prover programs: separate executables speaking pot-zk's prover protocol (docs/protocol.md)."""
