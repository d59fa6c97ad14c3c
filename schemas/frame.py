"""frame/1: one image on the frames topic.

Record key = stream id (so one stream stays on one partition, in order), value = the
encoded image bytes, metadata in ``fw-*`` headers as UTF-8 text. Headers rather than an
envelope keep the value a plain image that any Kafka client (kcat, librdkafka, Java) can
produce, and let a consumer route or reject a record without touching its payload.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from schemas.errors import SchemaError, clip

__all__ = [
    "ENCODINGS",
    "FRAME_SCHEMA",
    "H_ENCODING",
    "H_FRAME_ID",
    "H_HEIGHT",
    "H_LABEL",
    "H_MODEL",
    "H_REPLY_TO",
    "H_SCHEMA",
    "H_SEQ",
    "H_STREAM_ID",
    "H_TS",
    "H_WIDTH",
    "INT_HEADERS",
    "OPTIONAL_HEADERS",
    "RAW_ENCODINGS",
    "REQUIRED_HEADERS",
    "Frame",
    "KafkaRecord",
    "new_frame_id",
    "now_ms",
]

FRAME_SCHEMA = "frame/1"
ENCODINGS = ("jpeg", "png", "webp", "raw-bgr8", "raw-rgb8")
# Raw frames carry no size of their own: width and height headers are required for them.
RAW_ENCODINGS = ("raw-bgr8", "raw-rgb8")
_RAW_CHANNELS = 3

H_SCHEMA = "fw-schema"
H_FRAME_ID = "fw-frame-id"
H_STREAM_ID = "fw-stream-id"
H_SEQ = "fw-seq"
H_TS = "fw-ts"
H_ENCODING = "fw-encoding"
H_WIDTH = "fw-width"
H_HEIGHT = "fw-height"
H_MODEL = "fw-model"
H_REPLY_TO = "fw-reply-to"
H_LABEL = "fw-label"

REQUIRED_HEADERS = (H_SCHEMA, H_FRAME_ID, H_STREAM_ID, H_SEQ, H_TS, H_ENCODING)
OPTIONAL_HEADERS = (H_WIDTH, H_HEIGHT, H_MODEL, H_REPLY_TO, H_LABEL)
# Headers whose text must be a non-negative decimal integer.
INT_HEADERS = (H_SEQ, H_TS, H_WIDTH, H_HEIGHT)
_KNOWN = frozenset(REQUIRED_HEADERS + OPTIONAL_HEADERS)
# Seq and timestamps fit a signed 64-bit integer in every language that consumes them;
# the digit cap also keeps int() away from huge hostile strings.
_MAX_INT = 2**63 - 1
_MAX_DIGITS = 19


class KafkaRecord(NamedTuple):
    """What a producer sends: ``producer.send(topic, key=..., value=..., headers=...)``."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def new_frame_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Frame:
    stream_id: str
    seq: int
    data: bytes
    encoding: str = "jpeg"
    frame_id: str = field(default_factory=new_frame_id)
    captured_at_ms: int = field(default_factory=now_ms)
    width: int | None = None
    height: int | None = None
    model: str | None = None
    reply_to: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        # Cheap checks only: this runs for every frame a producer sends or a worker reads.
        if not isinstance(self.stream_id, str) or not self.stream_id:
            raise SchemaError(
                f"stream_id must be a non-empty string, got {clip(self.stream_id)}", "stream_id"
            )
        if not isinstance(self.frame_id, str) or not self.frame_id:
            raise SchemaError(
                f"frame_id must be a non-empty string, got {clip(self.frame_id)}", "frame_id"
            )
        if not _is_int(self.seq) or self.seq < 0:
            raise SchemaError(f"seq must be an integer >= 0, got {clip(self.seq)}", "seq")
        if not _is_int(self.captured_at_ms) or self.captured_at_ms < 0:
            raise SchemaError(
                f"captured_at_ms must be an integer >= 0, got {clip(self.captured_at_ms)}",
                "captured_at_ms",
            )
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise SchemaError(f"data must be bytes, got {type(self.data).__name__}", "data")
        if self.encoding not in ENCODINGS:
            raise SchemaError(_unknown_encoding(self.encoding), "encoding")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise SchemaError(f"{name} must be an integer >= 0, got {clip(value)}", name)
        for name in ("model", "reply_to", "label"):
            value = getattr(self, name)
            # An empty string would become an empty header: say None to leave it out.
            if value is not None and (not isinstance(value, str) or not value):
                raise SchemaError(
                    f"{name} must be a non-empty string or None, got {clip(value)}", name
                )
        if self.encoding in RAW_ENCODINGS:
            if self.width is None or self.height is None:
                raise SchemaError(
                    f"encoding {self.encoding} needs width and height",
                    "width" if self.width is None else "height",
                )
            _check_raw_size(self.encoding, self.width, self.height, len(self.data), "data")

    def to_record(self) -> KafkaRecord:
        """The Kafka record for this frame; numbers go as decimal ASCII text."""
        headers = [
            (H_SCHEMA, b"frame/1"),
            (H_FRAME_ID, self.frame_id.encode()),
            (H_STREAM_ID, self.stream_id.encode()),
            (H_SEQ, str(self.seq).encode()),
            (H_TS, str(self.captured_at_ms).encode()),
            (H_ENCODING, self.encoding.encode()),
        ]
        if self.width is not None:
            headers.append((H_WIDTH, str(self.width).encode()))
        if self.height is not None:
            headers.append((H_HEIGHT, str(self.height).encode()))
        if self.model is not None:
            headers.append((H_MODEL, self.model.encode()))
        if self.reply_to is not None:
            headers.append((H_REPLY_TO, self.reply_to.encode()))
        if self.label is not None:
            headers.append((H_LABEL, self.label.encode()))
        return KafkaRecord(self.stream_id.encode(), bytes(self.data), headers)

    @classmethod
    def from_record(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] | None,
        *,
        max_bytes: int | None = None,
    ) -> Frame:
        """Decode and check a consumed record; any contract violation is a SchemaError.

        Headers other than the frame/1 ones (tracing, a producer's own) are ignored.
        """
        h = _read_headers(headers)

        schema = h.get(H_SCHEMA)
        if schema is None:
            raise SchemaError(
                f"missing header {H_SCHEMA} (not a framewire frame record?)", H_SCHEMA
            )
        if schema != FRAME_SCHEMA:
            raise SchemaError(
                f"unknown schema version {clip(schema)} in {H_SCHEMA}; supported: {FRAME_SCHEMA}",
                H_SCHEMA,
            )
        for name in REQUIRED_HEADERS:
            if name not in h:
                raise SchemaError(f"missing required header {name}", name)

        seq = _parse_int(h, H_SEQ)
        ts = _parse_int(h, H_TS)
        width = _parse_int(h, H_WIDTH) if H_WIDTH in h else None
        height = _parse_int(h, H_HEIGHT) if H_HEIGHT in h else None

        encoding = h[H_ENCODING]
        if encoding not in ENCODINGS:
            raise SchemaError(_unknown_encoding(encoding, H_ENCODING), H_ENCODING)

        if not value:
            raise SchemaError("empty record value: a frame needs image bytes", "value")
        if max_bytes is not None and len(value) > max_bytes:
            raise SchemaError(
                f"record value is {len(value)} bytes, larger than max_bytes={max_bytes}",
                "value",
            )
        if encoding in RAW_ENCODINGS:
            if width is None or height is None:
                missing = H_WIDTH if width is None else H_HEIGHT
                raise SchemaError(
                    f"encoding {encoding} needs headers {H_WIDTH} and {H_HEIGHT} "
                    f"({missing} is missing)",
                    missing,
                )
            _check_raw_size(encoding, width, height, len(value), "value")

        stream_id = h[H_STREAM_ID]
        if key is not None and key != stream_id.encode():
            raise SchemaError(
                f"record key {clip(bytes(key))} differs from {H_STREAM_ID} {clip(stream_id)}",
                "key",
            )

        return cls(
            stream_id=stream_id,
            seq=seq,
            data=value,
            encoding=encoding,
            frame_id=h[H_FRAME_ID],
            captured_at_ms=ts,
            width=width,
            height=height,
            model=h.get(H_MODEL),
            reply_to=h.get(H_REPLY_TO),
            label=h.get(H_LABEL),
        )


