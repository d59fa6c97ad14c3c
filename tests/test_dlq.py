"""`framewire dlq list|show|replay` against the session broker.

DLQ records are written as a worker writes them (schemas.dlq.dead_letter); the CLI runs
in this process. No workers and no consumer groups: every read is assign() + seek.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from kafka import KafkaProducer

from foundation.kafka import producer_config
from foundation.settings import Settings
from framewire.dlq import parse_id, parse_since, reason_group
from schemas import Frame
from schemas.dlq import DLQ_HEADERS, H_ERROR, H_INCOMPLETE, dead_letter
from tests.cli_helpers import invoke
from tests.kafka_helpers import read_records

HOUR_MS = 3_600_000


def run(settings: Settings, *args: str) -> tuple[int, str]:
    """`framewire dlq ARGS` in this process; (exit code, output with stderr)."""
    result = invoke(settings, "dlq", *args)
    return result.exit_code, result.output


def frame(stream: str, seq: int, size: int = 64) -> Frame:
    return Frame(stream, seq, bytes([seq % 256]) * size)


class Writer:
    """Sends frames and DLQ records; returns where each landed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = KafkaProducer(**producer_config(settings, linger_ms=0))

    def original(self, f: Frame) -> tuple[str, int, int]:
        key, value, headers = f.to_record()
        meta = self.producer.send(
            self.settings.frames_topic, key=key, value=value, headers=headers
        ).get(timeout=10)
        return meta.topic, meta.partition, meta.offset

    def dead(
        self,
        f: Frame,
        source: tuple[str, int, int],
        reason: str,
        stage: str,
        max_value_bytes: int = 1_000_000,
        timestamp_ms: int | None = None,
    ) -> str:
        key, value, headers = f.to_record()
        record = dead_letter(key, value, headers, source, reason, stage, "w1", max_value_bytes)
        meta = self.producer.send(
            self.settings.dlq_topic,
            key=record.key,
            value=record.value,
            headers=record.headers,
            timestamp_ms=timestamp_ms,
        ).get(timeout=10)
        return f"{meta.partition}:{meta.offset}"

    def close(self) -> None:
        self.producer.close(timeout=10)


@pytest.fixture
def writer(topics: Settings):
    w = Writer(topics)
    yield w
    w.close()


def test_list_show_group_and_filter(topics: Settings, writer: Writer) -> None:
    now = int(time.time() * 1000)
    fake = (topics.frames_topic, 0, 7)
    seq_a = writer.dead(frame("cam-a", 1), fake, "fw-seq: header fw-seq must be a "
                        "non-negative decimal integer, got '-1'", "schema")  # fmt: skip
    seq_b = writer.dead(frame("cam-b", 2), fake, "fw-seq: header fw-seq must be a "
                        "non-negative decimal integer, got 'x'", "schema")  # fmt: skip
    old = writer.dead(frame("cam-a", 3), fake, "ValueError: image does not decode", "decode",
                      timestamp_ms=now - 3 * HOUR_MS)  # fmt: skip

    code, out = run(topics, "list")
    assert code == 0, out
    lines = out.splitlines()
    for record_id, stream in ((seq_a, "cam-a"), (seq_b, "cam-b"), (old, "cam-a")):
        line = next(line for line in lines if line.startswith(record_id + " "))
        assert stream in line and "64 B" in line and "yes" in line
        assert f"{topics.frames_topic}/0/7" in line
    assert "3 dead letters, by stage and reason:" in out
    assert re.search(r"^\s+2\s+schema\s+fw-seq$", out, re.M), out
    assert re.search(r"^\s+1\s+decode\s+ValueError$", out, re.M), out

    code, out = run(topics, "list", "--json", "--reason", "FW-SEQ")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["id"] for r in rows) == sorted([seq_a, seq_b])
    assert {r["stream_id"] for r in rows} == {"cam-a", "cam-b"}
    assert all(r["complete"] and r["original_size"] == 64 and r["stage"] == "schema"
               for r in rows)  # fmt: skip

    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000 - 3600))
    for option in ("1h", since):
        code, out = run(topics, "list", "--json", "--since", option)
        assert code == 0, out
        assert sorted(json.loads(line)["id"] for line in out.splitlines()) == sorted(
            [seq_a, seq_b]
        ), option

    code, out = run(topics, "show", seq_a)
    assert code == 0, out
    assert "reason:   fw-seq: header fw-seq must be" in out
    assert "fw-stream-id: cam-a" in out and "fw-schema: frame/1" in out
    assert f"fw-error-source: {topics.frames_topic}/0/7" in out
    assert "fw-original-sha256: " in out and "(matches the carried value)" in out
    assert "key:      cam-a" in out and "value:    64 bytes carried of 64" in out


