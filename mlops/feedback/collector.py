"""The feedback collector: labels (feedback/1) joined to their frames, as a dataset version.

    feedback topic ──assign, from the position saved for the dataset──► labels (last wins)
    label ──fw:result:{frame_id}──► the frame's coordinates (topic, partition, offset)
    coordinates ──assign + seek, one read per needed offset──► the frame's bytes
          └─ not on the topic (retention, a recreated topic) ──► fw:frame:{frame_id}
    joined frames ──DatasetStore.commit──► NAME's next version: the latest + the labels

No consumer group: a collect is a reader, not a member sharing work, and a group join
costs seconds. Its position on the feedback topic is remembered per dataset in the state
directory, beside the dataset store (the two belong together: a Redis flush must not make
a dataset forget which labels it has), and saved only after the commit, so a collect that
dies re-reads its labels; that is harmless, because the same labels make the same version.

A frame keeps one label: the last one read (labels of a frame share a partition, keyed by
frame id, so the last read is the last given), and a frame already in the dataset with
another label is relabelled by the store. A frame's item source is its coordinates on the
frames topic, wherever its bytes were found, as `data import --from-topic` writes them.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaConsumer, TopicPartition

from foundation.kafka import CLIENT_ID, end_offset, fetch_config
from foundation.log import get_logger
from foundation.rediskeys import frame_key, result_key
from foundation.settings import Settings
from mlops.data.store import DatasetStore, DatasetVersion, check_name

# The frame-to-file conversion `data import --from-topic` applies (raw pixels become PNG),
# so a frame is the same blob whichever importer brought it.
from mlops.data.topic_import import UnusableFrame, image_file
from schemas import Feedback, Frame, Result, SchemaError

log = get_logger(__name__)

_POLL_MS = 200
# The embedded broker's end_offsets may answer the base offset of the last batch, short of
# the real end (shared/ENVIRONMENT.md), so an end offset never proves a read is complete.
# Past that hint, a read stops after IDLE_S without a record; before it, after STALL_S.
IDLE_S = 1.0
STALL_S = 10.0
# Once past the hint, a read stops at the latest this long after: labels that keep coming
# (a busy review screen) wait for the next collect instead of keeping this one going.
_GRACE_S = 3.0
_FETCH_WAIT_MS = 100  # an empty fetch answers this fast, so IDLE_S is ten fetches
# One frame per read: a partition fetch of 1 MB, not the workers' 10 MB. A larger record
# still comes whole as the first of a fetch (KIP-74; the embedded broker does the same).
_FRAME_FETCH_BYTES = 1_048_576
_REDIS_CHUNK = 500  # keys per MGET / pipeline
SHOWN = 10  # not-joined labels a summary lists one by one


class FeedbackError(RuntimeError):
    """A collect that cannot run (no topic, an unreadable position); str() is one line."""


@dataclass(frozen=True)
class Label:
    feedback: Feedback
    partition: int
    offset: int


@dataclass(frozen=True)
class NotJoined:
    frame_id: str
    label: str
    kind: str  # for counting: "no result", "no coordinates", "frame gone", "unusable frame"
    detail: str  # one line: why, with the coordinates


@dataclass
class Collected:
    dataset: str
    topic: str
    labels_read: int = 0  # feedback/1 records read (and kept by --since)
    invalid: int = 0  # records on the topic that are not feedback/1
    before_since: int = 0  # labels given before --since
    superseded: int = 0  # labels replaced by a later label of the same frame in this read
    lost_to_retention: int = 0  # labels the topic dropped before any collect read them
    positions_reset: int = 0  # partitions whose saved position was past their end
    joined_kafka: int = 0
    joined_redis: int = 0
    not_joined: list[NotJoined] = field(default_factory=list)
    version: DatasetVersion | None = None  # NAME's latest version after the collect
    created: bool = False  # whether this collect made it
    added: int = 0  # labelled frames committed (new items or relabels or unchanged)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for miss in self.not_joined:
            counts[miss.kind] = counts.get(miss.kind, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        v = self.version
        return {
            "dataset": self.dataset, "topic": self.topic, "labels_read": self.labels_read,
            "invalid": self.invalid, "before_since": self.before_since,
            "superseded": self.superseded, "lost_to_retention": self.lost_to_retention,
            "positions_reset": self.positions_reset,
            "joined_kafka": self.joined_kafka, "joined_redis": self.joined_redis,
            "not_joined": [{"frame_id": m.frame_id, "label": m.label, "kind": m.kind,
                            "detail": m.detail} for m in self.not_joined],
            "ref": v.ref if v else None, "version": v.version if v else None,
            "parent": v.parent if v else None, "created": self.created,
            "items": len(v.items) if v else 0,
        }  # fmt: skip


def collect(
    store: DatasetStore, name: str, settings: Settings, since_ms: int | None = None
) -> Collected:
    """Join the feedback topic's new labels (or, with since_ms, every label given since
    then) to their frames and commit them as NAME's next version."""
    check_name(name)  # before the name becomes a file name here
    topic = settings.feedback_topic
    positions = _Positions(settings.state_dir / "feedback", name)
    report = Collected(name, topic)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30)
    try:
        with positions.locked():
            start = None if since_ms is not None else positions.load(topic)
            labels, end = _read_labels(settings, topic, start, since_ms, report)
            added = _join(settings, store, client, labels, report)
            report.added = len(added)
            if added:
                report.version, report.created = store.commit(name, added)
            else:
                report.version = store.latest(name)
            positions.save(topic, end)
    finally:
        client.close()
    return report


