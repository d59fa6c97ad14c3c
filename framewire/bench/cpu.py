"""CPU time of a process (Linux /proc), to report what each frame costs in CPU."""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of pid so far; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def machine_cpu_s() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values) - idle) / ticks, sum(values) / ticks


class CpuMeter:
    """CPU used by one process and by the whole machine between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._proc0: float | None = None
        self._machine0: tuple[float, float] | None = None
        self.process_s: float | None = None
        self.machine_busy: float | None = None  # fraction of all cores busy

    def start(self) -> None:
        self._proc0, self._machine0 = process_cpu_s(self.pid), machine_cpu_s()

    def stop(self) -> None:
        proc, machine = process_cpu_s(self.pid), machine_cpu_s()
        if proc is not None and self._proc0 is not None:
            self.process_s = proc - self._proc0
        if machine is not None and self._machine0 is not None:
            total = machine[1] - self._machine0[1]
            self.machine_busy = (machine[0] - self._machine0[0]) / total if total > 0 else None
