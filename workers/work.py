"""WorkItem: one Kafka record on its way through the worker, with its timings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas import Frame


@dataclass(eq=False)
class WorkItem:
    record: Any  # kafka.consumer.fetcher.ConsumerRecord: topic, partition, offset, ...
    generation: int  # of its partition's assignment; stale items are not committed
    polled_at: float  # time.time() when the poll thread took it
    deliveries: int = 0  # counted at poll (workers/deliveries.py); 0: could not be counted
    frame: Frame | None = None
    image: np.ndarray | None = None  # resized for the model, in its channel order
    input_spec: Any = None  # the model InputSpec the image was prepared for
    decode_started: float = 0.0
    decoded_at: float = 0.0
    error: str | None = None
    error_stage: str | None = None  # schema, decode, inference, poison or sink
    finished: threading.Event | None = None  # set when written, for a frame run alone

    @property
    def partition_key(self) -> tuple[str, int]:
        return self.record.topic, self.record.partition

    @property
    def redelivered(self) -> bool:
        """In flight when an earlier owner stopped: it is run alone (workers/device.py)."""
        return self.deliveries > 1

    @property
    def ok(self) -> bool:
        return self.error is None

    def log_ids(self) -> dict[str, str]:
        """stream_id and frame_id for log lines, from the headers when the frame did not
        parse (clipped: a hostile header must not flood the log)."""
        if self.frame is not None:
            return {"stream_id": self.frame.stream_id, "frame_id": self.frame.frame_id}
        headers = dict(self.record.headers or [])
        return {
            name.removeprefix("fw-").replace("-", "_"): headers[name][:80].decode(errors="replace")
            for name in ("fw-stream-id", "fw-frame-id")
            if isinstance(headers.get(name), bytes)
        }

    def fail(self, stage: str, reason: str) -> None:
        self.error_stage, self.error = stage, reason
        self.image = None
