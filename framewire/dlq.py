"""Reading and redriving the dead-letter topic (`framewire dlq`).

A DLQ record is named by its place on the DLQ topic, `PARTITION:OFFSET`. Reading uses
assign() + seek, never a consumer group: an operator's look at the DLQ is not a member
that shares work, and a group join costs seconds against the embedded broker.

Replay sends a record's original key, value and headers (the DLQ's own headers dropped)
back to the frames topic, so the frame keeps its fw-frame-id and its result overwrites
nothing but its own. A record the DLQ could not carry whole (fw-dlq-incomplete) is
fetched from the frames topic by its original coordinates and checked against
fw-original-sha256 first (schemas/dlq.py).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from foundation.kafka import CLIENT_ID, producer_config
from foundation.settings import Settings
from schemas.dlq import DLQ_HEADERS, DeadLetter, Headers
from schemas.frame import H_FRAME_ID, H_STREAM_ID

# How long a read waits for more records. The embedded Tansu broker's end_offsets may
# answer the base offset of the last batch instead of last offset + 1
# (tests/kafka_helpers.py), so "position >= end offset" never proves a partition is read to
# its end; it only says the end is near. Once every position has passed that hint, a read
# stops after IDLE_S without a record; before that (end not even near) it waits STALL_S.
IDLE_S = 0.6
STALL_S = 5.0
_POLL_MS = 200


class DlqError(RuntimeError):
    """Something the operator can fix (a missing topic, a bad ID), said in one line."""


@dataclass(frozen=True)
class DlqEntry:
    """One record of the DLQ topic: where it is, when it was written, what it carries."""

    partition: int
    offset: int
    timestamp_ms: int
    raw_headers: Headers  # as on the DLQ topic: the original's and the DLQ's own
    letter: DeadLetter

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def time(self) -> str:
        return format_time(self.timestamp_ms)

    def original_header(self, name: str) -> str:
        """An original header as text ('' when absent or not carried)."""
        for header, value in self.letter.headers:
            if header == name:
                return (value or b"").decode("utf-8", "replace")
        return ""

    @property
    def stream_id(self) -> str:
        return self.original_header(H_STREAM_ID)

    @property
    def frame_id(self) -> str:
        return self.original_header(H_FRAME_ID)

    @property
    def original(self) -> str:
        letter = self.letter
        return f"{letter.original_topic}/{letter.original_partition}/{letter.original_offset}"

    @property
    def value_sha256_ok(self) -> bool | None:
        """Whether the carried value is the original's (SHA-256); None when it was cut."""
        if "value" in self.letter.incomplete:
            return None
        return hashlib.sha256(self.letter.value).hexdigest() == self.letter.original_sha256

    def to_json(self) -> dict[str, Any]:
        letter = self.letter
        return {
            "id": self.id,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "time": self.time,
            "stage": letter.stage,
            "reason": letter.reason,
            "worker": letter.worker,
            "stream_id": self.stream_id or None,
            "frame_id": self.frame_id or None,
            "original_topic": letter.original_topic,
            "original_partition": letter.original_partition,
            "original_offset": letter.original_offset,
            "original_size": letter.original_size,
            "original_sha256": letter.original_sha256,
            "value_bytes": len(letter.value),
            "complete": letter.complete,
            "incomplete": list(letter.incomplete),
        }


