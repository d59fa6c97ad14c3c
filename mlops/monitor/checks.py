"""One window of observed frames against the served version's reference: which statistics
moved, and which streams have data-quality problems.

A window is the last `window` frames observed for one model version (observation events,
workers/observe.py). Each check gives a Finding: the statistic, its value, its threshold,
and whether it is over. A drift is reported when the same statistic is over in `confirm`
consecutive windows: one window over is a fluke about once in 1/alpha for a KS test, and
live frames come in runs (a camera's scene lasts seconds), which a single window
over-weights.

The default thresholds were measured on the demo (docs/MLOPS.md, "Drift monitoring"): on
a stationary synthetic stream (24,000 frames, 4 cameras, 2,230 observed, 7 windows of
300) the largest values were KS 0.176 (sharpness), embedding shift 9.9, JS 0.14, PSI
0.12; on the drifted scenes (a muted palette, smaller objects, blur, noise) one window
gave KS 0.50 (confidence), 0.33 (sharpness), 0.24 (contrast), embedding shift 35, while
accuracy fell from 0.99 to 0.83.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops.monitor import stats

INPUTS = ("brightness", "contrast", "sharpness")
# Data quality of a single frame, on 8-bit grey levels of the prepared image.
BLANK_CONTRAST = 3.0  # a uniform picture: lens cap, black or grey frame
OVEREXPOSED = 240.0
UNDEREXPOSED = 15.0
FROZEN_RUN = 5  # this many identical observations in a row on one stream


@dataclass(frozen=True)
class Thresholds:
    """Per model (FRAMEWIRE_MONITOR_CONFIG may override any of them for a name)."""

    window: int = 300  # observed frames per window (the minimum a test is run on)
    psi: float = 0.25  # predicted-class distribution
    js: float = 0.2
    # KS (confidence and input measures): over the critical value at ks_alpha and over
    # ks_distance. The critical value assumes independent frames; a camera's frames come
    # in runs of one scene, so a stationary stream's windows reach further (measured
    # below), and the floor keeps them from alarming.
    ks_alpha: float = 0.001
    ks_distance: float = 0.2
    embedding: float = 15.0  # embedding_shift: about 1 for independent frames; see below
    confirm: int = 2  # consecutive windows over before a drift event
    retrain_after: int = 0  # windows a drift must last before a retrain is asked; 0: never
    bad_share: float = 0.5  # share of a stream's window frames blank or badly exposed
    stream_frames: int = 20  # a stream's exposure is judged on at least this many frames

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Thresholds:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown monitor threshold(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")  # fmt: skip
        return cls(**values)


@dataclass(frozen=True)
class Finding:
    metric: str
    value: float
    threshold: float

    @property
    def over(self) -> bool:
        return self.value > self.threshold


@dataclass
class WindowReport:
    model: str  # NAME:VERSION
    frames: int
    findings: list[Finding]
    accuracy: float | None  # over the frames with a ground-truth label
    labelled: int
    quality: list[tuple[str, str, float]] = field(default_factory=list)  # stream, check, share
    accuracy_by_stream: dict[str, tuple[int, int]] = field(default_factory=dict)  # right, of
    ts: int | None = None  # ms: when the window closed (its last observation event's time)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "frames": self.frames, "accuracy": self.accuracy,
                "labelled": self.labelled, "ts": self.ts,
                "accuracy_by_stream": {s: list(v) for s, v in self.accuracy_by_stream.items()},
                "findings": {f.metric: {"value": round(f.value, 4),
                                        "threshold": round(f.threshold, 4), "over": f.over}
                             for f in self.findings},
                "quality": [{"stream_id": s, "check": c, "share": round(v, 3)}
                            for s, c, v in self.quality]}  # fmt: skip


def check_window(
    model: str, frames: list[dict[str, Any]], reference: dict[str, Any], limits: Thresholds
) -> WindowReport:
    """Every drift statistic and data-quality check of one window."""
    labels = reference["predictions"]["labels"]
    predicted = Counter(f["predicted"] for f in frames)
    live_counts = [predicted.get(label, 0) for label in labels]
    ref_counts = reference["predictions"]["counts"]
    findings = [
        Finding("predictions_psi", stats.psi(ref_counts, live_counts), limits.psi),
        Finding("predictions_js", stats.jensen_shannon(ref_counts, live_counts), limits.js),
        _ks("confidence", reference["confidence"], [f["confidence"] for f in frames], limits),
    ]
    for name in INPUTS:
        values = [f[name] for f in frames if name in f]
        if values:
            findings.append(_ks(name, reference["inputs"][name], values, limits))
    vectors = [f["embedding"] for f in frames if "embedding" in f]
    embedding = reference.get("embedding", {})
    if vectors and len(vectors[0]) == embedding.get("dim"):
        value = stats.embedding_shift(embedding["mean"], embedding["std"], np.array(vectors))
        findings.append(Finding("embedding_shift", value, limits.embedding))
    labelled = [f for f in frames if f.get("label") is not None]
    accuracy = (sum(f["label"] == f["predicted"] for f in labelled) / len(labelled)
                if labelled else None)  # fmt: skip
    by_stream: dict[str, tuple[int, int]] = {}
    for f in labelled:
        right, seen = by_stream.get(f["stream_id"], (0, 0))
        by_stream[f["stream_id"]] = (right + (f["label"] == f["predicted"]), seen + 1)
    return WindowReport(model, len(frames), findings, accuracy, len(labelled),
                        _quality(frames, limits), by_stream)  # fmt: skip


def _ks(name: str, histogram: dict[str, Any], values: list[float], limits: Thresholds) -> Finding:
    distance, critical = stats.ks_binned(histogram["counts"], histogram["edges"], values,
                                         limits.ks_alpha)  # fmt: skip
    return Finding(f"{name}_ks", distance, max(critical, limits.ks_distance))


def _quality(frames: list[dict[str, Any]], limits: Thresholds) -> list[tuple[str, str, float]]:
    """Streams whose frames in this window are mostly blank, over- or under-exposed."""
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for frame in frames:
        by_stream.setdefault(frame["stream_id"], []).append(frame)
    problems = []
    for stream, own in sorted(by_stream.items()):
        if len(own) < limits.stream_frames:  # a few frames of a dark scene are no problem
            continue
        for check, bad in (
            ("blank", lambda f: f.get("contrast", 99.0) < BLANK_CONTRAST),
            ("overexposed", lambda f: f.get("brightness", 0.0) > OVEREXPOSED),
            ("underexposed", lambda f: f.get("brightness", 255.0) < UNDEREXPOSED),
        ):
            share = sum(map(bad, own)) / len(own)
            if share > limits.bad_share:
                problems.append((stream, check, share))
    return problems


def signature(frame: dict[str, Any]) -> tuple:
    """What two observations of a frozen camera share: the same measures (to 3 decimals),
    prediction and confidence. Two different live frames almost never do."""
    return (*(frame.get(name) for name in INPUTS), frame.get("predicted"),
            frame.get("confidence"))  # fmt: skip
