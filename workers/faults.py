"""Test-only fault injection, so the fault tests can make a real worker fail on purpose.

FRAMEWIRE_TEST_FAULTS="kind:frame_id[,kind:frame_id...]" (read once; unset in production,
where every function here is a no-op):

- `crash-decode`: the decode stage aborts the process (as a native decoder crash would);
- `hang-inference`: the device thread hangs on a batch holding the frame;
- `refuse-result`: the frame's result is made larger than the producer accepts, so the
  real producer refuses it for good (MSG_SIZE_TOO_LARGE).
"""

from __future__ import annotations

import os
import resource
import threading
from functools import cache

ENV = "FRAMEWIRE_TEST_FAULTS"


@cache
def _faults() -> frozenset[tuple[str, str]]:
    entries = (e.strip() for e in os.environ.get(ENV, "").split(","))
    return frozenset(tuple(e.split(":", 1)) for e in entries if ":" in e)  # type: ignore[misc]


def _armed(kind: str, frame_id: str) -> bool:
    return (kind, frame_id) in _faults()


def crash_in_decode(frame_id: str) -> None:
    if _armed("crash-decode", frame_id):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file to clean up
        os.abort()


def hang_in_inference(frame_ids: list[str]) -> None:
    if any(_armed("hang-inference", f) for f in frame_ids):
        threading.Event().wait()


def result_value(frame_id: str, value: bytes, refused_size: int) -> bytes:
    if _armed("refuse-result", frame_id):
        return value + b" " * max(0, refused_size - len(value))  # still valid JSON
    return value
