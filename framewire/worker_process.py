"""A `framewire worker` in a child process: for the demo, the benchmark and the tests."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from foundation.settings import Settings

_names = itertools.count()

READY_LINE = "partitions assigned"  # logged by the pipeline when it joins its group


class WorkerExited(RuntimeError):
    pass


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This environment without FRAMEWIRE_*, then the explicit settings, then extra."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWIRE_")}
    return {**base, **settings.to_env(), "FRAMEWIRE_LOG_FORMAT": "json", **extra}


class WorkerProcess:
    """One worker subprocess with its log (JSON lines) in log_dir."""

    def __init__(
        self, settings: Settings, log_dir: Path, *args: str, device: str = "cpu", **env: str
    ) -> None:
        self.name = f"w{os.getpid()}-{next(_names)}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"worker-{self.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framewire", "worker", "--device", device,
             "--name", f"{self.name}@%h", *args],
            env=child_env(settings, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log_text():
            if self.process.poll() is not None:
                raise WorkerExited(f"worker exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise WorkerExited(f"worker never logged {text!r}:\n{self.tail()}")
            time.sleep(0.1)

    def wait_ready(self, timeout_s: float = 120) -> None:
        self.wait_for_log(READY_LINE, timeout_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Signal the worker and wait for it (SIGKILL after timeout_s); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
