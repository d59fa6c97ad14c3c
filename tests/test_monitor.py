"""The drift monitor: its statistics, and windows of observations against the built-in
demo model's reference (models/demo/reference.json).

Observations here are drawn from the reference itself (no drift by construction) or from
it with a known shift, so a false alarm or a miss is the monitor's, not the data's. The
real worker's observations of real streams are checked in tests/test_monitor_stream.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops.monitor import stats
from mlops.monitor.checks import FROZEN_RUN, Thresholds
from mlops.monitor.monitor import Monitor
from models.loader import DEFAULT_MODEL_DIR, load_model

REFERENCE = json.loads((DEFAULT_MODEL_DIR / "reference.json").read_text())
CARD = load_model(DEFAULT_MODEL_DIR).card
MODEL = f"{CARD.name}:{CARD.version}"


def draw(rng: np.random.Generator, n: int, brightness_shift: float = 0.0,
         embedding_shift: float = 0.0, streams: int = 4) -> list[dict]:  # fmt: skip
    """n observed frames sampled from the reference's histograms and embedding moments."""

    def sample(histogram: dict, shift: float = 0.0) -> np.ndarray:
        counts = np.asarray(histogram["counts"], float)
        edges = np.asarray(histogram["edges"], float)
        bins = rng.choice(len(counts), n, p=counts / counts.sum())
        return rng.uniform(edges[bins], edges[bins + 1]) + shift

    labels = REFERENCE["predictions"]["labels"]
    counts = np.asarray(REFERENCE["predictions"]["counts"], float)
    predicted = rng.choice(labels, n, p=counts / counts.sum())
    embedding = REFERENCE["embedding"]
    mean, std = np.asarray(embedding["mean"]), np.asarray(embedding["std"])
    vectors = rng.normal(mean + embedding_shift * std, std, (n, len(mean)))
    columns = {name: sample(REFERENCE["inputs"][name]) for name in ("contrast", "sharpness")}
    columns["brightness"] = sample(REFERENCE["inputs"]["brightness"], brightness_shift)
    confidence = sample(REFERENCE["confidence"])
    return [{"stream_id": f"cam-{i % streams}", "frame_id": f"f{i}", "predicted": predicted[i],
             "confidence": float(confidence[i]), "label": predicted[i],
             **{k: float(v[i]) for k, v in columns.items()},
             "embedding": vectors[i].round(4).tolist()} for i in range(n)]  # fmt: skip


def run(frames: list[dict], limits: Thresholds, per_event: int = 30) -> tuple[Monitor, list]:
    events: list = []
    monitor = Monitor(lambda model: REFERENCE if model == MODEL else None,
                      lambda model: limits, events.append)  # fmt: skip
    for start in range(0, len(frames), per_event):
        monitor.add({"type": "observation", "model": MODEL, "ts": 1_000_000 + start,
                     "frames": frames[start : start + per_event]})  # fmt: skip
    return monitor, events


# Statistics ----------------------------------------------------------------------------


def test_statistics_are_zero_on_the_same_data_and_grow_with_a_shift() -> None:
    counts = [30, 20, 50]
    assert stats.psi(counts, counts) == pytest.approx(0, abs=1e-12)
    assert stats.jensen_shannon(counts, counts) == pytest.approx(0, abs=1e-6)
    assert stats.psi(counts, [50, 20, 30]) > 0.2 > 0.01 > stats.psi(counts, [32, 19, 49])
    assert stats.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1, abs=1e-3)
    rng = np.random.default_rng(0)
    edges = np.linspace(0, 10, 21)
    ref, _ = np.histogram(rng.normal(5, 1, 5000), edges)
    same, critical = stats.ks_binned(ref, edges, rng.normal(5, 1, 400))
    moved, _ = stats.ks_binned(ref, edges, rng.normal(5.6, 1, 400))
    assert same < critical < moved
    mean, std = np.zeros(64), np.ones(64)
    null = [stats.embedding_shift(mean, std, rng.normal(0, 1, (300, 64))) for _ in range(20)]
    assert 0.7 < float(np.mean(null)) < 1.3  # its expectation with no drift is 1
    assert stats.embedding_shift(mean, std, rng.normal(0.3, 1, (300, 64))) > 20


