"""`framewire demo --drift`: the MLOps loop closing by itself, on one machine.

    calm cameras -> the scenes drift (SyntheticSource.drift: a muted palette, smaller
    objects, blur, noise) -> accuracy falls -> the monitor reports drift -> ground truth
    arrives as feedback (the synthetic labels, sent as a labeller would) -> the collector
    adds the labelled frames to the dataset -> a retrain (the Celery task, on a `framewire
    retrain worker`) fine-tunes production on the newest data -> the gate -> promotion ->
    the worker swaps the version in -> accuracy recovers

Everything it starts (stack, worker, retrain worker, monitor thread) it stops. The
timeline is printed as it happens; `summary["timeline"]` and `draw` give the plot.

The demo's dataset has 1,500 frames, so its validation split holds about 150: one image is
0.7 %. The gate's margins are set to 3 % (accuracy) and 10 % (a class's recall) for it;
the defaults (1 %, 5 %) are for validation sets of thousands.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from foundation.celery import celery_app
from foundation.kafka import create_topics, topic_reader
from foundation.settings import Settings
from framewire import demo_model
from framewire.demo_promotion import register_builtin, run_framewire
from framewire.services import ensure_services
from framewire.worker_process import WorkerProcess, child_env
from mlops.data.importers import import_folder
from mlops.data.store import DatasetStore
from mlops.feedback.collector import collect
from mlops.feedback.send import send_feedback
from mlops.monitor.checks import Thresholds
from mlops.monitor.run import run_monitor
from mlops.retrain.retrain import RetrainRequest
from mlops.tasks import request_retrain
from producers.publisher import Publisher
from producers.synthetic import SyntheticSource
from schemas import Event, Feedback
from schemas.frame import now_ms

Echo = Callable[[str], None]
MODEL = "framewire-drift"
DATASET = "framewire-drift-shapes"
BASE_FRAMES = 1500
WINDOW = 300  # observed frames per monitor window (every frame is observed here)
BUCKET_S = 5.0  # accuracy is drawn per bucket of this many seconds


@dataclass(frozen=True)
class DriftOptions:
    # Many cameras at a low rate: a window of WINDOW frames then holds many scenes (a
    # camera's frames come in runs of one scene; docs/MLOPS.md, "Drift monitoring").
    streams: int = 24
    fps: float = 4.0
    calm_s: float = 40.0  # cameras as trained, before the scenes drift
    labels: int = 2000  # drifted frames labelled (feedback) before the retrain
    after_s: float = 40.0  # the retrained version serving drifted scenes
    retrain_epochs: int = 10
    device: str = "auto"
    timeout_s: float = 540.0  # the whole run, past which it stops and says so


@dataclass
class _Results:
    """What the results topic says, per frame: when, right or wrong, which version."""

    started: float = field(default_factory=time.monotonic)
    labels: dict[str, tuple[str, bool]] = field(default_factory=dict)  # id -> (label, drifted)
    rows: list[tuple[float, bool, str, bool]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: dict[str, Any]) -> None:
        frame_id = result["frame_id"]
        with self.lock:
            if frame_id in self.seen or frame_id not in self.labels or not result["predictions"]:
                return
            self.seen.add(frame_id)
            label, drifted = self.labels[frame_id]
            correct = result["predictions"][0]["label"] == label
            self.rows.append((time.monotonic() - self.started, correct,
                              result["model"]["version"], drifted))  # fmt: skip

    def accuracy(self, drifted: bool, version: str | None = None,
                 since_s: float = 0.0) -> float | None:  # fmt: skip
        with self.lock:
            picked = [c for t, c, v, d in self.rows
                      if d == drifted and t >= since_s and (version is None or v == version)]
        return round(sum(picked) / len(picked), 4) if picked else None


def run_drift_demo(settings: Settings, options: DriftOptions, echo: Echo) -> dict[str, Any]:
    demo_dir = settings.state_dir / "demo-drift"
    steps: list[dict[str, Any]] = []
    clock, started_ms = time.monotonic(), now_ms()

    def step(name: str, **detail: Any) -> None:
        at = round(time.monotonic() - clock, 1)
        steps.append({"t": at, "step": name, **detail})
        echo(f"{at:6.1f}s  {name}" + "".join(f"  {k}={v}" for k, v in detail.items()))

    with ExitStack() as cleanup:
        settings = ensure_services(settings, demo_dir, cleanup, echo, label="demo")
        settings = settings.replace(promotion_max_accuracy_drop=0.03,
                                    promotion_max_recall_drop=0.1, observe_every=1,
                                    frame_copy_ttl_s=900, model_poll_s=2.0)  # fmt: skip
        create_topics(settings)
        first = _production(settings, demo_dir, step)
        settings = settings.replace(model=f"models:/{MODEL}@production")
        worker = WorkerProcess(settings, demo_dir / "logs", device=options.device)
        cleanup.callback(worker.stop)
        retrainer = _retrain_worker(settings, demo_dir / "logs")
        cleanup.callback(_stop, retrainer)
        worker.wait_ready()
        step("worker ready", model=f"{MODEL}:{first}")

        results = _Results(started=clock)
        stop = threading.Event()
        cleanup.callback(stop.set)
        drift = _DriftWatch(step)
        threads = [
            threading.Thread(target=_read_results, args=(settings, results, stop), daemon=True),
            threading.Thread(target=_monitor, args=(settings, stop, drift), daemon=True),
        ]  # fmt: skip
        source = SyntheticSource(streams=options.streams, fps=options.fps, seed=3)
        cameras = _Cameras(settings, source, results)
        threads.append(cameras)
        for thread in threads:
            thread.start()
        deadline = clock + options.timeout_s
        cameras_from = time.monotonic()

        _wait(lambda: time.monotonic() - cameras_from > options.calm_s, deadline, "calm")
        source.drift = True
        cameras.drifted = True
        drift.shifted_at = time.monotonic()
        step("scenes drift", accuracy_before=results.accuracy(False))
        _wait(drift.seen.is_set, deadline, "the monitor to report drift")
        drift_after_s = round(drift.detected_at - drift.shifted_at, 1)

        labelled = _label(settings, results, options.labels, deadline, step)
        # Every label given since this run began: the collector's saved position belongs to
        # an earlier run's topic when the demo started its own stack again.
        report = collect(DatasetStore.for_settings(settings), DATASET, settings,
                         since_ms=started_ms)  # fmt: skip
        step("feedback collected", labels=labelled, dataset=report.version.ref
             if report.version else None, joined_kafka=report.joined_kafka,
             joined_redis=report.joined_redis)  # fmt: skip
        outcome = _retrain(settings, options, deadline, step)
        version = outcome.get("version") if outcome.get("state") == "promoted" else None
        swapped_s = None
        if version is not None:
            _wait(lambda: any(v == version for _, _, v, _ in results.rows), deadline,
                  "the worker to serve the new version")  # fmt: skip
            swapped_s = time.monotonic() - clock
            step("worker serves the new version", version=version)
            _wait(lambda: time.monotonic() - clock > swapped_s + options.after_s,
                  deadline, "the retrained version to serve")  # fmt: skip
        cameras.stop()
        cameras.join(30)
        _wait(lambda: len(results.seen) >= cameras.sent, time.monotonic() + 30, "the last results",
              raise_on_timeout=False)  # fmt: skip
        stop.set()
        summary = {
            "accuracy_before": results.accuracy(False),
            "accuracy_after_shift": results.accuracy(True, version=first),
            "drift_detected_after_s": drift_after_s,
            "drift_alarms_before_shift": drift.before_shift,
            "retrained_version": version,
            "retrain": outcome,
            "accuracy_recovered": results.accuracy(True, version=version,
                                                   since_s=swapped_s or 0.0) if version else None,
            "frames_sent": cameras.sent,
            "frames_lost": cameras.sent - len(results.seen),
            "seconds": round(time.monotonic() - clock, 1),
            "timeline": steps,
            "accuracy_over_time": _buckets(results),
        }  # fmt: skip
    return summary


def _production(settings: Settings, workdir: Path, step: Callable[..., None]) -> str:
    """The dataset and the first production version: the built-in model, validated on it."""
    with tempfile.TemporaryDirectory(prefix="fw-drift-") as tmp:
        folder = demo_model.write_camera_frames(Path(tmp), BASE_FRAMES, seed=11)
        dataset = import_folder(DatasetStore.for_settings(settings), DATASET, folder).version
    version = register_builtin(settings, dataset.ref, MODEL)
    # --force: a second run finds the first run's retrained version in production, which
    # the built-in model rightly loses to on the drifted frames the dataset now holds; the
    # demo starts from the built-in model all the same (the registry records it as forced).
    run_framewire(settings, "registry", "promote", MODEL, version, "--force")
    step("production", model=f"{MODEL}:{version}", dataset=dataset.ref,
         items=len(dataset.items))  # fmt: skip
    return version


def _retrain_worker(settings: Settings, logs: Path) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / "retrain-worker.log", "wb")  # noqa: SIM115  (the child keeps it)
    return subprocess.Popen([sys.executable, "-m", "framewire", "retrain", "worker"],
                            env=child_env(settings), stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


class _Cameras(threading.Thread):
    """The synthetic cameras in real time; each frame's label and phase remembered."""

    def __init__(self, settings: Settings, source: SyntheticSource, results: _Results) -> None:
        super().__init__(name="demo-cameras", daemon=True)
        self.settings, self.source, self.results = settings, source, results
        self.drifted = False
        self.sent = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        with Publisher(self.settings) as publisher:
            for frame in self.source:
                if self._halt.is_set():
                    break
                with self.results.lock:
                    self.results.labels[frame.frame_id] = (frame.label or "", self.drifted)
                publisher.send(frame)
                self.sent += 1
            publisher.flush()


