"""Non-ZK certificates checked from the revealed witness: freivalds and reexec."""

WITNESS = "witness.safetensors"
"""The revealed witness beside a certificate (``certificate.json``) in its proof directory. Here,
not in :mod:`~pot_zk.backends.certificates.revealed`, so that naming it imports no torch (``pot-zk export``)."""
