"""Running statistics over result/1 records: rate, latency percentiles, batch, accuracy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ResultStats:
    expected_labels: dict[str, str] = field(default_factory=dict)  # frame_id -> ground truth
    started: float = field(default_factory=time.monotonic)
    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    errors: int = 0
    labelled: int = 0
    correct: int = 0
    seen: set[str] = field(default_factory=set)

    def add(self, result: dict[str, Any]) -> bool:
        """Count a result once per frame id; False for a duplicate."""
        frame_id = result["frame_id"]
        if frame_id in self.seen:
            return False
        self.seen.add(frame_id)
        if result["status"] != "ok":
            self.errors += 1
            return True
        self.latencies_ms.append(result["latency_ms"]["total"])
        self.batch_sizes.append(result["batch_size"])
        truth = self.expected_labels.get(frame_id)
        if truth is not None and result["predictions"]:
            self.labelled += 1
            self.correct += result["predictions"][0]["label"] == truth
        return True

    @property
    def count(self) -> int:
        return len(self.seen)

    def percentile(self, q: float) -> float:
        return round(float(np.percentile(self.latencies_ms, q)), 1) if self.latencies_ms else 0.0

    def summary(self, elapsed_s: float | None = None) -> dict[str, Any]:
        elapsed = elapsed_s if elapsed_s is not None else time.monotonic() - self.started
        return {
            "results": self.count,
            "fps": round(self.count / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": self.percentile(50),
            "p99_ms": self.percentile(99),
            "mean_batch": round(float(np.mean(self.batch_sizes)), 2) if self.batch_sizes else 0.0,
            "accuracy": round(self.correct / self.labelled, 4) if self.labelled else None,
            "errors": self.errors,
        }
