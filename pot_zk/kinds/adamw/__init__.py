"""Adam and AdamW steps of a ReLU MLP: the moments and the step count are committed state."""
