"""The dead-letter record: a frames record the worker could not use, and why.

A DLQ record keeps the original key, value and headers and adds the `fw-error*` and
`fw-original-*` headers below. It must always fit where it is sent: a stock Apache Kafka
refuses records above about 1 MB, and the original may be larger (an oversized frame is
the usual reason it is here). So a value above the limit is cut to a prefix, headers or a
key too large to carry are dropped, and `fw-dlq-incomplete` names what was cut; the
original's coordinates, size and SHA-256 let it be fetched from the frames topic while
that topic still holds it (docs/MESSAGES.md).

Pure functions, no I/O: the worker builds records with `dead_letter`, and `framewire dlq`
reads them with `DeadLetter.from_record`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

H_ERROR = "fw-error"  # one-line reason
H_ERROR_STAGE = "fw-error-stage"  # schema, decode, inference, poison, sink
H_ERROR_SOURCE = "fw-error-source"  # topic/partition/offset (kept for older readers)
H_ERROR_WORKER = "fw-error-worker"
H_ORIGINAL_TOPIC = "fw-original-topic"
H_ORIGINAL_PARTITION = "fw-original-partition"
H_ORIGINAL_OFFSET = "fw-original-offset"
H_ORIGINAL_SIZE = "fw-original-size"  # bytes of the original value
H_ORIGINAL_SHA256 = "fw-original-sha256"  # hex digest of the original value
H_INCOMPLETE = "fw-dlq-incomplete"  # comma list of what was cut: value, headers, key

DLQ_HEADERS = (
    H_ERROR, H_ERROR_STAGE, H_ERROR_SOURCE, H_ERROR_WORKER, H_ORIGINAL_TOPIC,
    H_ORIGINAL_PARTITION, H_ORIGINAL_OFFSET, H_ORIGINAL_SIZE, H_ORIGINAL_SHA256, H_INCOMPLETE,
)  # fmt: skip

# Original headers are carried only while they are this small in total (a frame/1 record's
# are about 300 bytes), and a key only up to this size (keys are stream ids): together with
# the value limit the record stays below a stock broker's 1,048,588 bytes.
MAX_CARRIED_HEADER_BYTES = 32_768
MAX_CARRIED_KEY_BYTES = 4_096
_MAX_REASON_CHARS = 500

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetterRecord:
    """What the worker sends to the DLQ topic."""

    key: bytes | None
    value: bytes
    headers: Headers


def dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    source: tuple[str, int, int],
    reason: str,
    stage: str,
    worker: str,
    max_value_bytes: int,
) -> DeadLetterRecord:
    """The DLQ record for an original record at source (topic, partition, offset)."""
    value, headers = value or b"", list(headers or [])
    topic, partition, offset = source
    cut = []
    if len(value) > max_value_bytes:
        cut.append("value")
    if sum(len(name) + len(v or b"") for name, v in headers) > MAX_CARRIED_HEADER_BYTES:
        headers, cut = [], [*cut, "headers"]
    if key is not None and len(key) > MAX_CARRIED_KEY_BYTES:
        key, cut = None, [*cut, "key"]
    added = [
        (H_ERROR, reason[:_MAX_REASON_CHARS].encode("utf-8", "replace")),
        (H_ERROR_STAGE, stage.encode()),
        (H_ERROR_SOURCE, f"{topic}/{partition}/{offset}".encode()),
        (H_ERROR_WORKER, worker.encode()),
        (H_ORIGINAL_TOPIC, topic.encode()),
        (H_ORIGINAL_PARTITION, str(partition).encode()),
        (H_ORIGINAL_OFFSET, str(offset).encode()),
        (H_ORIGINAL_SIZE, str(len(value)).encode()),
        (H_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
    ]
    if cut:
        added.append((H_INCOMPLETE, ",".join(cut).encode()))
    # Original headers first, so a reader that takes the first of a name gets the original.
    carried = [(name, v) for name, v in headers if name not in DLQ_HEADERS]
    return DeadLetterRecord(key, value[:max_value_bytes], carried + added)


@dataclass(frozen=True)
class DeadLetter:
    """A DLQ record as read back: the original (as carried) and why it failed."""

    key: bytes | None
    value: bytes
    headers: Headers  # the original headers carried, without the DLQ's own
    reason: str
    stage: str
    worker: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_size: int
    original_sha256: str
    incomplete: tuple[str, ...]  # what was cut: "value", "headers", "key"

    @property
    def complete(self) -> bool:
        """True when key, value and headers are the original's, as they were."""
        return not self.incomplete

    @classmethod
    def from_record(
        cls, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> DeadLetter:
        """Read a DLQ record. Records written before the fw-original-* headers existed
        fall back to fw-error-source and the value as carried."""
        value = value or b""
        own = {name: v for name, v in (headers or []) if name in DLQ_HEADERS}

        def text(name: str, default: str = "") -> str:
            raw = own.get(name)
            return raw.decode("utf-8", "replace") if raw is not None else default

        topic, partition, offset = _source(text(H_ERROR_SOURCE))
        return cls(
            key=key,
            value=value,
            headers=[(name, v) for name, v in (headers or []) if name not in DLQ_HEADERS],
            reason=text(H_ERROR, "unknown"),
            stage=text(H_ERROR_STAGE, "unknown"),
            worker=text(H_ERROR_WORKER),
            original_topic=text(H_ORIGINAL_TOPIC, topic),
            original_partition=_int(text(H_ORIGINAL_PARTITION), partition),
            original_offset=_int(text(H_ORIGINAL_OFFSET), offset),
            original_size=_int(text(H_ORIGINAL_SIZE), len(value)),
            original_sha256=text(H_ORIGINAL_SHA256) or hashlib.sha256(value).hexdigest(),
            incomplete=tuple(p for p in text(H_INCOMPLETE).split(",") if p),
        )


def _source(text: str) -> tuple[str, int, int]:
    topic, _, rest = text.rpartition("/") if text.count("/") >= 2 else ("", "", "")
    topic, _, partition = topic.rpartition("/")
    return topic, _int(partition, -1), _int(rest, -1)


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default
