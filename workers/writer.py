"""The sink stage: turn finished batches into result/1 and write them everywhere.

A frame counts as finished (its offset may be committed) only once its result is in
Redis and acknowledged by the results topic, or its record is acknowledged by the DLQ.
Writes retry with backoff while Redis or Kafka are down; meanwhile the queues fill and
the poll thread pauses the partitions, so nothing piles up without bound.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import redis
from kafka.errors import KafkaError

from framewire.log import get_logger
from schemas import Event, Latency, ModelRef, Prediction, Result, Source
from schemas.frame import now_ms
from workers import metrics
from workers.device import FinishedBatch, Rejected
from workers.sinks import GaveUp, KafkaSink, RedisResult, RedisSink, with_retries
from workers.threads import name_os_thread
from workers.work import WorkItem

log = get_logger(__name__)

_REDIS_ERRORS = (redis.RedisError, OSError)
_KAFKA_ERRORS = (KafkaError,)


class ResultWriter(threading.Thread):
    def __init__(
        self,
        finished: queue.Queue,
        redis_sink: RedisSink,
        kafka_sink: KafkaSink,
        on_done: Callable[[list[WorkItem]], None],
        worker: str,
    ) -> None:
        super().__init__(name="framewire-writer", daemon=True)
        self.finished = finished
        self.redis_sink = redis_sink
        self.kafka_sink = kafka_sink
        self.on_done = on_done
        self.worker = worker
        self.abort = threading.Event()  # set on a hard stop: give up retrying
        self._stop_event = threading.Event()
        self.counts = {"ok": 0, "error": 0, "dlq": 0, "batches": 0, "batched_frames": 0}

    def stop(self, abort: bool = False) -> None:
        self._stop_event.set()
        if abort:
            self.abort.set()

    def run(self) -> None:
        name_os_thread()
        while not (self._stop_event.is_set() and self.finished.empty()):
            try:
                job = self.finished.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                if isinstance(job, FinishedBatch):
                    self._write_batch(job)
                else:
                    self._write_rejected(job)
            except GaveUp as exc:
                log.error("stopped before writing; frames will be redelivered", error=str(exc))
                continue
            self.on_done(job.items)

    def _write_batch(self, batch: FinishedBatch) -> None:
        completed = now_ms()
        results = [
            self._result(item, preds, batch, completed)
            for item, preds in zip(batch.items, batch.predictions, strict=True)
        ]
        self._write(results, [item.frame.reply_to for item in batch.items if item.frame])
        self._observe(batch, results)
        self.kafka_sink.send_event(
            Event(
                "batch",
                self.worker,
                {
                    "size": len(batch.items),
                    "model": f"{batch.model_name}:{batch.model_version}",
                    "queue_ms": _mean(r.latency_ms.queue for r in results),
                    "decode_ms": _mean(r.latency_ms.decode for r in results),
                    "inference_ms": round(batch.inference_ms, 3),
                },
            )
        )

    def _write_rejected(self, rejected: Rejected) -> None:
        futures = [self.kafka_sink.send_dead_letter(item) for item in rejected.items]
        with_retries(
            lambda: self.kafka_sink.wait(futures), "dlq", _KAFKA_ERRORS, self.abort
        )
        # A frame whose headers were valid still gets an error result, so a client
        # waiting for it (the gateway) hears why instead of timing out.
        parsed = [item for item in rejected.items if item.frame is not None]
        if parsed:
            self._write(
                [_error_result(item) for item in parsed],
                [item.frame.reply_to for item in parsed if item.frame],
            )
        for item in rejected.items:
            metrics.FRAMES.labels("dlq").inc()
            self.counts["dlq"] += 1
            log.warning(
                "frame rejected",
                stage=item.error_stage,
                reason=item.error,
                partition=item.record.partition,
                offset=item.record.offset,
                **item.log_ids(),
            )
            self.kafka_sink.send_event(
                Event("error", self.worker, {"stage": item.error_stage, "reason": item.error})
            )

    def _write(self, results: list[Result], reply_to: list[str | None]) -> None:
        """Results topic and Redis, both retried until written. The Kafka sends go first
        and are awaited last, so the two round trips overlap."""
        encoded = [(r, r.to_json()) for r in results]
        pairs = [(r.stream_id.encode(), data) for r, data in encoded]
        in_flight = [self.kafka_sink.send_results(pairs)]
        rows = [
            RedisResult(r.frame_id, r.stream_id, r.seq, data, reply)
            for (r, data), reply in zip(encoded, reply_to, strict=True)
        ]
        with_retries(lambda: self.redis_sink.write(rows), "redis", _REDIS_ERRORS, self.abort)

        def send_and_wait() -> None:
            # The first try waits for the sends already in flight; a retry sends again.
            futures = in_flight.pop() if in_flight else self.kafka_sink.send_results(pairs)
            self.kafka_sink.wait(futures)

        with_retries(send_and_wait, "results", _KAFKA_ERRORS, self.abort)

    def _result(
        self, item: WorkItem, preds: list[dict], batch: FinishedBatch, completed: int
    ) -> Result:
        frame = item.frame
        assert frame is not None
        record = item.record
        captured = frame.captured_at_ms
        latency = Latency(
            queue=max(0.0, item.decode_started * 1000 - captured),
            decode=(item.decoded_at - item.decode_started) * 1000,
            batch_wait=max(0.0, (batch.launched_at - item.decoded_at) * 1000),
            inference=batch.inference_ms,
            total=max(0.0, float(completed - captured)),
        )
        return Result(
            frame_id=frame.frame_id,
            stream_id=frame.stream_id,
            seq=frame.seq,
            captured_at=captured,
            completed_at=completed,
            model=ModelRef(batch.model_name, batch.model_version),
            task=batch.task,
            predictions=[Prediction(p["label"], p["score"], p.get("box")) for p in preds],
            latency_ms=_rounded(latency),
            batch_size=len(batch.items),
            source=Source(record.topic, record.partition, record.offset),
        )

    def _observe(self, batch: FinishedBatch, results: list[Result]) -> None:
        self.counts["ok"] += len(results)
        self.counts["batches"] += 1
        self.counts["batched_frames"] += len(results)
        metrics.FRAMES.labels("ok").inc(len(results))
        metrics.BATCH_SIZE.observe(len(results))
        metrics.INFERENCE_TIME.observe(batch.inference_ms / 1000)
        for r in results:
            metrics.QUEUE_WAIT.observe(r.latency_ms.queue / 1000)
            metrics.DECODE_TIME.observe(r.latency_ms.decode / 1000)
            metrics.BATCH_WAIT.observe(r.latency_ms.batch_wait / 1000)
            metrics.END_TO_END.observe(r.latency_ms.total / 1000)


def _error_result(item: WorkItem) -> Result:
    frame = item.frame
    assert frame is not None
    completed = now_ms()
    total = max(0.0, float(completed - frame.captured_at_ms))
    return Result(
        frame_id=frame.frame_id,
        stream_id=frame.stream_id,
        seq=frame.seq,
        captured_at=frame.captured_at_ms,
        completed_at=completed,
        model=ModelRef("none", "none"),
        task="classification",
        predictions=[],
        latency_ms=Latency(0.0, 0.0, 0.0, 0.0, total),
        batch_size=0,
        source=Source(item.record.topic, item.record.partition, item.record.offset),
        status="error",
        error=f"{item.error_stage}: {item.error}",
    )


def _rounded(latency: Latency) -> Latency:
    return Latency(*(round(v, 3) for v in (
        latency.queue, latency.decode, latency.batch_wait, latency.inference, latency.total
    )))  # fmt: skip


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 3) if values else 0.0
