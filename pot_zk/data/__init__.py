"""Training data: the registered data sets (config group ``data``), cut into fixed batches."""