# Windows ---------------------------------------------------------------------------------


def test_no_false_alarm_over_many_windows_of_the_reference() -> None:
    limits = Thresholds(window=300)
    monitor, events = run(draw(np.random.default_rng(1), 300 * 40), limits)
    assert len(monitor.reports) == 40
    assert [e for e in events if e.type == "drift"] == []  # zero false alarms
    assert all(r.accuracy == 1.0 for r in monitor.reports)  # labels agree by construction


def test_a_clear_shift_is_reported_within_confirm_windows() -> None:
    limits = Thresholds(window=300, confirm=2)
    rng = np.random.default_rng(2)
    frames = draw(rng, 300 * 3) + draw(rng, 300 * 3, brightness_shift=-40, embedding_shift=0.5)
    _, events = run(frames, limits)
    drifts = [e for e in events if e.type == "drift"]
    metrics = {e.fields["metric"] for e in drifts}
    assert {"brightness_ks", "embedding_shift"} <= metrics
    first = min(e.ts for e in drifts)
    shifted_at = 1_000_000 + 300 * 3
    assert first < shifted_at + 300 * limits.confirm  # within `confirm` windows of the shift
    event = next(e for e in drifts if e.fields["metric"] == "brightness_ks")
    assert event.fields["value"] > event.fields["threshold"] and event.fields["window"] == 300
    assert event.fields["model"] == MODEL and event.fields["windows"] == 2


def test_a_slow_gradual_shift_is_reported_too() -> None:
    limits = Thresholds(window=300)
    rng = np.random.default_rng(3)
    frames = [f for step in range(12) for f in draw(rng, 300, brightness_shift=-4.0 * step)]
    monitor, events = run(frames, limits)
    drifted = [e for e in events if e.type == "drift" and e.fields["metric"] == "brightness_ks"]
    assert drifted, [r.to_dict()["findings"]["brightness_ks"] for r in monitor.reports]
    assert drifted[0].ts > 1_000_000 + 300 * 3  # not while the shift was still small


def test_data_quality_blank_frozen_and_silent_streams() -> None:
    rng = np.random.default_rng(4)
    frames = draw(rng, 600)  # two windows: exposure problems must last `confirm` windows
    for f in frames:
        if f["stream_id"] == "cam-0":
            f.update(contrast=0.5, brightness=3.0)  # a capped lens: blank and underexposed
        if f["stream_id"] == "cam-1":
            f.update(brightness=80.0, contrast=20.0, sharpness=15.0, predicted="ring",
                     confidence=0.5)  # the same picture again and again  # fmt: skip
    monitor, events = run(frames, Thresholds(window=300))
    quality = {(e.fields["stream_id"], e.fields["check"]) for e in events
               if e.type == "data_quality"}  # fmt: skip
    assert {("cam-0", "blank"), ("cam-0", "underexposed"), ("cam-1", "frozen")} <= quality
    assert not {s for s, _ in quality} & {"cam-2", "cam-3"}
    frozen = next(e for e in events if e.fields.get("check") == "frozen")
    assert frozen.fields["value"] == FROZEN_RUN
    # cam-2 goes quiet while cam-3 goes on: reported once, after silent_after_s.
    later = [dict(f, stream_id="cam-3") for f in draw(rng, 10)]
    monitor.add({"type": "observation", "model": MODEL, "ts": 1_000_000 + 62_000,
                 "frames": later})  # fmt: skip
    monitor.add({"type": "observation", "model": MODEL, "ts": 1_000_000 + 63_000,
                 "frames": later})  # fmt: skip
    silent = [e for e in events if e.fields.get("check") == "silent"]
    assert {e.fields["stream_id"] for e in silent} == {"cam-0", "cam-1", "cam-2"}


def test_unknown_versions_and_thresholds_are_said() -> None:
    monitor, _ = run([], Thresholds())
    monitor.add({"type": "observation", "model": "other:3", "ts": 1, "frames": []})
    assert monitor.models_without_reference == ["other:3"]
    with pytest.raises(ValueError, match="unknown monitor threshold"):
        Thresholds.from_dict({"windw": 10})