def _read_results(settings: Settings, results: _Results, stop: threading.Event) -> None:
    consumer = topic_reader(settings, [settings.results_topic], from_beginning=False)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    results.add(json.loads(record.value))
    finally:
        consumer.close()


class _DriftWatch:
    """The monitor's drift events: the first after the scenes drift is the detection; any
    before it is a false alarm, counted."""

    def __init__(self, step: Callable[..., None]) -> None:
        self.step = step
        self.shifted_at: float | None = None
        self.detected_at = 0.0
        self.before_shift = 0
        self.seen = threading.Event()

    def on_event(self, event: Event) -> None:
        if event.type != "drift":
            return
        if self.shifted_at is None:
            self.before_shift += 1
            self.step("drift alarm before the shift", metric=event.fields["metric"])
        elif not self.seen.is_set():
            self.detected_at = time.monotonic()
            self.seen.set()
            self.step("drift detected", metric=event.fields["metric"],
                      value=event.fields["value"], threshold=event.fields["threshold"])


def _monitor(settings: Settings, stop: threading.Event, drift: _DriftWatch) -> None:
    run_monitor(settings, int(time.time() * 1000), follow=True, on_event=drift.on_event,
                thresholds=lambda model: Thresholds(window=WINDOW), stop=stop.is_set)


