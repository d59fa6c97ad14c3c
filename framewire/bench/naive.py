"""The naive baseline: what a first attempt at this service looks like.

One frame at a time, in one thread: poll one record, decode it, run the model on a batch
of one, SET the result in Redis, send it to the results topic and wait for the ack,
commit the offset, next. No batching, no overlap between stages. It runs in this process
on frames pre-published to a topic of its own, with the same model, device and decoder
as the pipeline, and is timed from its first result to its last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from foundation.kafka import group_timing_ms, producer_config
from foundation.rediskeys import result_key
from foundation.settings import Settings
from schemas import Latency, ModelRef, Prediction, Result, Source, now_ms
from workers.decode import FrameDecoder
from workers.engine import InferenceEngine
from workers.work import WorkItem

_JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class NaiveRun:
    fps: float
    frames: int


def run_naive(settings: Settings, engine: InferenceEngine, frames: int,
              max_seconds: float) -> NaiveRun:  # fmt: skip
    """Process up to `frames` frames (or for max_seconds) one by one; frames/s."""
    session_ms, heartbeat_ms = group_timing_ms(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
        fetch_max_wait_ms=10,
        # The worker's session timeout: the join (about half of it against the embedded
        # broker) is not part of the figure, but the bench waits for it all the same.
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=heartbeat_ms,
    )
    producer = KafkaProducer(**producer_config(settings, linger_ms=0))
    client = redis.Redis.from_url(settings.redis_url)
    decoder = FrameDecoder(settings.max_frame_bytes, settings.max_frame_pixels)
    spec, card = engine.card.input, engine.card
    done, started, deadline = 0, 0.0, time.monotonic() + _JOIN_TIMEOUT_S
    try:
        consumer.subscribe([settings.frames_topic])
        while done < frames:
            polled = consumer.poll(timeout_ms=100, max_records=1)
            now = time.monotonic()
            if not polled:
                if now > deadline:
                    break  # nothing more came (or the group never joined)
                continue
            ((tp, (record,)),) = polled.items()
            if done == 0:
                started = now  # the group join is not part of the figure
            item = decoder.decode(WorkItem(record, 0, time.time()), spec)
            if not item.ok or item.frame is None or item.image is None:
                raise RuntimeError(f"naive baseline: frame rejected: {item.error}")
            launched = time.time()
            predictions = engine.submit(item.image[None]).result()[0]
            completed = now_ms()
            result = Result(
                frame_id=item.frame.frame_id,
                stream_id=item.frame.stream_id,
                seq=item.frame.seq,
                captured_at=item.frame.captured_at_ms,
                completed_at=completed,
                model=ModelRef(card.name, card.version),
                task=card.task,
                predictions=[Prediction(p["label"], p["score"]) for p in predictions],
                latency_ms=Latency(0.0, 0.0, 0.0, (time.time() - launched) * 1000, 0.0),
                batch_size=1,
                source=Source(record.topic, record.partition, record.offset),
            ).to_json()
            client.set(result_key(item.frame.frame_id), result, ex=settings.result_ttl_s)
            producer.send(settings.results_topic, key=record.key, value=result).get(30)
            consumer.commit({TopicPartition(tp.topic, tp.partition):
                             OffsetAndMetadata(record.offset + 1, "", -1)})  # fmt: skip
            done += 1
            deadline = time.monotonic() + 5.0  # between frames, a short idle ends the run
            if time.monotonic() - started > max_seconds:
                break
        elapsed = time.monotonic() - started
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=10)
        client.close()
    if done < 2:
        raise RuntimeError("naive baseline: no frames were consumed")
    return NaiveRun(fps=done / elapsed, frames=done)
