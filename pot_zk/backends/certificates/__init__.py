"""Non-ZK certificates checked from the revealed witness: freivalds and reexec."""