def _label(settings: Settings, results: _Results, count: int, deadline: float,
           step: Callable[..., None]) -> int:  # fmt: skip
    """Send the true label of drifted frames that have a result, as a labeller would."""
    sent: set[str] = set()
    while len(sent) < count:
        with results.lock:
            fresh = [f for f in results.seen if f not in sent and results.labels[f][1]]
        batch = [Feedback(f, results.labels[f][0], "synthetic") for f in fresh[: count - len(sent)]]
        if batch:
            send_feedback(settings, batch)
            sent.update(f.frame_id for f in batch)
        if time.monotonic() > deadline:
            raise TimeoutError("the demo ran out of time waiting for labels")
        time.sleep(0.5)
    step("feedback sent", labels=len(sent))
    return len(sent)


def _retrain(settings: Settings, options: DriftOptions, deadline: float,
             step: Callable[..., None]) -> dict[str, Any]:  # fmt: skip
    request = RetrainRequest(MODEL, "drift: demo", epochs=options.retrain_epochs, device="cpu")
    task = request_retrain(settings, request)
    step("retrain requested", task=task)
    outcome = AsyncResult(task, app=celery_app(settings)).get(
        timeout=max(1.0, deadline - time.monotonic()))
    step("retrain " + outcome["state"], version=outcome.get("version"),
         detail=outcome.get("detail"))  # fmt: skip
    return outcome


def _wait(condition: Callable[[], bool], deadline: float, what: str,
          raise_on_timeout: bool = True) -> None:  # fmt: skip
    while not condition():
        if time.monotonic() > deadline:
            if raise_on_timeout:
                raise TimeoutError(f"the demo ran out of time waiting for {what}")
            return
        time.sleep(0.2)


def _buckets(results: _Results) -> list[dict[str, Any]]:
    """Accuracy per BUCKET_S seconds, with the version that served most of the bucket."""
    buckets: dict[int, list[tuple[bool, str, bool]]] = {}
    with results.lock:
        for t, correct, version, drifted in results.rows:
            buckets.setdefault(int(t // BUCKET_S), []).append((correct, version, drifted))
    out = []
    for index in sorted(buckets):
        rows = buckets[index]
        versions = [v for _, v, _ in rows]
        out.append({"t": index * BUCKET_S, "accuracy": round(sum(c for c, _, _ in rows) /
                    len(rows), 4), "frames": len(rows),
                    "version": max(set(versions), key=versions.count),
                    "drifted": any(d for _, _, d in rows)})  # fmt: skip
    return out


def draw(summary: dict[str, Any], path: Path) -> Path:
    """The timeline: accuracy per bucket, coloured by version, with the steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = summary["accuracy_over_time"]
    figure, axis = plt.subplots(figsize=(10, 4.5))
    for version in sorted({p["version"] for p in points}):
        mine = [p for p in points if p["version"] == version]
        axis.plot([p["t"] for p in mine], [p["accuracy"] for p in mine], "o-",
                  label=f"version {version}")  # fmt: skip
    marks = ("scenes drift", "drift detected", "feedback collected", "retrain promoted",
             "worker serves the new version")  # fmt: skip
    merged: list[list[Any]] = []  # steps within a second of each other share one line
    for mark in (s for s in summary["timeline"] if s["step"] in marks):
        if merged and mark["t"] - merged[-1][0] < 1.0:
            merged[-1][1] += " / " + mark["step"]
        else:
            merged.append([mark["t"], mark["step"]])
    for at, text in merged:
        axis.axvline(at, color="grey", linestyle=":", linewidth=1)
        axis.text(at, 0.03, " " + text, rotation=90, fontsize=8, va="bottom")
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("seconds")
    axis.set_ylabel(f"accuracy per {BUCKET_S:g} s")
    axis.set_title("framewire demo --drift: drift, feedback, retrain, recovery")
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
