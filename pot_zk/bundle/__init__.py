"""The run bundle's format, read side: file names, the records, the model files, the dataset
leaves and the held-out scores. Both the trainer (:mod:`pot_zk.runs`, which writes bundles)
and the auditor (:mod:`pot_zk.verify`, which must not load the trainer's code) read bundles
through this package."""
