"""Step kinds (sgd, lora): capture from torch, validation, encoding, circuit specs, commitments."""
