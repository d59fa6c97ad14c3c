"""The monitor on a real worker's observations: a stationary synthetic stream raises no
drift over its windows, and the drifted scenes (a muted palette, smaller objects, blur and
noise) are reported, with the live accuracy falling.

Sixty cameras, so that a window of 300 observed frames holds many scenes: a camera's frames
come in runs of one scene, and a few cameras' windows would hold a few scenes each (see
docs/MLOPS.md, "Drift monitoring"). Every batch is observed (FRAMEWIRE_OBSERVE_EVERY=1).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time

import redis

from foundation.lease import Lease
from foundation.rediskeys import monitor_lease_key
from framewire.worker_process import WorkerProcess
from mlops.monitor.scheduled import run_scheduled
from producers.synthetic import SyntheticSource
from schemas.frame import now_ms
from tests.cli_helpers import invoke
from tests.kafka_helpers import read_records
from tests.test_monitor_report import Page
from tests.worker_harness import publish, wait_for_results

STATIONARY, DRIFTED = 3000, 1200


def frames(count: int, seed: int, drift: bool, tag: str) -> list:
    source = SyntheticSource(streams=60, fps=15, seed=seed, realtime=False, drift=drift)
    return [dataclasses.replace(f, stream_id=f"{tag}-{f.stream_id}")
            for f in itertools.islice(source, count)]  # fmt: skip


def observed(records: list) -> int:
    events = (json.loads(r.value) for r in records)
    return sum(len(e["frames"]) for e in events if e["type"] == "observation")


def test_stationary_stream_no_drift_then_the_shift_is_reported(topics, tmp_path) -> None:
    settings = topics
    tag = tmp_path.name[-8:]
    worker = WorkerProcess(settings, tmp_path, FRAMEWIRE_OBSERVE_EVERY="1")
    try:
        calm = frames(STATIONARY, 41, False, tag)  # ~6 s of rendering, while the worker starts
        worker.wait_ready()
        publish(settings, calm)
        wait_for_results(settings, [f.frame_id for f in calm])
        shifted_at = now_ms()
        shifted = frames(DRIFTED, 42, True, tag)
        publish(settings, shifted)
        wait_for_results(settings, [f.frame_id for f in shifted])
        # Observation events follow the results they describe: wait until all are there.
        records = read_records(settings, settings.monitoring_topic, timeout_s=30,
                               until=lambda rs: observed(rs) >= STATIONARY + DRIFTED)  # fmt: skip
        assert observed(records) == STATIONARY + DRIFTED
    finally:
        assert worker.stop() == 0, worker.tail()
    sample = next(json.loads(r.value) for r in records
                  if json.loads(r.value)["type"] == "observation")["frames"][0]  # fmt: skip
    assert {"stream_id", "frame_id", "predicted", "confidence", "label", "brightness",
            "contrast", "sharpness"} <= set(sample)  # fmt: skip
    assert len(sample["embedding"]) == 72  # the demo model's final Linear input

    out = invoke(settings, "monitor", "--since", "10m", "--json")
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    windows = [line["window"] for line in lines if "window" in line]
    accuracy = [line["accuracy"] for line in lines if "accuracy" in line]
    [version] = [row for row in accuracy if row["stream_id"] is None]  # then one per camera
    assert len(accuracy) == 1 + 60 and version["labelled"] == STATIONARY + DRIFTED
    drifts = [line["event"] for line in lines
              if "event" in line and line["event"]["type"] == "drift"]  # fmt: skip
    assert len(windows) == (STATIONARY + DRIFTED) // 300
    calm_windows = windows[: STATIONARY // 300]
    assert all(w["accuracy"] >= 0.95 for w in calm_windows), calm_windows
    assert drifts, [w["findings"] for w in windows]
    assert min(d["ts"] for d in drifts) >= shifted_at  # no false alarm before the shift
    assert {d["metric"] for d in drifts} & {"confidence_ks", "embedding_shift"}
    assert min(w["accuracy"] for w in windows[STATIONARY // 300 :]) < 0.9
    # The events went to the monitoring topic too, for the dashboard and the retrainer.
    time.sleep(1)
    emitted = read_records(settings, settings.monitoring_topic, timeout_s=10,
                           until=lambda rs: any(json.loads(r.value)["type"] == "drift"
                                                for r in rs))  # fmt: skip
    assert any(json.loads(r.value).get("worker") == "monitor" for r in emitted)

    # The HTML report of the same range reads without emitting: the drift is an episode,
    # accuracy is there per stream; a range with no window is a one-line error.
    page_path = tmp_path / "report.html"
    name = windows[0]["model"].rpartition(":")[0]
    out = invoke(settings, "monitor", "report", "--model", name, "--since", "10m",
                 "--out", str(page_path))  # fmt: skip
    assert out.exit_code == 0 and "drift episode(s)" in out.output, out.output
    page = Page(page_path.read_text())
    assert any(d["metric"] in page.sections["Drift episodes"] for d in drifts)
    assert page.sections["Live accuracy"].count(f"{tag}-") == 60  # each camera once
    out = invoke(settings, "monitor", "report", "--model", "nobody", "--since", "0s",
                 "--out", str(tmp_path / "none.html"))  # fmt: skip
    assert out.exit_code == 1 and out.output.count("\n") == 1 and "nobody" in out.output
    assert not (tmp_path / "none.html").exists()

    # The scheduled monitor (beat -> `framewire retrain worker`): one run at a time, each
    # going on from where the last stopped; feedback joins its frame's result for accuracy.
    held = Lease(redis.Redis.from_url(settings.redis_url), monitor_lease_key(), 10)
    assert held.acquire()
    assert run_scheduled(settings, publish=False).state == "skipped"
    held.release()
    first = run_scheduled(settings, publish=False)
    assert first.state == "done" and first.windows == len(windows) and first.drifts >= 1
    camera = calm[0].stream_id
    relabelled = [f for f in calm if f.stream_id == camera][:3]
    for frame in relabelled:
        out = invoke(settings, "feedback", "send", frame.frame_id, "none-of-the-classes")
        assert out.exit_code == 0, out.output
    second = run_scheduled(settings, publish=False)
    assert second.windows == 0 and second.drifts == 0  # nothing read twice

    def stream_accuracy(run) -> tuple[int, int]:
        row = next(a for a in run.accuracy if a.stream_id == camera)
        return row.correct, row.labelled

    correct, labelled = stream_accuracy(first)
    assert stream_accuracy(second) == (correct - 3, labelled)  # replaced, not added
