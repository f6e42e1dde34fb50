"""Run bundles and the run lifecycle: manifest, session, the training loop, data, LoRA base runs."""