# -- reading the labels -----------------------------------------------------------------


def _read_labels(
    settings: Settings,
    topic: str,
    start: dict[int, int] | None,
    since_ms: int | None,
    report: Collected,
) -> tuple[list[Label], dict[int, int]]:
    """The last label of each frame read from start (None: every partition's beginning),
    in read order, and the position after the read."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"{CLIENT_ID}-feedback",
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=_FETCH_WAIT_MS,
    )  # fmt: skip
    try:
        ids = consumer.partitions_for_topic(topic)
        if not ids:
            raise FeedbackError(f"topic {topic} does not exist (framewire topics create)")
        partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        start = _drop_past_the_end(consumer, partitions, start or {}, report)
        consumer.assign(partitions)
        first = consumer.beginning_offsets(partitions)
        for tp in partitions:
            saved = start.get(tp.partition)
            if saved is None or saved < first[tp]:
                if saved is not None:  # retention deleted labels no collect had read
                    report.lost_to_retention += first[tp] - saved
                consumer.seek(tp, first[tp])
            else:
                consumer.seek(tp, saved)
        latest: dict[str, Label] = {}
        for record in _read_to_end(consumer, partitions, topic):
            try:
                feedback = Feedback.from_json(record.value)
            except SchemaError:
                report.invalid += 1
                continue
            if since_ms is not None and feedback.ts < since_ms:
                report.before_since += 1
                continue
            report.labels_read += 1
            if feedback.frame_id in latest:
                report.superseded += 1
                del latest[feedback.frame_id]  # re-insert: read order is the last label's
            latest[feedback.frame_id] = Label(feedback, record.partition, record.offset)
        end = {tp.partition: consumer.position(tp) for tp in partitions}
    finally:
        consumer.close()
    return list(latest.values()), end


def _drop_past_the_end(consumer: KafkaConsumer, partitions: list[TopicPartition],
                       saved: dict[int, int], report: Collected) -> dict[int, int]:  # fmt: skip
    """The saved positions, less those past their partition's end: the topic was deleted
    and made again (a restarted development stack, say) and holds new labels from offset 0,
    which a saved position from the old topic would skip. Those partitions are read from
    their beginning. The broker's end offsets (one request) clear almost every partition;
    only a position past what it answers, which the embedded broker's short answer allows
    by up to a batch, is checked by reading."""
    kept = dict(saved)
    answered = consumer.end_offsets(partitions)
    for tp in partitions:
        if kept.get(tp.partition, -1) > answered[tp]:
            consumer.assign([tp])  # end_offset reads with tp alone assigned
            if kept[tp.partition] > end_offset(consumer, tp):
                log.warning("feedback position past the topic's end: the topic is new; "
                            "reading it from its beginning", topic=tp.topic,
                            partition=tp.partition, saved=kept.pop(tp.partition))  # fmt: skip
                report.positions_reset += 1
    return kept


def _read_to_end(
    consumer: KafkaConsumer, partitions: list[TopicPartition], topic: str
) -> Iterator[Any]:
    near_end = consumer.end_offsets(partitions)  # a lower bound of each end (IDLE_S)
    last_new = time.monotonic()
    caught_up_at: float | None = None
    while True:
        batch = consumer.poll(timeout_ms=_POLL_MS)
        for tp in sorted(batch, key=lambda tp: tp.partition):
            yield from batch[tp]
        now = time.monotonic()
        last_new = now if batch else last_new
        if caught_up_at is None and all(
            consumer.position(tp) >= near_end[tp] for tp in partitions
        ):
            caught_up_at = now
        if caught_up_at is not None:
            if now - last_new >= IDLE_S or now - caught_up_at >= _GRACE_S:
                return
        elif now - last_new >= STALL_S:
            raise FeedbackError(f"{topic}: nothing received for {STALL_S:.0f} s before its "
                                "end; is the broker overloaded?")  # fmt: skip


# -- joining labels to frames -----------------------------------------------------------


@dataclass
class _Wanted:
    label: Label
    result: Result
    coordinates: str  # topic/partition/offset of the frame


def _join(
    settings: Settings,
    store: DatasetStore,
    client: redis.Redis,
    labels: list[Label],
    report: Collected,
) -> list[tuple[str, str, str]]:
    """(blob, label, source) per joined frame, in label order; the rest in report."""
    wanted = _with_results(client, labels, report)
    blobs: dict[str, str] = {}  # frame id -> blob
    missing: dict[str, str] = {}  # frame id -> why the frames topic did not give it
    for frame_id, got in _from_kafka(settings, wanted):
        if isinstance(got, str):
            missing[frame_id] = got
            continue
        blob = _blob(settings, store, got, wanted[frame_id], report)
        if blob is not None:
            blobs[frame_id] = blob
            report.joined_kafka += 1
    for frame_id, frame_or_reason in _from_redis(client, wanted, missing):
        want = wanted[frame_id]
        if isinstance(frame_or_reason, str):
            report.not_joined.append(_miss(want.label, "frame gone",
                                           f"{missing[frame_id]}; {frame_or_reason}"))  # fmt: skip
            continue
        blob = _blob(settings, store, frame_or_reason, want, report)
        if blob is not None:
            blobs[frame_id] = blob
            report.joined_redis += 1
    return [(blobs[w.label.feedback.frame_id], w.label.feedback.label, w.coordinates)
            for w in wanted.values() if w.label.feedback.frame_id in blobs]  # fmt: skip


def _miss(label: Label, kind: str, detail: str) -> NotJoined:
    return NotJoined(label.feedback.frame_id, label.feedback.label, kind, detail)


def _with_results(
    client: redis.Redis, labels: list[Label], report: Collected
) -> dict[str, _Wanted]:
    """frame id -> what is needed to fetch its frame, for the labels whose result says
    where the frame was read from."""
    wanted: dict[str, _Wanted] = {}
    for chunk in _chunks(labels, _REDIS_CHUNK):
        values = client.mget([result_key(label.feedback.frame_id) for label in chunk])
        for label, value in zip(chunk, values, strict=True):
            if value is None:
                report.not_joined.append(_miss(
                    label, "no result",
                    "no result in Redis (expired after FRAMEWIRE_RESULT_TTL_S, or the frame "
                    "was never processed)",
                ))  # fmt: skip
                continue
            try:
                result = Result.from_json(value)
            except SchemaError as exc:
                report.not_joined.append(_miss(label, "no coordinates", f"result: {exc}"))
                continue
            src = result.source
            if src is None:
                report.not_joined.append(_miss(label, "no coordinates",
                                               "the result names no frames-topic coordinates"))
                continue
            coordinates = f"{src.topic}/{src.partition}/{src.offset}"
            wanted[label.feedback.frame_id] = _Wanted(label, result, coordinates)
    return wanted


def _from_kafka(
    settings: Settings, wanted: dict[str, _Wanted]
) -> Iterator[tuple[str, Frame | str]]:
    """(frame id, its Frame from the frames topic, or why the topic did not give it), one
    read per needed offset, partition by partition, lazily: frames may be megabytes each."""
    by_partition: dict[tuple[str, int], dict[int, list[str]]] = {}
    for frame_id, want in wanted.items():
        src = want.result.source
        assert src is not None  # _with_results kept only these
        by_partition.setdefault((src.topic, src.partition), {}).setdefault(
            src.offset, []
        ).append(frame_id)
    if not by_partition:
        return
    fetch = fetch_config(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"{CLIENT_ID}-feedback",
        group_id=None, enable_auto_commit=False,
        # An offset no longer (or not yet) on the log resets to the end: nothing is read
        # there, instead of a read from the start.
        auto_offset_reset="latest", fetch_max_wait_ms=_FETCH_WAIT_MS,
        fetch_max_bytes=fetch["fetch_max_bytes"],
        receive_message_max_bytes=fetch["receive_message_max_bytes"],
        max_partition_fetch_bytes=_FRAME_FETCH_BYTES,
    )  # fmt: skip
    try:
        for (topic, partition), offsets in sorted(by_partition.items()):
            for offset, got in _read_offsets(consumer, topic, partition, sorted(offsets)):
                for frame_id in offsets[offset]:
                    yield frame_id, _check_frame(settings, got, frame_id, topic, partition,
                                                 offset)  # fmt: skip
    finally:
        consumer.close()


def _read_offsets(
    consumer: KafkaConsumer, topic: str, partition: int, offsets: list[int]
) -> Iterator[tuple[int, Any | str]]:
    """(offset, its record or why there is none) for each of offsets (ascending)."""
    where = f"{topic}/{partition}"
    if partition not in (consumer.partitions_for_topic(topic) or set()):
        for offset in offsets:
            yield offset, f"{where}/{offset}: no such topic or partition"
        return
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    first = consumer.beginning_offsets([tp])[tp]
    near_end = consumer.end_offsets([tp])[tp]
    got: dict[int, Any] = {}  # records a read brought beyond the one it was for
    wanted = set(offsets)
    past_end = False
    for offset in offsets:
        if offset in got:
            yield offset, got.pop(offset)
            continue
        if offset < first:
            yield offset, f"{where}/{offset}: deleted by retention (the log starts at {first})"
            continue
        if past_end:
            yield offset, f"{where}/{offset}: past the end of the partition"
            continue
        consumer.seek(tp, offset)
        record, passed, below = None, False, False
        started = last_new = time.monotonic()
        limit = IDLE_S if offset >= near_end else STALL_S
        while record is None and not passed and not below:
            now = time.monotonic()
            if now - last_new >= limit or now - started >= STALL_S:
                break
            records = consumer.poll(timeout_ms=_POLL_MS).get(tp, [])
            for r in records:
                if r.offset == offset:
                    record = r
                elif r.offset > offset:
                    passed = True  # the log goes on past it: it is not (or no longer) there
                    if r.offset in wanted:
                        got[r.offset] = r
                else:
                    # Out of range: the consumer reset to the end, which is below the offset
                    # (new frames arriving there must not keep this read going).
                    below = True
            if records:
                last_new = time.monotonic()
        if record is not None:
            yield offset, record
        elif passed:
            yield offset, f"{where}/{offset}: not on the log (compacted or deleted)"
        else:
            past_end = True  # nothing from here on: so are all the later offsets
            yield offset, f"{where}/{offset}: past the end of the partition"


def _check_frame(
    settings: Settings, record: Any, frame_id: str, topic: str, partition: int, offset: int
) -> Frame | str:
    """The record as the frame the label names, or why it is not."""
    if isinstance(record, str):
        return record
    where = f"{topic}/{partition}/{offset}"
    try:
        frame = Frame.from_record(record.key, record.value, record.headers,
                                  max_bytes=settings.max_frame_bytes)  # fmt: skip
    except SchemaError as exc:
        return f"{where}: not a frame/1 record ({exc})"
    if frame.frame_id != frame_id:
        # The offset exists but holds another frame: the topic was deleted and recreated.
        return f"{where}: holds another frame (the topic was recreated?)"
    return frame


def _from_redis(
    client: redis.Redis, wanted: dict[str, _Wanted], missing: dict[str, str]
) -> Iterator[tuple[str, Frame | str]]:
    """(frame id, its Frame from the Redis copy, or why there is none) for each missing."""
    ids = list(missing)
    for chunk in _chunks(ids, _REDIS_CHUNK):
        pipe = client.pipeline(transaction=False)
        for frame_id in chunk:
            pipe.hgetall(frame_key(frame_id))
        for frame_id, copy in zip(chunk, pipe.execute(), strict=True):
            if not copy or b"data" not in copy:
                yield frame_id, ("no Redis copy (expired after FRAMEWIRE_FRAME_COPY_TTL_S, "
                                 "or copies are off)")  # fmt: skip
                continue
            result = wanted[frame_id].result
            try:
                frame = Frame(
                    stream_id=result.stream_id, seq=result.seq, data=copy[b"data"],
                    encoding=copy.get(b"encoding", b"").decode(), frame_id=frame_id,
                    captured_at_ms=result.captured_at,
                    width=_int_or_none(copy.get(b"width")),
                    height=_int_or_none(copy.get(b"height")),
                )  # fmt: skip
            except (SchemaError, ValueError) as exc:
                yield frame_id, f"the Redis copy is unusable ({exc})"
                continue
            yield frame_id, frame


def _int_or_none(raw: bytes | None) -> int | None:
    return int(raw) if raw else None


def _blob(
    settings: Settings, store: DatasetStore, frame: Frame, want: _Wanted, report: Collected
) -> str | None:
    if len(frame.data) > settings.max_frame_bytes:
        report.not_joined.append(_miss(want.label, "unusable frame",
                                       f"{len(frame.data)} bytes, above "
                                       "FRAMEWIRE_MAX_FRAME_BYTES"))  # fmt: skip
        return None
    try:
        data = image_file(frame, settings.max_frame_pixels)
    except UnusableFrame as exc:
        report.not_joined.append(_miss(want.label, "unusable frame", str(exc)))
        return None
    return store.put_blob(data)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- where a dataset's collects stopped -------------------------------------------------


class _Positions:
    """<state_dir>/feedback/<dataset>.json: {topic: {partition: next offset}}."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.path = folder / f"{name}.json"
        self.name = name

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One collect of a dataset at a time: two would both save a position."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f".{self.name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, topic: str) -> dict[int, int]:
        if not self.path.exists():
            return {}
        try:
            saved = json.loads(self.path.read_text()).get(topic, {})
            return {int(p): int(o) for p, o in saved.items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise FeedbackError(f"{self.path}: not a feedback position file ({exc}); "
                                "remove it to collect every label again") from None  # fmt: skip

    def save(self, topic: str, end: dict[int, int]) -> None:
        data: dict[str, Any] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except ValueError:
                data = {}
        data[topic] = {str(p): o for p, o in sorted(end.items())}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
