"""SGD steps with momentum (and weight decay) of a ReLU MLP: the velocity is committed state."""
