"""Full SGD steps of a ReLU MLP (mean squared error or softmax cross-entropy)."""