def _read_headers(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """The frame/1 headers as text, each at most once and non-empty."""
    out: dict[str, str] = {}
    for name, raw in headers or ():
        if isinstance(name, bytes):  # some clients hand names over as bytes
            name = name.decode("utf-8", "replace")
        if name not in _KNOWN:
            continue
        if name in out:
            raise SchemaError(f"header {name} given more than once", name)
        if raw is None:
            raise SchemaError(f"header {name} has a null value", name)
        if isinstance(raw, str):
            text = raw
        else:
            try:
                text = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise SchemaError(
                    f"header {name} is not valid UTF-8: {clip(bytes(raw))}", name
                ) from None
        if not text:
            raise SchemaError(f"header {name} is empty", name)
        out[name] = text
    return out


def _parse_int(h: dict[str, str], name: str) -> int:
    text = h[name]
    # isascii() first: str.isdigit() also accepts digits like '²' that int() refuses.
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        raise SchemaError(
            f"header {name} must be a non-negative decimal integer, got {clip(text)}", name
        )
    number = int(text)
    if number > _MAX_INT:
        raise SchemaError(f"header {name} is larger than 2**63-1: {clip(text)}", name)
    return number


def _unknown_encoding(encoding: object, where: str = "encoding") -> str:
    return f"unknown encoding {clip(encoding)} in {where}; known: {', '.join(ENCODINGS)}"


def _check_raw_size(encoding: str, width: int, height: int, size: int, where: str) -> None:
    expected = width * height * _RAW_CHANNELS
    if size != expected:
        raise SchemaError(
            f"{encoding} frame of {width}x{height} needs {expected} bytes "
            f"(width*height*{_RAW_CHANNELS}), {where} has {size}",
            where,
        )
