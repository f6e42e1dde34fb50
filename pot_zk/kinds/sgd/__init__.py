"""Full SGD steps of a ReLU MLP with MSE loss."""
