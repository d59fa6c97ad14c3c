"""Environment a worker process needs before torch is imported: OpenMP reads its wait
policy once, when torch loads it. `framewire worker` sets what is missing first thing.

OMP_WAIT_POLICY=PASSIVE: between two parallel regions the model's OpenMP threads sleep
instead of spinning. A CPU worker's model shares the cores with its decode, poll and writer
threads (and, on a small machine, the broker and Redis); spinning threads take the cores
those need. Measured on 2 cores (`framewire bench --gateway --model resnet18 --input-size
112 --concurrency 1,32 --frames 600 --device cpu`, the model on two threads): at
concurrency 32, 95.0 requests/s with libgomp's default spinning, 107.1 and 108.3 passive
(the naive endpoint 65.1-68.6 either way); explicitly ACTIVE, 54.8. A model alone on idle
cores is slower passive (resnet18 at batch 32: 4.2 against 4.9 ms per frame), so this is
the worker's default, not every framewire process's, and a value the user set is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def missing_worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What of WORKER_ENV this environment lacks (a variable already set is the user's)."""
    return {name: value for name, value in WORKER_ENV.items() if name not in environ}
