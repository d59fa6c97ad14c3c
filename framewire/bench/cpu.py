"""CPU time of a process (Linux /proc), to report what each frame costs in CPU."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of pid so far; None where /proc is not there."""
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds so far of pid's threads, summed by kernel thread name with a trailing
    pool index dropped (fw-decode_0 and fw-decode_1 count as fw-decode). The worker names
    its threads (workers/threads.py); library threads keep what they have, often "python".

    A thread starts with its creator's name, so the threads a library starts from a named
    thread (OpenMP's from the device thread, CUDA's) carry it too. Of the threads sharing a
    name, the first (the lowest id: ids rise as threads start) is the named one; the rest
    count under the name with a "+" (fw-device+), apart from it.
    """
    by_name: Counter[str] = Counter()
    try:
        tasks = sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda task: int(task.name))
    except OSError:
        return {}
    seen: set[str] = set()
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended
        cpu = _stat_cpu_s(task / "stat")
        if cpu is None:
            continue
        key = re.sub(r"_\d+$", "", name) + ("+" if name in seen else "")
        seen.add(name)
        by_name[key] += cpu
    return dict(by_name)


def _stat_cpu_s(stat: Path) -> float | None:
    try:
        fields = stat.read_text().rsplit(") ", 1)[1].split()
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

    def __init__(self, pid: int, others: dict[str, int] | None = None) -> None:
        self.pid = pid
        self.others = others or {}  # name -> pid: processes beside the worker (the broker)
        self._others0: dict[str, float | None] = {}
        self.others_s: dict[str, float] = {}
        self._proc0: float | None = None
        self._machine0: tuple[float, float] | None = None
        self._threads0: dict[str, float] = {}
        self.process_s: float | None = None
        self.threads_s: dict[str, float] = {}  # by thread name, as thread_cpu_s
        self.machine_busy: float | None = None  # fraction of all cores busy

    def start(self) -> None:
        self._proc0, self._machine0 = process_cpu_s(self.pid), machine_cpu_s()
        self._threads0 = thread_cpu_s(self.pid)
        self._others0 = {name: process_cpu_s(pid) for name, pid in self.others.items()}

    def stop(self) -> None:
        proc, machine = process_cpu_s(self.pid), machine_cpu_s()
        self.threads_s = {name: cpu - self._threads0.get(name, 0.0)
                          for name, cpu in thread_cpu_s(self.pid).items()}  # fmt: skip
        for name, pid in self.others.items():
            now, before = process_cpu_s(pid), self._others0.get(name)
            if now is not None and before is not None:
                self.others_s[name] = now - before
        if proc is not None and self._proc0 is not None:
            self.process_s = proc - self._proc0
        if machine is not None and self._machine0 is not None:
            total = machine[1] - self._machine0[1]
            self.machine_busy = (machine[0] - self._machine0[0]) / total if total > 0 else None
