"""OS-level names for the worker's threads.

Python (before 3.14) names its threads only for itself; the kernel sees every thread as
"python". Naming them there too makes `top -H`, `ps -L` and the benchmark's CPU-per-stage
figures say which stage a thread is: fw-poll, fw-decode_0, fw-device, fw-writer.
"""

from __future__ import annotations

import ctypes
import sys
import threading

_PR_SET_NAME = 15  # prctl(2)
_MAX_NAME = 15  # the kernel keeps 15 bytes of a thread's name


def name_os_thread(name: str | None = None) -> None:
    """Give the calling thread its Python name (shortened) in the kernel; Linux only."""
    if not sys.platform.startswith("linux"):
        return
    text = (name or threading.current_thread().name).replace("framewire-", "fw-")
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(_PR_SET_NAME, text.encode()[:_MAX_NAME], 0, 0, 0)
    except (OSError, AttributeError):
        pass  # a libc without prctl: the name is a convenience, never a requirement