# -- parsing operator input -----------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str, now_s: float | None = None, flag: str = "--since") -> int:
    """Epoch milliseconds of a time flag: a duration back from now (90s, 10m, 2h, 1d, 1w;
    0s is now) or an ISO-8601 time (a time without a zone is UTC, as `list` prints).
    ValueError, naming the flag, if neither."""
    match = _DURATION.match(text)
    if match:
        now_s = time.time() if now_s is None else now_s
        return int((now_s - float(match[1]) * _UNIT_S[match[2].lower()]) * 1000)
    iso = text.strip()
    if iso[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not take "Z"
        iso = iso[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"{flag}: expected an ISO-8601 time (2024-05-01T12:00:00Z) or a duration "
            f"(30s, 10m, 2h, 1d, 1w), got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def parse_id(text: str) -> tuple[int, int]:
    """(partition, offset) of a DLQ record ID `PARTITION:OFFSET`; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+):(\d+)\s*", text)
    if not match:
        raise ValueError(
            f"a DLQ record ID is PARTITION:OFFSET (as `dlq list` prints), got {text!r}"
        )
    return int(match[1]), int(match[2])


def format_time(timestamp_ms: int) -> str:
    when = datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- selecting and grouping -----------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which DLQ records a command acts on; every given criterion must hold."""

    reason: str | None = None  # case-insensitive substring of fw-error
    stage: str | None = None  # exact fw-error-stage
    since_ms: int | None = None  # DLQ record timestamp at or after
    ids: frozenset[tuple[int, int]] | None = None  # (partition, offset)

    def __call__(self, entry: DlqEntry) -> bool:
        if self.reason and self.reason.lower() not in entry.letter.reason.lower():
            return False
        if self.stage and self.stage.lower() != entry.letter.stage.lower():
            return False
        if self.since_ms is not None and entry.timestamp_ms < self.since_ms:
            return False
        return not self.ids or (entry.partition, entry.offset) in self.ids


def reason_group(reason: str) -> str:
    """The part of a reason that names its kind: the text before the first ': ' (the
    header of a schema error, the exception type of a decode or inference error, `poison`),
    digits as N so sizes and counts do not split a group, at most 40 characters. An OpenCV
    error (its text starts with the library's version and source line) is grouped by its
    error code, e.g. `OpenCV (-215:Assertion failed)`."""
    opencv = _OPENCV.match(reason)
    if opencv:
        return f"OpenCV {opencv[1]}"[:40]
    head = reason.split(": ", 1)[0].strip() or reason
    head = re.sub(r"\d+", "N", head)
    return head if len(head) <= 40 else head[:39] + "…"


_OPENCV = re.compile(r"^OpenCV\([^)]*\) \S+ error: (\([^)]*\))")


def summarize(entries: Iterable[DlqEntry]) -> list[tuple[str, str, int]]:
    """(stage, reason group, count), most frequent first."""
    counts = Counter((e.letter.stage, reason_group(e.letter.reason)) for e in entries)
    return [(stage, group, n) for (stage, group), n in counts.most_common()]


# -- reading --------------------------------------------------------------------------


def _consumer(settings: Settings) -> KafkaConsumer:
    # Fetch limits fit the largest frame the workers accept, so an original fetched for a
    # replay (or a DLQ record near 1 MB) is never refused as too large for one fetch.
    fetch = max(settings.max_frame_bytes + 1_048_576, 2 * 1_048_576)
    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{CLIENT_ID}-dlq",
        group_id=None,
        enable_auto_commit=False,
        # An offset no longer (or not yet) on the log resets to the end: nothing is read,
        # and the record counts as gone, instead of a read from the start.
        auto_offset_reset="latest",
        max_partition_fetch_bytes=fetch,
        fetch_max_bytes=max(fetch, 64 * 1_048_576),
    )


def _entry(record: Any) -> DlqEntry:
    headers = list(record.headers or [])
    return DlqEntry(
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        raw_headers=headers,
        letter=DeadLetter.from_record(record.key, record.value, headers),
    )


def iter_dlq(
    settings: Settings, idle_s: float = IDLE_S, stall_s: float = STALL_S
) -> Iterator[DlqEntry]:
    """Every record of the DLQ topic, each partition in offset order. Lazy: a DLQ record
    may be near 1 MB, so records are not all held at once."""
    topic = settings.dlq_topic
    consumer = _consumer(settings)
    try:
        ids = consumer.partitions_for_topic(topic)
        if not ids:
            raise DlqError(f"topic {topic} does not exist (create it: framewire topics create)")
        partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        # A lower bound of each partition's end, never proof of it (see IDLE_S).
        near_end = consumer.end_offsets(partitions)
        last_new = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=_POLL_MS)
            if batch:
                for tp in sorted(batch, key=lambda tp: tp.partition):
                    yield from (_entry(record) for record in batch[tp])
                last_new = time.monotonic()
                continue
            idle = time.monotonic() - last_new
            at_hint = all(consumer.position(tp) >= near_end[tp] for tp in partitions)
            if idle >= (idle_s if at_hint else stall_s):
                return
    finally:
        consumer.close()


def fetch_record(
    settings: Settings, topic: str, partition: int, offset: int, idle_s: float = IDLE_S * 2
) -> Any | None:
    """The record at topic/partition/offset, or None when the topic no longer has it
    (retention, a deleted topic, coordinates that never existed)."""
    if not topic or partition < 0 or offset < 0:
        return None
    consumer = _consumer(settings)
    try:
        if partition not in (consumer.partitions_for_topic(topic) or set()):
            return None
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        if offset < consumer.beginning_offsets([tp])[tp]:
            return None  # deleted by retention
        consumer.seek(tp, offset)
        last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s:
            for record in consumer.poll(timeout_ms=_POLL_MS).get(tp, []):
                if record.offset == offset:
                    return record
                if record.offset > offset:
                    return None  # compacted away
                last_new = time.monotonic()
            # No end_offsets shortcut (see IDLE_S): an offset past the end reads nothing,
            # as does a fetch still on its way; only idle time tells them apart.
        return None
    finally:
        consumer.close()


