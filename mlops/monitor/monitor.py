"""The drift monitor: observation events in, windows checked, drift and data-quality
events out.

    monitoring topic (observation events, per model version)
      -> one window per `window` frames of a version -> checks.check_window against that
         version's reference.json -> a drift event for a statistic over its threshold in
         `confirm` consecutive windows; data_quality events for streams mostly blank or
         badly exposed in `confirm` consecutive windows, frozen (FROZEN_RUN identical
         observations in a row), or silent (observed before, nothing for silent_after_s)
      -> a drift lasting `retrain_after` windows asks for a retrain (mlops/retrain/)
    labelled observations and feedback labels -> live accuracy per version and stream
      (mlops/monitor/accuracy.py)

Events go back to the monitoring topic (worker "monitor"); every window's report is kept
(`reports`) for `framewire monitor` to print and for the HTML report. `state()` and
`restore()` carry the open windows, streaks and accuracy from one scheduled run to the next
(mlops/monitor/scheduled.py), so a run every few minutes finds what a follower finds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops.monitor import metrics
from mlops.monitor.accuracy import LiveAccuracy
from mlops.monitor.checks import FROZEN_RUN, Thresholds, WindowReport, check_window, signature
from schemas import Event

MONITOR = "monitor"  # the `worker` of the events the monitor emits

ReferenceFor = Callable[[str], dict[str, Any] | None]  # "NAME:VERSION" -> reference.json


@dataclass
class _Version:
    frames: list[dict[str, Any]] = field(default_factory=list)
    streak: dict[str, int] = field(default_factory=dict)  # metric -> windows over in a row
    quality_streak: dict[tuple[str, str], int] = field(default_factory=dict)  # (stream, check)


class Monitor:
    def __init__(
        self, reference_for: ReferenceFor, thresholds_for: Callable[[str], Thresholds],
        emit: Callable[[Event], None], silent_after_s: float = 60.0,
        request_retrain: Callable[[str, str], None] | None = None,
    ) -> None:  # fmt: skip
        self.reference_for = reference_for
        self.thresholds_for = thresholds_for
        self.emit = emit
        self.request_retrain = request_retrain  # (registered name, reason)
        self.silent_after_s = silent_after_s
        self.reports: list[WindowReport] = []
        self.drifts: list[Event] = []
        self._versions: dict[str, _Version] = {}
        self._last_seen: dict[str, float] = {}  # stream -> event time (s)
        self._silent: set[str] = set()
        self._runs: dict[str, tuple[tuple, int]] = {}  # stream -> (signature, run length)
        self._no_reference: set[str] = set()
        self.accuracy = LiveAccuracy()

    def add(self, event: dict[str, Any]) -> None:
        """One event from the monitoring topic (others than observations are ignored)."""
        if event.get("type") != "observation":
            return
        model, now_s = event["model"], event["ts"] / 1000
        reference = self.reference_for(model)
        if reference is None:
            self._no_reference.add(model)
            return
        state = self._versions.setdefault(model, _Version())
        for frame in event["frames"]:
            self._watch_stream(frame, model, now_s)
            state.frames.append(frame)
            if frame.get("label") is not None:
                self.add_label(model, frame["stream_id"], frame["frame_id"], frame["predicted"],
                               frame["label"], source="fw-label")  # fmt: skip
        limits = self.thresholds_for(model)
        while len(state.frames) >= limits.window:
            window, state.frames = state.frames[: limits.window], state.frames[limits.window :]
            self._check(model, window, reference, limits, state, event["ts"])
        self._check_silence(now_s, event["ts"])

    def add_label(self, model: str, stream_id: str, frame_id: str, predicted: str, label: str,
                  source: str) -> None:  # fmt: skip
        """Ground truth for one served frame: its fw-label, or a feedback label joined to
        its result."""
        self.accuracy.add(model, stream_id, frame_id, predicted, label)
        metrics.LABELS.labels(source).inc()
        stream = self.accuracy.of_stream(model, stream_id)
        metrics.STREAM_ACCURACY.labels(model, stream_id).set(stream.value)
        metrics.LIVE_ACCURACY.labels(model).set(self.accuracy.of_version(model).value)

    @property
    def models_without_reference(self) -> list[str]:
        return sorted(self._no_reference)

    def state(self) -> dict[str, Any]:
        """What a later run needs to go on where this one stopped (JSON-able)."""
        return {
            "versions": {model: {"frames": v.frames, "streak": v.streak, "quality_streak":
                                 [[*key, n] for key, n in v.quality_streak.items()]}
                         for model, v in self._versions.items()},
            "last_seen": self._last_seen, "silent": sorted(self._silent),
            "runs": {stream: [list(key), run] for stream, (key, run) in self._runs.items()},
            "accuracy": self.accuracy.state(),
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self._versions = {model: _Version(v["frames"], v["streak"],
                                          {(s, c): n for s, c, n in v["quality_streak"]})
                          for model, v in state["versions"].items()}  # fmt: skip
        self._last_seen = dict(state["last_seen"])
        self._silent = set(state["silent"])
        self._runs = {stream: (tuple(key), run) for stream, (key, run) in state["runs"].items()}
        self.accuracy.restore(state["accuracy"])

    def _check(self, model: str, window: list[dict[str, Any]], reference: dict[str, Any],
               limits: Thresholds, state: _Version, ts: int) -> None:  # fmt: skip
        report = check_window(model, window, reference, limits)
        report.ts = ts
        self.reports.append(report)
        metrics.WINDOWS.labels(model).inc()
        for finding in report.findings:
            streak = state.streak.get(finding.metric, 0) + 1 if finding.over else 0
            state.streak[finding.metric] = streak
            metrics.DRIFT_VALUE.labels(model, finding.metric).set(finding.value)
            metrics.DRIFT_THRESHOLD.labels(model, finding.metric).set(finding.threshold)
            metrics.DRIFTING.labels(model, finding.metric).set(streak >= limits.confirm)
            if streak == limits.confirm:  # once per episode, when it is confirmed
                event = Event("drift", MONITOR, {
                    "metric": finding.metric, "value": round(finding.value, 4),
                    "threshold": round(finding.threshold, 4), "model": model,
                    "window": limits.window, "windows": streak,
                }, ts=ts)  # fmt: skip
                self.drifts.append(event)
                self.emit(event)
            if limits.retrain_after and streak == limits.retrain_after and self.request_retrain:
                self.request_retrain(model.rpartition(":")[0],
                                     f"drift: {finding.metric} over {streak} windows")  # fmt: skip
        flagged = {(stream, check): share for stream, check, share in report.quality}
        for key in set(state.quality_streak) | set(flagged):
            streak = state.quality_streak.get(key, 0) + 1 if key in flagged else 0
            state.quality_streak[key] = streak
            if streak == limits.confirm:  # a dark scene passes; a capped lens stays
                self._quality(key[0], key[1], round(flagged[key], 3), model, ts)

    def _watch_stream(self, frame: dict[str, Any], model: str, now_s: float) -> None:
        stream = frame["stream_id"]
        self._last_seen[stream] = now_s
        self._silent.discard(stream)
        key = signature(frame)
        previous, run = self._runs.get(stream, (None, 0))
        run = run + 1 if key == previous else 1
        self._runs[stream] = (key, run)
        if run == FROZEN_RUN:
            self._quality(stream, "frozen", float(run), model, int(now_s * 1000))

    def _check_silence(self, now_s: float, ts: int) -> None:
        for stream, seen in self._last_seen.items():
            if stream not in self._silent and now_s - seen > self.silent_after_s:
                self._silent.add(stream)
                self._quality(stream, "silent", round(now_s - seen, 1), None, ts)

    def _quality(self, stream: str, check: str, value: float, model: str | None,
                 ts: int) -> None:  # fmt: skip
        metrics.DATA_QUALITY.labels(check).inc()
        fields = {"check": check, "value": value, "stream_id": stream}
        if model is not None:
            fields["model"] = model
        self.emit(Event("data_quality", MONITOR, fields, ts=ts))
