"""Continuous deployment: a real worker serving models:/shapes@production follows
promote, rollback and the registry poll while frames flow, and refuses a corrupt version
without interrupting serving. One worker for the whole scenario (a start costs ~8 s)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from foundation.servers import free_port
from framewire.worker_process import WorkerProcess
from mlops.registry.store import Registry
from tests.cli_helpers import invoke
from tests.kafka_helpers import read_records
from tests.test_registry import NAME, good_model, local_mlflow_store, register, shapes_dataset
from tests.worker_harness import (
    PacedPublisher,
    assert_switched_once,
    count_results,
    publish,
    synthetic_frames,
    wait_for_results,
    wait_until,
)
from workers.app import create_app

__all__ = ["local_mlflow_store"]  # the fixture, used here too (autouse)


def served_model(app) -> str | None:
    stats = app.control.inspect(timeout=2).stats() or {}
    ours = [s["framewire"] for s in stats.values() if (s.get("framewire") or {}).get("worker")]
    return ours[0]["model"] if ours else None


def test_worker_follows_promote_rollback_and_poll_and_refuses_a_corrupt_version(
    topics, tmp_path
):
    settings = topics
    dataset = shapes_dataset(settings, tmp_path, frames=120)
    assert register(settings, good_model(tmp_path / "v1"), dataset) == "1"
    assert register(settings, good_model(tmp_path / "v2"), dataset) == "2"
    assert invoke(settings, "registry", "promote", NAME, "1").exit_code == 0

    port = free_port()
    worker = WorkerProcess(settings, tmp_path / "logs", "--model", f"models:/{NAME}@production",
                           "--metrics-port", str(port), FRAMEWIRE_MODEL_POLL_S="2")  # fmt: skip
    try:
        worker.wait_ready()
        app = create_app(settings, stream=False)
        assert served_model(app) == f"{NAME}:1"

        # promote mid-stream: one result per frame, the version changes once, never back.
        frames = synthetic_frames(300, streams=2, seed=11)
        publisher = PacedPublisher(settings, frames, fps=40)
        publisher.start()
        wait_until(lambda: count_results(settings, [f.frame_id for f in frames]) >= 60, 60,
                   "the first results")  # fmt: skip
        promoted = invoke(settings, "registry", "promote", NAME, "2")
        assert promoted.exit_code == 0, promoted.output
        assert "1 follow shapes" in promoted.output, promoted.output  # the broadcast arrived
        publisher.join(60)
        results = wait_for_results(settings, [f.frame_id for f in frames])
        assert_switched_once(settings, results, "1", "2")
        assert served_model(app) == f"{NAME}:2"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert 'framewire_model_info{' in metrics and 'version="2"' in metrics

        # rollback: the broadcast brings the worker back to 1.
        back = invoke(settings, "registry", "rollback", NAME)
        assert back.exit_code == 0 and "2 -> 1" in back.output, back.output
        wait_until(lambda: served_model(app) == f"{NAME}:1", 30, "the rollback")
        more = synthetic_frames(20, streams=1, seed=12)
        publish(settings, more)
        again = wait_for_results(settings, [f.frame_id for f in more])
        assert {r["model"]["version"] for r in again.values()} == {"1"}

        # A move nobody broadcasts is found by the poll (FRAMEWIRE_MODEL_POLL_S=2).
        Registry(settings).move_alias(NAME, "production", "2", "promote")
        wait_until(lambda: served_model(app) == f"{NAME}:2", 30, "the poll to find version 2")

        # A corrupt artifact is refused; serving goes on with version 2.
        assert register(settings, good_model(tmp_path / "v3"), dataset) == "3"
        source = Registry(settings).version(NAME, "3").source
        weights = Path(urllib.parse.urlparse(source).path) / "weights.pt"
        weights.write_bytes(b"garbage, not a state dict")
        frames = synthetic_frames(120, streams=2, seed=13)
        publisher = PacedPublisher(settings, frames, fps=40)
        publisher.start()
        forced = invoke(settings, "registry", "promote", NAME, "3", "--force")
        assert forced.exit_code == 0 and "cannot be evaluated" in forced.output, forced.output
        def refused(records) -> bool:
            return any(json.loads(r.value).get("stage") == "model" for r in records)

        events = read_records(settings, settings.monitoring_topic, timeout_s=30, until=refused)
        refusals = [json.loads(r.value) for r in events]
        refusals = [e for e in refusals if e["type"] == "error" and e.get("stage") == "model"]
        assert refusals and "weights.pt" in refusals[0]["reason"], refusals
        assert refusals[0]["version"] == "3" and refusals[0]["serving"] == f"{NAME}:2"
        publisher.join(60)
        results = wait_for_results(settings, [f.frame_id for f in frames])
        assert {r["model"]["version"] for r in results.values()} == {"2"}
        assert served_model(app) == f"{NAME}:2"
        assert "model refused" in worker.log_text()
        # The poll leaves the refused version alone (no error every interval).
        wait_until(lambda: worker.log_text().count('"model refused') == 1, 1, "one refusal")
    finally:
        assert worker.stop() == 0, worker.tail()