def test_a_lasting_drift_asks_for_one_retrain() -> None:
    asked: list[tuple[str, str]] = []
    limits = Thresholds(window=300, retrain_after=3)
    monitor = Monitor(lambda model: REFERENCE, lambda model: limits, lambda event: None,
                      request_retrain=lambda name, reason: asked.append((name, reason)))
    rng = np.random.default_rng(5)
    frames = draw(rng, 300) + draw(rng, 300 * 5, brightness_shift=-40)
    for start in range(0, len(frames), 30):
        monitor.add({"type": "observation", "model": MODEL, "ts": start,
                     "frames": frames[start : start + 30]})  # fmt: skip
    assert len({reason for _, reason in asked}) == len(asked) >= 1  # once per statistic
    assert {name for name, _ in asked} == {CARD.name}
    assert any("brightness_ks over 3 windows" in reason for _, reason in asked)


def test_live_accuracy_per_version_and_stream_from_labels_and_feedback() -> None:
    frames = draw(np.random.default_rng(6), 60, streams=2)
    for f in frames[:10]:  # cam-0's first five and cam-1's first five are wrong
        f["label"] = "not-" + f["predicted"]
    monitor, _ = run(frames, Thresholds(window=300))
    rows = {(r.model, r.stream_id): r for r in monitor.accuracy.per_stream()}
    assert {key: (r.correct, r.labelled) for key, r in rows.items()} == {
        (MODEL, "cam-0"): (25, 30), (MODEL, "cam-1"): (25, 30)}  # fmt: skip
    # Feedback on a frame of another version; then a correction of an observed frame's label
    # replaces its entry rather than counting the frame twice.
    monitor.add_label("shapes:2", "cam-9", "g1", "ring", "ring", source="feedback")
    wrong = frames[0]
    monitor.add_label(MODEL, "cam-0", wrong["frame_id"], wrong["predicted"], wrong["predicted"],
                      source="feedback")  # fmt: skip
    assert monitor.accuracy.of_stream(MODEL, "cam-0").correct == 26
    assert monitor.accuracy.of_stream(MODEL, "cam-0").labelled == 30
    versions = {r.model: round(r.value, 4) for r in monitor.accuracy.per_version()}
    assert versions == {MODEL: round(51 / 60, 4), "shapes:2": 1.0}


def test_a_run_resumed_from_its_state_finds_what_one_run_finds() -> None:
    """The scheduled monitor saves Monitor.state() as JSON between runs: open windows,
    streaks, frozen runs and accuracy come back, so a drift that spans two runs is
    confirmed once, in the same window as by one run over everything."""
    limits = Thresholds(window=300, confirm=2)
    rng = np.random.default_rng(7)
    frames = draw(rng, 450) + draw(rng, 300 * 3, brightness_shift=-40, embedding_shift=0.5)
    cut = 450 + 330  # mid-window, mid-streak and mid-run of the frozen camera
    for f in frames[cut - 4 : cut + 4]:  # the fifth identical observation comes after the cut
        f.update(stream_id="cam-frozen", brightness=80.0, contrast=20.0, sharpness=15.0,
                 predicted="ring", confidence=0.5)  # fmt: skip
    whole, expected = run(frames, limits)
    first, events = run(frames[:cut], limits)
    resumed = Monitor(lambda model: REFERENCE, lambda model: limits, events.append)
    resumed.restore(json.loads(json.dumps(first.state())))
    for start in range(cut, len(frames), 30):
        resumed.add({"type": "observation", "model": MODEL, "ts": 1_000_000 + start,
                     "frames": frames[start : start + 30]})  # fmt: skip

    def described(found: list) -> list:
        return [(e.type, e.ts, sorted(e.fields.items())) for e in found]

    assert any(e.type == "drift" for e in expected)
    assert any(e.fields.get("check") == "frozen" for e in expected)
    assert described(events) == described(expected)
    assert resumed.accuracy.per_stream() == whole.accuracy.per_stream()
