"""`framewire flower`: a real Flower shows a real worker and its `framewire` stats.

The `flower` fixture is a running Flower (basic auth from FLOWER_BASIC_AUTH, as operators
set it) on this test's Celery broker. The worker's `framewire` section comes from
/api/workers; a backfill task from /api/task/info/<id> (Flower's view, from the task
events) and its progress from /api/task/result/<id> (the result backend).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from foundation.servers import free_port
from foundation.settings import Settings
from framewire.worker_process import WorkerProcess, child_env
from tests.cli_helpers import invoke
from tests.worker_harness import publish, synthetic_frames, wait_for_results

USER, PASSWORD = "fw-test", "not-a-real-secret"


@dataclass
class RunningFlower:
    url: str
    process: subprocess.Popen
    log_path: Path

    def get(self, path: str, authenticated: bool = True) -> tuple[int, Any]:
        """(status, JSON body or text) of a GET; HTTP errors are returned, not raised."""
        request = urllib.request.Request(self.url + path)
        if authenticated:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode(errors="replace")
        try:
            return status, json.loads(body)
        except json.JSONDecodeError:
            return status, body

    def wait_answering(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"flower exited ({self.process.returncode}): {self.log()}")
            try:
                if self.get("/healthcheck", authenticated=False) == (200, "OK"):
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"flower did not answer within {timeout_s}s: {self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def flower(topics: Settings, tmp_path: Path) -> Iterator[RunningFlower]:
    """`framewire flower` on a free loopback port, stopped (SIGTERM) after the test."""
    port = free_port()
    log_path = tmp_path / "flower.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "framewire", "flower", "--port", str(port)],
            env=child_env(topics, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    running = RunningFlower(f"http://127.0.0.1:{port}", process, log_path)
    try:
        running.wait_answering()
        yield running
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def worker(topics: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(topics, tmp_path / "worker")
    process.wait_ready()
    yield process
    assert process.stop() == 0


def framewire_stats(
    flower: RunningFlower, worker: WorkerProcess, until: Callable[[dict], bool],
    timeout_s: float = 30,
) -> dict:  # fmt: skip
    """The worker's `framewire` stats section as Flower's API shows it, once `until` holds.

    Asked again until then: a refresh joins an inspection already in flight, which may
    have started before the worker did what the test waits for.
    """
    deadline = time.monotonic() + timeout_s
    section: dict | None = None
    while True:
        status, workers = flower.get("/api/workers?refresh=1")
        assert status == 200, workers
        for name, info in workers.items():
            if name.startswith(f"{worker.name}@"):
                section = (info.get("stats") or {}).get("framewire")
        if section and until(section):
            return section
        if time.monotonic() > deadline:
            raise AssertionError(f"{worker.name} in flower: {section} ({sorted(workers)})")
        time.sleep(0.5)


def test_flower_shows_the_worker_its_framewire_stats_and_a_backfill_task(
    topics: Settings, worker: WorkerProcess, flower: RunningFlower, tmp_path: Path
) -> None:
    frames = synthetic_frames(10, streams=1)
    publish(topics, frames)
    wait_for_results(topics, [f.frame_id for f in frames])

    stats = framewire_stats(flower, worker, until=lambda s: s["results_ok"] >= 10)
    assert stats["topic"] == topics.frames_topic and stats["group"] == topics.group_id
    assert sorted(stats["assigned"]) == [f"{topics.frames_topic}/{p}" for p in (0, 1)]
    assert stats["model"] == "demo-shapes:1" and stats["device"] == "cpu"
    assert stats["batches"] >= 1 and not stats["stalled"]

    # The password came from FLOWER_BASIC_AUTH: without it the API refuses, the probe does not.
    assert flower.get("/api/workers", authenticated=False)[0] == 401
    assert flower.get("/healthcheck", authenticated=False) == (200, "OK")

    # A backfill task and its progress (done, total, frames/s), as Flower shows them.
    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(synthetic_frames(120, streams=1, seed=9)):
        (folder / f"{i:03d}.jpg").write_bytes(frame.data)
    out = invoke(topics, "backfill", "--source", str(folder), "--job", "bf-flower", "--wait")
    assert out.exit_code == 0, out.output
    task_id = "bf-flower-c0"
    deadline = time.monotonic() + 30
    while True:
        status, info = flower.get(f"/api/task/info/{task_id}")
        if status == 200 and info.get("state") == "SUCCESS":
            break
        assert time.monotonic() < deadline, (status, info)
        time.sleep(0.5)
    assert info["name"] == "framewire.backfill" and info["worker"].startswith(worker.name)
    status, result = flower.get(f"/api/task/result/{task_id}")
    assert status == 200 and result["state"] == "SUCCESS", result
    progress = result["result"]
    assert (progress["done"], progress["total"], progress["scored"]) == (120, 120, 120)
    assert progress["state"] == "done" and progress["frames_per_s"] > 0


def test_a_taken_port_is_a_one_line_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "framewire", "flower", "--port", port],
            env=child_env(settings), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Address already in use" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
