"""`framewire bench --profile FILE`: py-spy samples the worker while it drains the
saturation phase, so "where does a saturated worker's CPU go" has one reproducible command.

The format follows FILE's extension: .svg a flame graph, .json speedscope, anything else
py-spy's raw collapsed stacks (one line per stack and count, easy to aggregate). Threads
are kept apart (--threads); the worker names them fw-poll, fw-decode_N, fw-device and
fw-writer (workers/threads.py). py-spy comes with the `bench` extra.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from framewire.bench.options import BenchOptionError

SAMPLES_PER_S = 200
# py-spy interrupted before it has attached writes nothing (seen at 20 ms, not at 100 ms):
# a shorter window (a tiny --frames run) is stretched to this.
MIN_SECONDS = 1.0
_FORMATS = {".svg": "flamegraph", ".json": "speedscope"}


def py_spy_binary() -> str:
    """The py-spy executable beside this Python or on PATH; a one-line error without it."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchOptionError(
            "--profile needs py-spy: pip install 'framewire[bench]' (or pip install py-spy)"
        )
    return found


def record_command(binary: str, pid: int, out: Path) -> list[str]:
    fmt = _FORMATS.get(out.suffix.lower(), "raw")
    return [binary, "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_S),
            "--format", fmt, "--threads", "--nonblocking", "--output", str(out)]  # fmt: skip


class WorkerProfiler:
    """py-spy attached to one process between start() and stop()."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._binary = py_spy_binary()  # fail before any phase runs, not after
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self.outcome = "the profiler was never started (no saturated result)"

    def start(self, pid: int) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            record_command(self._binary, pid, self.out),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def stop(self) -> str:
        """Stop sampling (py-spy writes the file when interrupted); returns a line saying
        where the profile is or why there is none. Never raises: a failed profile must not
        hide the run's own figures or error."""
        process, self._process = self._process, None
        if process is None:
            return self.outcome
        time.sleep(max(0.0, self._started + MIN_SECONDS - time.monotonic()))
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if self.out.exists():
            self.outcome = f"worker profile (py-spy, saturated) in {self.out}"
        else:
            detail = stderr.decode(errors="replace").strip().splitlines()
            self.outcome = f"py-spy wrote no profile: {detail[-1] if detail else 'no output'}"
        return self.outcome
