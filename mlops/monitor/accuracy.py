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
    """Counts kept as frames come and go, so that every label (one per labelled observed
    frame: thousands a window) costs the same whatever the number of streams."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self._entries: dict[tuple[str, str], OrderedDict[str, bool]] = {}
        self._counts: dict[tuple[str, str | None], list[int]] = {}  # key -> [correct, labelled]

    def add(self, model: str, stream_id: str, frame_id: str, predicted: str, label: str) -> None:
        self._put(model, stream_id, frame_id, predicted == label)

    def of_stream(self, model: str, stream_id: str) -> Accuracy:
        return Accuracy(model, stream_id, *self._counts.get((model, stream_id), (0, 0)))

    def of_version(self, model: str) -> Accuracy:
        return Accuracy(model, None, *self._counts.get((model, None), (0, 0)))

    def per_stream(self) -> list[Accuracy]:
        return [self.of_stream(model, stream) for model, stream in sorted(self._entries)]

    def per_version(self) -> list[Accuracy]:
        return [self.of_version(model) for model in sorted({m for m, _ in self._entries})]

    def state(self) -> list[list[Any]]:
        """JSON-able, for the scheduled monitor to carry from one run to the next."""
        return [[model, stream, list(entries.items())]
                for (model, stream), entries in self._entries.items()]  # fmt: skip

    def restore(self, state: list[list[Any]]) -> None:
        self._entries, self._counts = {}, {}
        for model, stream, entries in state:
            for frame_id, correct in entries:
                self._put(model, stream, frame_id, bool(correct))

    def _put(self, model: str, stream_id: str, frame_id: str, correct: bool) -> None:
        entries = self._entries.setdefault((model, stream_id), OrderedDict())
        if frame_id in entries:  # labelled again: the new label replaces the old
            self._count(model, stream_id, entries.pop(frame_id), -1)
        entries[frame_id] = correct
        self._count(model, stream_id, correct, +1)
        if len(entries) > self.window:
            self._count(model, stream_id, entries.popitem(last=False)[1], -1)

    def _count(self, model: str, stream_id: str, correct: bool, step: int) -> None:
        for key in ((model, stream_id), (model, None)):
            counts = self._counts.setdefault(key, [0, 0])
            counts[0] += step * correct
            counts[1] += step
