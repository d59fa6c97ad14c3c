"""Live accuracy per model version and per stream, from the ground truth that arrives:

    observed frames with an `fw-label` header   the label rode with the frame
    feedback/1 labels (feedback topic)          joined to the frame's result in Redis,
                                                which says the version, stream and prediction

Each (version, stream) keeps the last `window` labelled frames, one entry per frame: a
frame labelled again (a person correcting a label) replaces its earlier entry rather than
counting twice. A version's accuracy is over all of its streams' entries.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

DEFAULT_WINDOW = 200  # labelled frames per (version, stream)


@dataclass(frozen=True)
class Accuracy:
    model: str  # NAME:VERSION
    stream_id: str | None  # None: every stream of the version
    correct: int
    labelled: int

    @property
    def value(self) -> float:
        return self.correct / self.labelled

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "stream_id": self.stream_id,
                "accuracy": round(self.value, 4), "labelled": self.labelled}  # fmt: skip


class LiveAccuracy:
    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self._entries: dict[tuple[str, str], OrderedDict[str, bool]] = {}

    def add(self, model: str, stream_id: str, frame_id: str, predicted: str, label: str) -> None:
        entries = self._entries.setdefault((model, stream_id), OrderedDict())
        entries.pop(frame_id, None)
        entries[frame_id] = predicted == label
        if len(entries) > self.window:
            entries.popitem(last=False)

    def of_stream(self, model: str, stream_id: str) -> Accuracy:
        entries = self._entries.get((model, stream_id), {})
        return Accuracy(model, stream_id, sum(entries.values()), len(entries))

    def of_version(self, model: str) -> Accuracy:
        rows = [self.of_stream(m, s) for m, s in self._entries if m == model]
        return Accuracy(model, None, sum(r.correct for r in rows), sum(r.labelled for r in rows))

    def per_stream(self) -> list[Accuracy]:
        return [self.of_stream(model, stream) for model, stream in sorted(self._entries)]

    def per_version(self) -> list[Accuracy]:
        return [self.of_version(model) for model in sorted({m for m, _ in self._entries})]

    def state(self) -> list[list[Any]]:
        """JSON-able, for the scheduled monitor to carry from one run to the next."""
        return [[model, stream, list(entries.items())]
                for (model, stream), entries in self._entries.items()]  # fmt: skip

    def restore(self, state: list[list[Any]]) -> None:
        self._entries = {(model, stream): OrderedDict((f, bool(ok)) for f, ok in entries)
                         for model, stream, entries in state}  # fmt: skip