def test_replay_sends_originals_and_skips_what_is_gone(topics: Settings, writer: Writer) -> None:
    small = frame("cam-s", 1)
    big = frame("cam-b", 2, size=50_000)
    gone = frame("cam-g", 3, size=5_000)
    big_at = writer.original(big)  # the frames topic still has it
    small_id = writer.dead(small, (topics.frames_topic, 0, 0), "fw-seq: bad", "schema")
    big_id = writer.dead(big, big_at, "value: too large", "schema", max_value_bytes=1_000)
    gone_id = writer.dead(gone, (topics.frames_topic, big_at[1], 999), "value: too large",
                          "schema", max_value_bytes=1_000)  # fmt: skip
    # Coordinates of another record: found, but not this original.
    other_id = writer.dead(gone, big_at, "value: too large", "decode", max_value_bytes=1_000)

    code, out = run(topics, "show", big_id)
    assert code == 0, out
    assert "1000 bytes carried of 50000" in out and "not checked: the value was cut" in out
    assert f"{H_INCOMPLETE}: value" in out

    code, out = run(topics, "replay", "--dry-run")
    assert code == 1, out
    assert f"would replay {small_id} frame {small.frame_id} (carried)" in out
    assert f"would replay {big_id} frame {big.frame_id} (fetched from " in out
    assert f"skipped {gone_id}: incomplete (value cut) and the original" in out
    assert (
        f"skipped {other_id}: the record at {'/'.join(map(str, big_at))} is not the "
        "original (SHA-256 differs)" in out
    )
    assert "would_replay=2 skipped=2" in out

    code, out = run(topics, "replay", "--stage", "schema", "--id", small_id, "--id", big_id)
    assert code == 0, out
    assert "replayed=2 skipped=0" in out
    records = read_records(topics, expected=3, idle_s=1.0)
    replayed = {r.key: r for r in records if (r.partition, r.offset) != big_at[1:]}
    assert set(replayed) == {b"cam-s", b"cam-b"}, records
    for f in (small, big):
        record = replayed[f.stream_id.encode()]
        assert record.value == f.data
        assert list(record.headers) == f.to_record().headers
        assert not {name for name, _ in record.headers} & set(DLQ_HEADERS)

    code, out = run(topics, "replay", "--reason", "too large", "--stage", "schema")
    assert code == 1, out
    assert f"replayed {big_id}" in out and f"skipped {gone_id}" in out
    assert out.strip().splitlines()[-1] == "Error: 1 selected record(s) not replayed (see above)"


def test_nothing_selected_and_unknown_ids(topics: Settings, writer: Writer) -> None:
    writer.dead(frame("cam", 1), (topics.frames_topic, 0, 0), "fw-seq: bad", "schema")
    code, out = run(topics, "list", "--stage", "decode")
    assert code == 0 and "no dead letters on" in out and "selected" in out, out
    code, out = run(topics, "replay", "--id", "1:999")
    assert code == 1 and "skipped 1:999: no such DLQ record" in out, out
    code, out = run(topics, "show", "0:999")
    assert code == 1 and out.strip() == f"Error: no DLQ record 0:999 on {topics.dlq_topic}"


@pytest.mark.parametrize(
    "args",
    [("list", "--since", "yesterday"), ("replay", "--since", "10 parsecs"),
     ("replay", "--id", "3-4"), ("show", "x")],
)  # fmt: skip
def test_bad_input_is_one_line(settings: Settings, args: tuple[str, ...]) -> None:
    # No topics needed: input is checked before anything is read.
    code, out = run(settings, *args)
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    assert out.startswith("Error: ") and "Traceback" not in out


def test_missing_topic_is_one_line(settings: Settings) -> None:
    code, out = run(settings, "list")
    assert code == 1, out
    assert out.strip() == (
        f"Error: topic {settings.dlq_topic} does not exist (create it: framewire topics create)"
    )


def test_parsing_and_grouping() -> None:
    now = 1_700_000_000.0
    assert parse_since("10m", now) == (now - 600) * 1000
    assert parse_since("1.5h", now) == (now - 5400) * 1000
    assert parse_since("2d", now) == (now - 172_800) * 1000
    assert parse_since("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_since("2023-11-14T22:13:20") == 1_700_000_000_000  # UTC, as list prints
    assert parse_since("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(ValueError, match="--since"):
        parse_since("-5m")
    assert parse_id("3:17") == (3, 17)
    with pytest.raises(ValueError):
        parse_id("3:")
    assert reason_group("poison: 3 deliveries") == "poison"
    assert reason_group("value: record value is 12 bytes") == "value"
    assert reason_group("missing required header fw-seq") == "missing required header fw-seq"
    opencv = (
        "OpenCV(5.0.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:1291: error: "
        "(-215:Assertion failed) !buf.empty() in function 'imdecode_'"
    )
    assert reason_group(opencv) == "OpenCV (-215:Assertion failed)"
    assert reason_group("x" * 80).endswith("…") and len(reason_group("x" * 80)) == 40
    assert H_ERROR in DLQ_HEADERS
