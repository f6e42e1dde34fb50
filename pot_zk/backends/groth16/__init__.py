"""Exact Groth16 proofs of training steps (proof type ``zk-groth16``); see docs/groth16.md."""
