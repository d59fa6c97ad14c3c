"""The foundation layer: settings, logging, and the Kafka and Redis helpers.

It imports nothing of framewire's but `schemas/` (the contracts below it). `workers/`,
`producers/` and `mlops/` build on it; the CLI, demo and bench (`framewire/`) on top of
those. docs/ARCHITECTURE.md, "Layers".
"""
