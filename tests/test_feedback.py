"""The feedback loop: labels in (gateway, CLI), joined to their frames (frames topic or the
worker's Redis copy), out as dataset versions. Real broker, Redis and one real worker."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import redis
from kafka import KafkaProducer

from foundation.rediskeys import frame_key, result_key
from foundation.settings import Settings
from framewire.worker_process import WorkerProcess
from mlops.data.store import DatasetStore
from producers.gateway import create_app, gateway_state
from producers.gateway.feedback import MAX_FEEDBACK_BODY_BYTES, MAX_FEEDBACK_ITEMS
from schemas import Feedback, Frame
from tests.cli_helpers import invoke
from tests.kafka_helpers import read_records
from tests.worker_harness import publish, synthetic_frames, wait_for_results
from workers.sinks import RedisResult, RedisSink

# An offset no partition reaches in a test.
GONE_OFFSET = 10**9


def _collect(settings: Settings, *flags: str) -> dict:
    result = invoke(settings, "feedback", "collect", "--dataset", "fb", "--json", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _label(settings: Settings, frame_id: str, label: str, *flags: str) -> None:
    result = invoke(settings, "feedback", "send", frame_id, label, *flags)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"sent: frame {frame_id} is {label!r}"), result.output


def _point_result_at(client: redis.Redis, frame_id: str, topic: str, partition: int,
                     offset: int) -> None:  # fmt: skip
    result = json.loads(client.get(result_key(frame_id)))
    result["source"] = {"topic": topic, "partition": partition, "offset": offset}
    client.set(result_key(frame_id), json.dumps(result), keepttl=True)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_labels_reach_the_dataset_from_the_frames_topic_and_from_redis(topics, tmp_path):
    """Six frames go through a real worker; then each label meets a different fate.

    The embedded broker cannot be made to lose a frame the way Apache Kafka does (it applies
    no retention and refuses DeleteRecords, shared/ENVIRONMENT.md), so "the topic no longer
    has it" is made by editing the frame's result in Redis, which is where the collector
    learns the frame's coordinates:
    - `in_kafka`: untouched, joined from the frames topic;
    - `only_redis`: its result points past the end of its partition, as for a frame the
      topic has dropped; joined from the worker's Redis copy;
    - `recreated`: its result points at another frame's record, as after the frames topic
      was deleted and recreated (offsets reused); the collector sees the frame id differ
      and takes the Redis copy;
    - `gone`: past the end and its Redis copy deleted (expired): not joined, said why;
    - an unknown frame id: no result, not joined.
    Then: a second collect adds nothing, a relabel replaces a label, and re-reading every
    label (--since) makes no new version.
    """
    settings = topics.replace(max_batch=8, frame_copy_ttl_s=60)
    frames = synthetic_frames(6, streams=2)
    worker = WorkerProcess(settings, tmp_path / "logs")
    try:
        worker.wait_ready()
        publish(settings, frames)
        results = wait_for_results(settings, [f.frame_id for f in frames], timeout_s=60)
    finally:
        assert worker.stop() == 0
    client = redis.Redis.from_url(settings.redis_url)
    in_kafka, only_redis, recreated, gone = frames[:4]

    # The worker kept a copy of every frame, with the setting's TTL.
    for frame in frames:
        copy = client.hgetall(frame_key(frame.frame_id))
        size = {b"width": str(frame.width).encode(), b"height": str(frame.height).encode()}
        assert copy == {b"data": frame.data, b"encoding": b"jpeg", **size}  # size: hints
        assert 0 < client.ttl(frame_key(frame.frame_id)) <= 60

    src = results[in_kafka.frame_id]["source"]
    _point_result_at(client, only_redis.frame_id, src["topic"], src["partition"], GONE_OFFSET)
    _point_result_at(client, recreated.frame_id, src["topic"], src["partition"], src["offset"])
    _point_result_at(client, gone.frame_id, src["topic"], src["partition"], GONE_OFFSET + 1)
    client.delete(frame_key(gone.frame_id))

    _label(settings, in_kafka.frame_id, "checked-a", "--box", "1,2,30,40", "--note", "clear")
    for frame, label in ((only_redis, "checked-b"), (recreated, "checked-c"),
                         (gone, "checked-d"), (None, "checked-e")):  # fmt: skip
        _label(settings, frame.frame_id if frame else "no-such-frame", label)
    # A label through framewire keeps its frame's copy for the result's TTL, not 60 s.
    assert client.ttl(frame_key(only_redis.frame_id)) > 60
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.feedback_topic, key=b"x", value=b"not feedback").get(10)
    producer.close()

    first = _collect(settings)
    assert (first["labels_read"], first["invalid"]) == (5, 1)
    assert (first["joined_kafka"], first["joined_redis"]) == (1, 2)
    missed = {m["frame_id"]: m for m in first["not_joined"]}
    assert set(missed) == {gone.frame_id, "no-such-frame"}
    assert missed[gone.frame_id]["kind"] == "frame gone"
    assert "past the end" in missed[gone.frame_id]["detail"]
    assert "no Redis copy" in missed[gone.frame_id]["detail"]
    assert missed["no-such-frame"]["kind"] == "no result"
    assert first["created"] and first["items"] == 3
    store = DatasetStore.for_settings(settings)
    version = store.resolve("fb@latest")
    assert version.version == first["version"]
    labels = {item.blob: item.label for item in version.items}
    assert labels == {_sha(in_kafka.data): "checked-a", _sha(only_redis.data): "checked-b",
                      _sha(recreated.data): "checked-c"}  # fmt: skip
    for item in version.items:  # the bytes are the frames' own, wherever they came from
        assert _sha(store.read_blob(item.blob)) == item.blob
    coordinates = {item.blob: item.source for item in version.items}
    assert coordinates[_sha(in_kafka.data)] == f"{src['topic']}/{src['partition']}/{src['offset']}"

    # Nothing new on the topic: the position is remembered, no new version.
    again = _collect(settings)
    assert (again["labels_read"], again["created"], again["version"]) == (0, False,
                                                                            first["version"])

    # A relabel replaces the frame's label in a new version; the rest stays.
    # With --retrain the collect also queues a retrain of the model (on a Redis database of
    # its own here, where no retrain worker of another test can take it).
    _label(settings, in_kafka.frame_id, "checked-a2")
    broker = settings.redis_url.rsplit("/", 1)[0] + "/7"
    out = invoke(settings, "feedback", "collect", "--dataset", "fb", "--json", "--retrain",
                 "shapes", "--min-labels", "1", env={"FRAMEWIRE_CELERY_BROKER_URL": broker})
    assert out.exit_code == 0, out.output
    relabelled = json.loads(out.output.strip().splitlines()[-1])
    assert relabelled["retrain_task"] and redis.Redis.from_url(broker).llen("retrain") == 1
    assert relabelled["labels_read"] == 1 and relabelled["created"]
    assert relabelled["parent"] == first["version"] and relabelled["items"] == 3
    labels[_sha(in_kafka.data)] = "checked-a2"
    assert {i.blob: i.label for i in store.resolve("fb@latest").items} == labels

    # Every label again: the last label of each frame is what the dataset has already.
    everything = _collect(settings, "--since", "1h")
    assert (everything["labels_read"], everything["superseded"]) == (6, 1)
    assert (everything["created"], everything["version"]) == (False, relabelled["version"])

    summary = invoke(settings, "feedback", "collect", "--dataset", "fb")
    assert summary.exit_code == 0, summary.output
    assert "0 labels read" in summary.output and "unchanged" in summary.output
    assert len(summary.output.splitlines()) <= 24  # one screen

    # A saved position past a partition's end means the topic was made again (a restarted
    # development stack): that partition is read from its beginning, not skipped.
    positions = settings.state_dir / "feedback" / "fb.json"
    saved = json.loads(positions.read_text())
    saved[settings.feedback_topic] = {p: 10**6 for p in saved[settings.feedback_topic]}
    positions.write_text(json.dumps(saved))
    reset = _collect(settings)
    assert reset["positions_reset"] == len(saved[settings.feedback_topic])
    assert (reset["labels_read"], reset["superseded"], reset["created"]) == (6, 1, False)


def test_the_worker_sink_copies_frames_only_when_asked(settings):
    client = redis.Redis.from_url(settings.redis_url)
    raw = Frame("fb-sink", 1, bytes(2 * 3 * 3), encoding="raw-rgb8", width=2, height=3)
    jpeg = Frame("fb-sink", 2, b"\xff\xd8jpeg\xff\xd9")
    rows = [RedisResult(f.frame_id, f.stream_id, f.seq, b'{"seq":%d}' % f.seq, None, f)
            for f in (raw, jpeg)]  # fmt: skip
    RedisSink(client, 60, 10, 60, frame_copy_ttl_s=0).write(rows)
    assert not client.exists(frame_key(raw.frame_id), frame_key(jpeg.frame_id))
    RedisSink(client, 60, 10, 60, frame_copy_ttl_s=30).write(rows)
    assert client.hgetall(frame_key(raw.frame_id)) == {
        b"data": raw.data, b"encoding": b"raw-rgb8", b"width": b"2", b"height": b"3"
    }
    assert client.hgetall(frame_key(jpeg.frame_id)) == {b"data": jpeg.data, b"encoding": b"jpeg"}
    assert 0 < client.ttl(frame_key(jpeg.frame_id)) <= 30
    assert client.get(result_key(jpeg.frame_id)) == b'{"seq":2}'
    # A row without a frame (an error result) gets no copy.
    other = Frame("fb-sink", 3, b"x")
    RedisSink(client, 60, 10, 60, frame_copy_ttl_s=30).write(
        [RedisResult(other.frame_id, other.stream_id, 3, b'{"seq":3}', None)]
    )
    assert not client.exists(frame_key(other.frame_id))


KEY = {"Authorization": "Bearer fb-key"}


def test_gateway_accepts_feedback_and_refuses_bad_input_with_json_errors(topics):
    app = create_app(topics.replace(api_keys="fb-key"))
    http = app.test_client()
    client = redis.Redis.from_url(topics.redis_url)
    client.hset(frame_key("gw-1"), mapping={"data": b"x", "encoding": "jpeg"})
    client.expire(frame_key("gw-1"), 30)
    try:
        one = http.post("/v1/feedback", json={"frame_id": "gw-1", "label": "cat"}, headers=KEY)
        assert one.status_code == 202, one.json
        assert one.json == {"accepted": 1, "topic": topics.feedback_topic}
        assert client.ttl(frame_key("gw-1")) > 30  # the labelled frame's copy is kept
        many = http.post("/v1/feedback", headers=KEY, json=[
            {"frame_id": "gw-2", "label": "dog", "source": "operator:bob", "ts": 5},
            {"frame_id": "gw-3", "label": "car", "box": [1, 2, 3, 4], "note": "partly hidden"},
        ])  # fmt: skip
        assert many.status_code == 202 and many.json["accepted"] == 2

        bad = [
            ({}, {"json": {"frame_id": "f", "label": "x"}}, 401, "unauthorized", None),
            ({"Authorization": "Bearer nope"}, {"json": {"frame_id": "f", "label": "x"}},
             403, "forbidden", None),
            (KEY, {"data": b"frame_id=f", "content_type": "text/plain"},
             415, "unsupported_media_type", None),
            (KEY, {"data": b'{"frame_id": ', "content_type": "application/json"},
             400, "malformed_json", None),
            (KEY, {"json": "cat"}, 400, "malformed_json", None),
            (KEY, {"json": []}, 400, "no_feedback", None),
            (KEY, {"json": {"frame_id": "f", "label": ""}}, 400, "bad_field", "label"),
            (KEY, {"json": {"label": "x"}}, 400, "bad_field", "frame_id"),
            (KEY, {"json": {"frame_id": "f", "label": "x", "ts": -1}}, 400, "bad_field", "ts"),
            (KEY, {"json": [{"frame_id": "a", "label": "x"}, {"frame_id": "b", "lable": "x"}]},
             400, "bad_field", "[1].lable"),
            (KEY, {"json": [{"frame_id": "a", "label": "x"}, {"frame_id": "b", "label": "x",
                                                             "box": [1, 2]}]},
             400, "bad_field", "[1].box"),
            (KEY, {"json": [{"frame_id": "a", "label": "x"}, 7]}, 400, "bad_field", "[1]"),
            (KEY, {"json": [{"frame_id": "a", "label": "x"}] * (MAX_FEEDBACK_ITEMS + 1)},
             413, "too_many_items", None),
            (KEY, {"json": {"frame_id": "a", "label": "x",
                            "note": "n" * MAX_FEEDBACK_BODY_BYTES}},
             413, "body_too_large", None),
        ]  # fmt: skip
        for headers, kwargs, status, code, field in bad:
            response = http.post("/v1/feedback", headers=headers, **kwargs)
            assert response.status_code == status, (code, response.json)
            error = response.json["error"]
            assert error["code"] == code and error["message"], error
            assert error.get("field") == field, error
            if field and field.startswith("[1]"):
                assert error["index"] == 1 and error["message"].startswith("[1]"), error
    finally:
        gateway_state(app).resources.close()
    records = read_records(topics, topics.feedback_topic, idle_s=1.0, timeout_s=10)
    got = sorted((r.key, Feedback.from_json(r.value)) for r in records)
    assert [key for key, _ in got] == [b"gw-1", b"gw-2", b"gw-3"]  # refused: nothing sent
    gw1, gw2, gw3 = (f for _, f in got)
    assert (gw1.label, gw1.source) == ("cat", "gateway")
    assert abs(gw1.ts - time.time() * 1000) < 60_000
    assert (gw2.source, gw2.ts) == ("operator:bob", 5)
    assert (gw3.box, gw3.note) == ([1.0, 2.0, 3.0, 4.0], "partly hidden")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("send", "f-1", "cat", "--box", "1,2,3"), "--box: expected x1,y1,x2,y2"),
        (("send", "f-1", "cat", "--box", "5,0,1,1"), "x1 < x2 and y1 < y2"),
        (("send", "f-1", ""), "label must not be empty"),
        (("send", "f" * 201, "cat"), "at most 200 characters"),
        (("send", "f-1", "cat"), "does not exist (framewire topics create)"),
        (("collect", "--dataset", "bad name!"), "dataset name 'bad name!'"),
        (("collect", "--dataset", "fb", "--since", "yesterday"), "--since: expected"),
        (("collect", "--dataset", "fb"), "does not exist (framewire topics create)"),
    ],
)
def test_cli_errors_are_one_line(settings, args, text):
    # `settings` has no topics: the sends and collects that get past their checks say so.
    result = invoke(settings, "feedback", *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert text in result.output, result.output
