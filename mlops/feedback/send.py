"""Putting labels on the feedback topic from Python (`framewire feedback send`).

The gateway's POST /v1/feedback does the same with its own long-lived producer
(producers/gateway/feedback.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis
from kafka import KafkaProducer

from foundation.kafka import partitions_of, producer_config
from foundation.rediskeys import frame_key
from foundation.settings import Settings
from mlops.feedback.collector import FeedbackError
from schemas import Feedback

_SEND_TIMEOUT_S = 30.0


def send_feedback(settings: Settings, items: list[Feedback]) -> list[str]:
    """Publish items to the feedback topic and wait for the broker's acknowledgement;
    `topic/partition/offset` of each. FeedbackError when the topic does not exist."""
    topic = settings.feedback_topic
    # Checked first: a producer would wait max_block_ms for a topic that never comes.
    if not partitions_of(settings, topic):
        raise FeedbackError(f"topic {topic} does not exist (framewire topics create)")
    producer = KafkaProducer(**producer_config(
        settings, client_id="framewire-feedback", linger_ms=0,
        max_block_ms=int(_SEND_TIMEOUT_S * 1000),
    ))  # fmt: skip
    try:
        futures = []
        for item in items:
            key, value, _ = item.to_record()
            futures.append(producer.send(topic, key=key, value=value))
        where = []
        for future in futures:
            meta = future.get(timeout=_SEND_TIMEOUT_S)
            where.append(f"{meta.topic}/{meta.partition}/{meta.offset}")
    finally:
        producer.close(timeout=5)
    return where


def keep_frame_copies(settings: Settings, frame_ids: Iterable[str]) -> int:
    """Extend the Redis copies of labelled frames to the result's TTL, so a collect that
    runs later still finds them when the frames topic no longer has them; how many copies
    existed. Raises redis.RedisError."""
    if settings.frame_copy_ttl_s <= 0:
        return 0  # the workers keep no copies
    keep_s = max(settings.result_ttl_s, settings.frame_copy_ttl_s)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        pipe = client.pipeline(transaction=False)
        for frame_id in dict.fromkeys(frame_ids):
            pipe.expire(frame_key(frame_id), keep_s)  # no copy (any more): nothing happens
        return sum(bool(done) for done in pipe.execute())
    finally:
        client.close()
