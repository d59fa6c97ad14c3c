"""Operating a worker: results CLI, Celery inspect stats (Flower), reload_model, /metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest

from foundation.control import broadcast_reload
from foundation.servers import free_port
from framewire.worker_process import WorkerProcess, child_env
from models.architectures import ARCHITECTURES
from models.loader import save_model
from models.spec import InputSpec, ModelCard
from producers.synthetic import CLASSES
from tests.worker_harness import publish, synthetic_frames, wait_for_results, wait_until
from workers.app import create_app


@pytest.fixture
def running_worker(topics, tmp_path):
    port = free_port()
    worker = WorkerProcess(topics, tmp_path, "--metrics-port", str(port))
    worker.wait_ready()
    yield topics, worker, port
    assert worker.stop() == 0


def framewire(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framewire", *args],
        env=child_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def other_model(directory) -> str:
    """A second model with another name, to see a reload take effect."""
    card = ModelCard("other-shapes", "7", "small-cnn", "classification", list(CLASSES),
                     InputSpec(64, 64))  # fmt: skip
    save_model(ARCHITECTURES["small-cnn"](len(CLASSES)), card, directory)
    return str(directory)


def test_operating_a_running_worker(running_worker, tmp_path):
    settings, worker, metrics_port = running_worker
    frames = synthetic_frames(30, streams=1)
    publish(settings, frames)
    wait_for_results(settings, [f.frame_id for f in frames])

    # results get / tail
    got = framewire(settings, "results", "get", frames[0].frame_id)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["frame_id"] == frames[0].frame_id
    missing = framewire(settings, "results", "get", "no-such-frame")
    assert missing.returncode == 1 and "no result for frame no-such-frame" in missing.stderr
    tail = framewire(settings, "results", "tail", "--stream-id", frames[0].stream_id,
                     "--from-beginning", "--limit", "5")  # fmt: skip
    # A stream's results are written in seq order.
    assert [json.loads(line)["seq"] for line in tail.stdout.splitlines()] == [0, 1, 2, 3, 4]

    # Celery inspect stats: what Flower's worker page shows
    app = create_app(settings, stream=False)
    stats = app.control.inspect(timeout=5).stats() or {}
    ours = [s["framewire"] for s in stats.values() if (s.get("framewire") or {}).get("worker")]
    assert ours and ours[0]["results_ok"] >= 30
    assert ours[0]["model"] == "demo-shapes:1" and ours[0]["assigned"]

    # Prometheus
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    assert 'framewire_frames_total{status="ok"} 30.0' in text
    assert "framewire_batch_size_count" in text and "framewire_model_info{" in text
    # torch's and Celery's objects are out of the collector's walk (foundation/collector.py)
    frozen = re.search(r"^framewire_gc_frozen_objects (\S+)$", text, re.MULTILINE)
    assert frozen and float(frozen.group(1)) > 50_000
    assert 'framewire_gc_pause_seconds_count{generation="0"}' in text

    # reload_model: a broadcast that swaps the model between batches
    replies = broadcast_reload(app, other_model(tmp_path / "other"))
    assert any("ok" in reply for r in replies for reply in r.values())
    worker.wait_for_log("model loaded", timeout_s=60)
    wait_until(lambda: worker.log_text().count('"model loaded"') >= 2, 60, "the second model")
    more = synthetic_frames(10, streams=1, seed=7)
    publish(settings, more)
    results = wait_for_results(settings, [f.frame_id for f in more])
    assert {r["model"]["name"] for r in results.values()} == {"other-shapes"}
