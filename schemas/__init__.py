"""Message contracts of framewire: frame/1 (Kafka headers), result/1, event/1 and feedback/1
(JSON).

Pure types, encoding, decoding and validation; no I/O. JSON Schema files for consumers in
other languages are in ``schemas/json`` (JSON_DIR); docs/MESSAGES.md explains them.
"""

from __future__ import annotations

from pathlib import Path

from schemas.errors import SchemaError, clip
from schemas.event import COMMON_KEYS, EVENT_FIELDS, EVENT_SCHEMA, EVENT_TYPES, WORKER_STATES, Event
from schemas.feedback import (
    FEEDBACK_SCHEMA,
    MAX_FEEDBACK_BYTES,
    MAX_LABEL_CHARS,
    MAX_NOTE_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TEXT_ID_CHARS,
    Feedback,
)
from schemas.frame import (
    ENCODINGS,
    FRAME_SCHEMA,
    H_ENCODING,
    H_FRAME_ID,
    H_HEIGHT,
    H_LABEL,
    H_MODEL,
    H_REPLY_TO,
    H_SCHEMA,
    H_SEQ,
    H_STREAM_ID,
    H_TS,
    H_WIDTH,
    INT_HEADERS,
    OPTIONAL_HEADERS,
    RAW_ENCODINGS,
    REQUIRED_HEADERS,
    Frame,
    KafkaRecord,
    new_frame_id,
    now_ms,
)
from schemas.result import (
    RESULT_SCHEMA,
    STATUSES,
    TASKS,
    Latency,
    ModelRef,
    Prediction,
    Result,
    Source,
)

# The hand-written JSON Schema files (package data).
JSON_DIR = Path(__file__).parent / "json"

__all__ = [
    "COMMON_KEYS",
    "ENCODINGS",
    "EVENT_FIELDS",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "FEEDBACK_SCHEMA",
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
    "JSON_DIR",
    "MAX_FEEDBACK_BYTES",
    "MAX_LABEL_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_TEXT_ID_CHARS",
    "OPTIONAL_HEADERS",
    "RAW_ENCODINGS",
    "REQUIRED_HEADERS",
    "RESULT_SCHEMA",
    "STATUSES",
    "TASKS",
    "WORKER_STATES",
    "Event",
    "Feedback",
    "Frame",
    "KafkaRecord",
    "Latency",
    "ModelRef",
    "Prediction",
    "Result",
    "SchemaError",
    "Source",
    "clip",
    "new_frame_id",
    "now_ms",
]
