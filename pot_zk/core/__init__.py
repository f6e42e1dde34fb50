"""Foundations every layer uses: atomic writes, the Merkle tree, the audit trail, the prover-program protocol and runner."""
