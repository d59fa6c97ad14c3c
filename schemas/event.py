"""event/1: monitoring events on the monitoring topic (batches, worker life, drift, ...).

Flat JSON: the common keys plus the type's own fields at the top level, so dashboards and
ksqlDB-style consumers can read ``size`` or ``value`` without unwrapping. Each type has
required fields (EVENT_FIELDS); extra fields are allowed and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.errors import (
    SchemaError,
    _check,
    _nonempty,
    _nonneg,
    _obj,
    _one_of,
    _schema_tag,
    _take,
)
from schemas.frame import now_ms
from schemas.result import _dumps, _loads

__all__ = [
    "COMMON_KEYS",
    "EVENT_FIELDS",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "WORKER_STATES",
    "Event",
]

EVENT_SCHEMA = "event/1"
EVENT_TYPES = (
    "batch", "worker", "model", "rebalance", "error", "drift", "data_quality", "observation",
    "retrain",
)  # fmt: skip
WORKER_STATES = ("started", "stopped")

# Required fields per type and their JSON types (float accepts ints; bool is no number).
EVENT_FIELDS: dict[str, dict[str, type]] = {
    "batch": {
        "size": int,
        "model": str,
        "queue_ms": float,
        "decode_ms": float,
        "inference_ms": float,
    },
    "worker": {"state": str},
    "model": {"name": str, "version": str},
    "rebalance": {"assigned": list, "revoked": list},
    "error": {"stage": str, "reason": str},
    "drift": {"metric": str, "value": float},
    "data_quality": {"check": str, "value": float},
    "observation": {"model": str, "frames": list},
    "retrain": {"step": str, "model": str},
}

# Keys every event has; a type's fields may not reuse them (they share one JSON object).
COMMON_KEYS = ("schema", "type", "ts", "worker")


@dataclass
class Event:
    type: str
    worker: str
    fields: dict[str, Any] = field(default_factory=dict)
    ts: int = field(default_factory=now_ms)

    def __post_init__(self) -> None:
        _one_of(_check(self.type, str, "type"), EVENT_TYPES, "type")
        _nonempty(_check(self.worker, str, "worker"), "worker")
        _nonneg(_check(self.ts, int, "ts"), "ts")
        _check(self.fields, dict, "fields")
        _check_no_clash(self.fields)
        for name, kind in EVENT_FIELDS[self.type].items():
            # Paths are the JSON keys: on the wire the fields sit at the top level.
            _take(self.fields, name, kind)
        if self.type == "worker":
            _one_of(self.fields["state"], WORKER_STATES, "state")

    def to_dict(self) -> dict[str, Any]:
        # fields is a mutable dict: re-check the clash so a late edit cannot shadow "type".
        _check_no_clash(self.fields)
        return {
            "schema": EVENT_SCHEMA,
            "type": self.type,
            "ts": self.ts,
            "worker": self.worker,
            **self.fields,
        }

    def to_json(self) -> bytes:
        return _dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Any) -> Event:
        d = _obj(d, None)
        _schema_tag(d, EVENT_SCHEMA)
        type_ = _take(d, "type", str)
        worker = _take(d, "worker", str)
        ts = _take(d, "ts", int)
        fields = {k: v for k, v in d.items() if k not in COMMON_KEYS}
        return cls(type_, worker, fields, ts)

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        return cls.from_dict(_loads(data))


def _check_no_clash(fields: dict[str, Any]) -> None:
    for key in COMMON_KEYS:
        if key in fields:
            raise SchemaError(f"event field {key!r} clashes with the common key of that name", key)
