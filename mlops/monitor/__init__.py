"""Drift and data-quality monitoring: `framewire monitor` (docs/MLOPS.md).

stats (PSI, Jensen-Shannon, KS, embedding shift) -> checks (one window against the
reference, data quality) -> monitor (windows per model version, confirmation, events)
-> run (the monitoring topic in, events out); references (reference.json of a version).
"""
