"""`framewire bench`: the pipeline measured against the model's own ceiling.

One concept per module: options, frames (the JPEG pool), model (which model), ceilings
(model only, decode only), naive (the one-frame-at-a-time baseline), sink (results read
from Redis), pipeline_load (saturation and offered loads), cpu, report, plot, and run
(the order of the phases).
"""

from framewire.bench.options import BenchOptionError, BenchOptions, parse_frame_size
from framewire.bench.report import REQUIRED_FIELDS, format_json, format_table
from framewire.bench.run import run_bench

__all__ = [
    "REQUIRED_FIELDS",
    "BenchOptionError",
    "BenchOptions",
    "format_json",
    "format_table",
    "parse_frame_size",
    "run_bench",
]
