"""result/1: what a worker produced for one frame (results topic, Redis, gateway replies).

Encoded as compact JSON. Readers ignore fields they do not know, so result/1 can gain
optional fields without a version bump; removing or retyping a field needs result/2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.errors import (
    SchemaError,
    _check,
    _nonempty,
    _nonneg,
    _obj,
    _one_of,
    _schema_tag,
    _take,
    clip,
)

__all__ = [
    "RESULT_SCHEMA",
    "STATUSES",
    "TASKS",
    "Latency",
    "ModelRef",
    "Prediction",
    "Result",
    "Source",
]

RESULT_SCHEMA = "result/1"
TASKS = ("classification", "detection")
STATUSES = ("ok", "error")


@dataclass
class Prediction:
    label: str
    score: float
    box: list[float] | None = None  # [x1, y1, x2, y2] in pixels of the original image

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "score": self.score}
        if self.box is not None:
            d["box"] = self.box
        return d

    @classmethod
    def from_dict(cls, d: Any, path: str = "prediction") -> Prediction:
        d = _obj(d, path)
        label = _take(d, "label", str, path)
        score = float(_take(d, "score", float, path))
        box = d.get("box")
        if box is not None:
            bpath = f"{path}.box"
            _check(box, list, bpath)
            if len(box) != 4:
                raise SchemaError(
                    f"{bpath} must have 4 numbers [x1, y1, x2, y2], got {len(box)}", bpath
                )
            box = [float(_check(v, float, f"{bpath}[{i}]")) for i, v in enumerate(box)]
        return cls(label, score, box)


@dataclass
class ModelRef:
    name: str
    version: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, d: Any, path: str = "model") -> ModelRef:
        d = _obj(d, path)
        name = _nonempty(_take(d, "name", str, path), f"{path}.name")
        version = _nonempty(_take(d, "version", str, path), f"{path}.version")
        return cls(name, version)


@dataclass
class Latency:
    """Milliseconds per stage. Not checked >= 0: queue time spans two machines' clocks."""

    queue: float
    decode: float
    batch_wait: float
    inference: float
    total: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "decode": self.decode,
            "batch_wait": self.batch_wait,
            "inference": self.inference,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "latency_ms") -> Latency:
        d = _obj(d, path)
        return cls(*(float(_take(d, k, float, path)) for k in _LATENCY_KEYS))


_LATENCY_KEYS = ("queue", "decode", "batch_wait", "inference", "total")


@dataclass
class Source:
    """Where the frame was read from; None for frames that did not come through Kafka."""

    topic: str
    partition: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: Any, path: str = "source") -> Source:
        d = _obj(d, path)
        topic = _nonempty(_take(d, "topic", str, path), f"{path}.topic")
        partition = _nonneg(_take(d, "partition", int, path), f"{path}.partition")
        offset = _nonneg(_take(d, "offset", int, path), f"{path}.offset")
        return cls(topic, partition, offset)


@dataclass
class Result:
    frame_id: str
    stream_id: str
    seq: int
    captured_at: int  # ms since the epoch, from the frame's fw-ts
    completed_at: int  # ms since the epoch, when the worker finished the frame
    model: ModelRef
    task: str
    predictions: list[Prediction]
    latency_ms: Latency
    batch_size: int
    source: Source | None
    status: str = "ok"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Built by hand, not dataclasses.asdict: this runs for every frame in the worker,
        # and asdict deep-copies recursively (several times slower).
        m, lat, src = self.model, self.latency_ms, self.source
        d: dict[str, Any] = {
            "schema": RESULT_SCHEMA,
            "frame_id": self.frame_id,
            "stream_id": self.stream_id,
            "seq": self.seq,
            "captured_at": self.captured_at,
            "completed_at": self.completed_at,
            "model": {"name": m.name, "version": m.version},
            "task": self.task,
            "predictions": [
                {"label": p.label, "score": p.score}
                if p.box is None
                else {"label": p.label, "score": p.score, "box": p.box}
                for p in self.predictions
            ],
            "latency_ms": {
                "queue": lat.queue,
                "decode": lat.decode,
                "batch_wait": lat.batch_wait,
                "inference": lat.inference,
                "total": lat.total,
            },
            "batch_size": self.batch_size,
            "source": None
            if src is None
            else {"topic": src.topic, "partition": src.partition, "offset": src.offset},
            "status": self.status,
        }
        if self.error is not None:
            d["error"] = self.error
        return d

    def to_json(self) -> bytes:
        for value in self._floats():
            if not math.isfinite(value):
                raise SchemaError(f"cannot encode as JSON: {value} is not a finite number")
        return _dumps(self.to_dict())

    def _floats(self) -> Iterator[float]:
        for p in self.predictions:
            yield p.score
            yield from p.box or ()
        latency = self.latency_ms
        yield from (latency.queue, latency.decode, latency.batch_wait, latency.inference,
                    latency.total)  # fmt: skip

    @classmethod
    def from_dict(cls, d: Any) -> Result:
        d = _obj(d, None)
        _schema_tag(d, RESULT_SCHEMA)
        frame_id = _nonempty(_take(d, "frame_id", str), "frame_id")
        stream_id = _nonempty(_take(d, "stream_id", str), "stream_id")
        seq = _nonneg(_take(d, "seq", int), "seq")
        captured_at = _nonneg(_take(d, "captured_at", int), "captured_at")
        completed_at = _nonneg(_take(d, "completed_at", int), "completed_at")
        model = ModelRef.from_dict(_take(d, "model", dict), "model")
        task = _one_of(_take(d, "task", str), TASKS, "task")
        preds = _take(d, "predictions", list)
        predictions = [Prediction.from_dict(p, f"predictions[{i}]") for i, p in enumerate(preds)]
        latency = Latency.from_dict(_take(d, "latency_ms", dict), "latency_ms")
        batch_size = _nonneg(_take(d, "batch_size", int), "batch_size")
        # source may be absent as well as null: results that never went through Kafka.
        raw_source = d.get("source")
        source = None if raw_source is None else Source.from_dict(raw_source, "source")
        status = _one_of(_take(d, "status", str), STATUSES, "status")
        error = d.get("error")
        if error is not None:
            _check(error, str, "error")
        if status == "error" and not error:
            raise SchemaError('status "error" needs a non-empty error message', "error")
        return cls(
            frame_id,
            stream_id,
            seq,
            captured_at,
            completed_at,
            model,
            task,
            predictions,
            latency,
            batch_size,
            source,
            status,
            error,
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Result:
        return cls.from_dict(_loads(data))


def _dumps(d: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. orjson: 0.7 µs for a result/1 against the standard library's
    9.4, paid by the worker's writer for every frame while it holds the GIL. It writes NaN
    and Infinity as null where the standard library can refuse them; the schemas that carry
    floats refuse them before (Result.to_json, Event and the feedback's boxes on
    construction): they are not JSON and break consumers in other languages."""
    try:
        return orjson.dumps(d)
    except orjson.JSONEncodeError as e:  # a value JSON has no form for, an int over 64 bits
        raise SchemaError(f"cannot encode as JSON: {e}") from None


def _loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are both
        raise SchemaError(f"not valid JSON: {clip(str(e))}") from None
