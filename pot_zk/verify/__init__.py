"""Verification: one step's proof, and a whole run from its bundle."""
