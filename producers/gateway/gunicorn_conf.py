"""gunicorn settings for the gateway (`framewire gateway` passes this file with -c).

Threaded workers (gthread): a request spends nearly all its time waiting on Redis for its
results, which releases the GIL, so one process serves many requests at once with threads;
processes (`--workers`) add CPU for parsing and publishing. Bind address, worker and
thread counts and the timeout come on the command line.
"""

from __future__ import annotations

import os
from typing import Any

worker_class = "gthread"
# Clients of an inference API often keep connections open between requests.
keepalive = 5
# Access logs are the metrics' job (/metrics); errors still go to the log.
accesslog = None


def child_exit(server: Any, worker: Any) -> None:
    """Multi-process metrics: drop a dead worker's live gauges (in-flight requests)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
