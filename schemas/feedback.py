"""feedback/1: a label someone gave a frame, on the feedback topic (key = frame id).

Compact JSON, like result/1: readers ignore fields they do not know, so feedback/1 may
gain optional fields; removing or retyping one makes it feedback/2. Labels come from
people and other systems (an operator's UI, the gateway, a script), so every string is
bounded and the one-line ones may hold no control characters: they end up in dataset
manifests, log lines and terminal output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import (
    SchemaError,
    _check,
    _nonneg,
    _obj,
    _schema_tag,
    _take,
    clip,
)
from schemas.frame import KafkaRecord, now_ms
from schemas.result import _dumps, _loads

__all__ = [
    "FEEDBACK_SCHEMA",
    "MAX_FEEDBACK_BYTES",
    "MAX_LABEL_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_TEXT_ID_CHARS",
    "Feedback",
]

FEEDBACK_SCHEMA = "feedback/1"
# Frame ids are UUIDs in practice (36 characters); 200 matches the gateway's id limit.
MAX_TEXT_ID_CHARS = 200
MAX_LABEL_CHARS = 200
MAX_SOURCE_CHARS = 200
MAX_NOTE_CHARS = 2_000
# The largest encoded record a reader parses: every field at its limit, in 4-byte UTF-8,
# fits with room to spare; anything larger is refused before json.loads sees it.
MAX_FEEDBACK_BYTES = 16_384
_MAX_TS = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _line(value: Any, path: str, most: int) -> str:
    """A non-empty one-line string of at most `most` characters."""
    _check(value, str, path)
    if not value:
        raise SchemaError(f"{path} must not be empty", path)
    if len(value) > most:
        raise SchemaError(f"{path} must be at most {most} characters, got {len(value)}", path)
    if _CONTROL.search(value):
        raise SchemaError(f"{path} must not contain control characters, got {clip(value)}", path)
    return value


def _box(value: Any, path: str = "box") -> list[float]:
    """[x1, y1, x2, y2] in pixels of the frame: 4 finite numbers >= 0, x1 < x2, y1 < y2."""
    _check(value, list, path)
    if len(value) != 4:
        raise SchemaError(f"{path} must have 4 numbers [x1, y1, x2, y2], got {len(value)}", path)
    box = [float(_check(v, float, f"{path}[{i}]")) for i, v in enumerate(value)]
    for i, v in enumerate(box):
        if v < 0:
            raise SchemaError(f"{path}[{i}] must be >= 0, got {clip(v)}", f"{path}[{i}]")
    if not (box[0] < box[2] and box[1] < box[3]):
        raise SchemaError(f"{path} must have x1 < x2 and y1 < y2, got {clip(box)}", path)
    return box


@dataclass
class Feedback:
    frame_id: str  # fw-frame-id of the labelled frame
    label: str  # the right label, as the model's labels are spelled
    source: str  # who gave it: "operator:alice", "gateway", "synthetic", ...
    ts: int = field(default_factory=now_ms)  # when it was given, ms since the epoch
    box: list[float] | None = None  # [x1, y1, x2, y2] in pixels, for a detection label
    note: str | None = None  # free text for the people who read it later

    def __post_init__(self) -> None:
        # Cheap checks, so a bad label is refused where it is made (CLI, gateway), not
        # when the collector meets it.
        _line(self.frame_id, "frame_id", MAX_TEXT_ID_CHARS)
        _line(self.label, "label", MAX_LABEL_CHARS)
        _line(self.source, "source", MAX_SOURCE_CHARS)
        _nonneg(_check(self.ts, int, "ts"), "ts")
        if self.ts > _MAX_TS:
            raise SchemaError(f"ts must be at most 2**63-1, got {clip(self.ts)}", "ts")
        if self.box is not None:
            self.box = _box(self.box)
        if self.note is not None:
            _check(self.note, str, "note")
            if len(self.note) > MAX_NOTE_CHARS:
                raise SchemaError(
                    f"note must be at most {MAX_NOTE_CHARS} characters, got {len(self.note)}",
                    "note",
                )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": FEEDBACK_SCHEMA,
            "frame_id": self.frame_id,
            "label": self.label,
            "source": self.source,
            "ts": self.ts,
        }
        if self.box is not None:
            d["box"] = self.box
        if self.note is not None:
            d["note"] = self.note
        return d

    def to_json(self) -> bytes:
        return _dumps(self.to_dict())

    def to_record(self) -> KafkaRecord:
        """key = frame id: every label of one frame lands on one partition, in the order
        given, so the last one read is the last one given."""
        return KafkaRecord(self.frame_id.encode(), self.to_json(), [])

    @classmethod
    def from_dict(cls, d: Any) -> Feedback:
        d = _obj(d, None)
        _schema_tag(d, FEEDBACK_SCHEMA)
        return cls(
            frame_id=_take(d, "frame_id", str),
            label=_take(d, "label", str),
            source=_take(d, "source", str),
            ts=_take(d, "ts", int),
            box=d.get("box"),
            note=d.get("note"),
        )

    @classmethod
    def from_json(cls, data: bytes | str | None) -> Feedback:
        if data is None:
            raise SchemaError("empty record value: feedback/1 is a JSON object", "value")
        if len(data) > MAX_FEEDBACK_BYTES:
            raise SchemaError(
                f"feedback is {len(data)} bytes, larger than {MAX_FEEDBACK_BYTES}", "value"
            )
        return cls.from_dict(_loads(data))
