"""The MLOps loop around the workers: datasets, training, the registry, deployment.

A component layer beside `workers/` and `producers/`: it builds on `schemas/`,
`foundation/` and `models/` (the model format the workers serve) and never imports the
workers or producers (docs/ARCHITECTURE.md, "Layers"). MLflow lives in the optional
`mlops` extra; nothing here is imported by a worker that serves a model directory.
"""