def read_entry(settings: Settings, record_id: str) -> DlqEntry:
    """The DLQ record `PARTITION:OFFSET`; DlqError when there is none."""
    try:
        partition, offset = parse_id(record_id)
    except ValueError as exc:
        raise DlqError(str(exc)) from None
    record = fetch_record(settings, settings.dlq_topic, partition, offset)
    if record is None:
        raise DlqError(f"no DLQ record {record_id} on {settings.dlq_topic}")
    return _entry(record)


# -- replaying ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What replay did with one selected record."""

    entry: DlqEntry
    replayed: bool
    detail: str  # how (carried / fetched from the frames topic) or why not


@dataclass(frozen=True)
class _Original:
    key: bytes | None
    value: bytes
    headers: Headers
    source: str


class NotReplayable(Exception):
    pass


def original_of(settings: Settings, entry: DlqEntry) -> _Original:
    """The original record of a DLQ entry: as carried when complete, else fetched from its
    original coordinates. NotReplayable says why there is none to send."""
    letter = entry.letter
    if letter.original_size > settings.max_frame_bytes:  # known before any fetch
        raise NotReplayable(
            f"value is {letter.original_size} bytes, above FRAMEWIRE_MAX_FRAME_BYTES "
            f"({settings.max_frame_bytes}): a worker would refuse it again"
        )
    if letter.complete:
        if not entry.value_sha256_ok:
            raise NotReplayable("carried value does not match fw-original-sha256")
        original = _Original(letter.key, letter.value, letter.headers, "carried")
    else:
        record = fetch_record(
            settings, letter.original_topic, letter.original_partition, letter.original_offset
        )
        if record is None:
            raise NotReplayable(
                f"incomplete ({','.join(letter.incomplete)} cut) and the original "
                f"{entry.original} is no longer on its topic"
            )
        value = record.value or b""
        if hashlib.sha256(value).hexdigest() != letter.original_sha256:
            raise NotReplayable(
                f"the record at {entry.original} is not the original (SHA-256 differs)"
            )
        headers = [(n, v) for n, v in (record.headers or []) if n not in DLQ_HEADERS]
        original = _Original(record.key, value, headers, f"fetched from {entry.original}")
    return original


def replay(
    settings: Settings,
    entries: Iterable[DlqEntry],
    dry_run: bool = False,
    timeout_s: float = 30.0,
) -> Iterator[Outcome]:
    """Send each entry's original to the frames topic; yield an Outcome per entry, in the
    order given, once it is known (a send once the broker acknowledged it or it failed).
    dry_run: every check (originals fetched and verified), nothing sent."""
    if dry_run:
        for entry in entries:
            try:
                yield Outcome(entry, True, original_of(settings, entry).source)
            except NotReplayable as exc:
                yield Outcome(entry, False, str(exc))
        return
    producer = KafkaProducer(**producer_config(settings, client_id=f"{CLIENT_ID}-dlq-replay"))
    pending: list[tuple[DlqEntry, Any, str]] = []
    pending_bytes = 0
    try:
        for entry in entries:
            try:
                original = original_of(settings, entry)
            except NotReplayable as exc:
                pending.append((entry, None, str(exc)))  # reported in order, with the sends
                continue
            try:
                future = producer.send(
                    settings.frames_topic,
                    key=original.key,
                    value=original.value,
                    headers=original.headers,
                )
            except KafkaError as exc:  # e.g. no metadata for the topic within max_block
                pending.append((entry, None, f"send failed: {type(exc).__name__}: {exc}"))
                continue
            pending.append((entry, future, original.source))
            pending_bytes += len(original.value)
            # Await in groups: one round trip per record would make a big replay slow, and
            # kafka-python 2.x does not bound its own buffer (producers/publisher.py).
            if len(pending) >= _WINDOW_RECORDS or pending_bytes >= settings.producer_buffer_bytes:
                yield from _settle(pending, timeout_s)
                pending_bytes = 0
        yield from _settle(pending, timeout_s)
    finally:
        producer.close(timeout=timeout_s)


_WINDOW_RECORDS = 256


def _settle(pending: list[tuple[DlqEntry, Any, str]], timeout_s: float) -> Iterator[Outcome]:
    for entry, future, detail in pending:
        if future is None:
            yield Outcome(entry, False, detail)
            continue
        try:
            future.get(timeout=timeout_s)
        except KafkaError as exc:
            yield Outcome(entry, False, f"send failed: {type(exc).__name__}: {exc}")
        else:
            yield Outcome(entry, True, detail)
    pending.clear()
