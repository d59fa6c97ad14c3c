"""The sink stage: turn finished batches into result/1 and write them everywhere.

A frame counts as finished (its offset may be committed) once its result is in Redis and
acknowledged by the results topic, or its record is acknowledged by the DLQ. Failures are
sorted (workers/sinks/errors.py): retriable ones are retried with backoff while the queues
fill and the poll thread pauses the partitions, so nothing piles up without bound;
a permanent one finishes its frame with what can be written (the DLQ with the reason, an
`error` event, a metric, one log line with its coordinates) and never blocks another.

A batch's Redis write and its results-topic acknowledgements are awaited behind the next
batches: the writer sends batch N's results, hands its Redis rows to the Redis thread, and
goes on to batch N+1 while N's acks travel and its script call runs; N is finished (its
offsets may be committed) once both are done, at most _MAX_UNACKED batches later. The
Redis thread writes the batches one at a time in order, so a stream's results reach Redis
in the order they were sent. With the writer doing both in turn, 64% of its time went to
waiting on Redis (sending the batch's rows and frame copies, and the script's answer),
which bounded the null model near 7,000 frames/s (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from foundation.log import get_logger
from schemas import Event, Latency, ModelRef, Prediction, Result, Source
from schemas.frame import now_ms
from workers import metrics
from workers.device import FinishedBatch, Rejected, failed_inference
from workers.observe import observation_event
from workers.sinks import (
    Delivery,
    GaveUp,
    KafkaSink,
    PermanentWriteError,
    RedisResult,
    RedisSink,
    with_retries,
)
from workers.threads import name_os_thread
from workers.work import WorkItem

log = get_logger(__name__)

Failures = dict[int, PermanentWriteError]  # index in the batch -> why it failed for good
_MAX_UNACKED = 4  # batches sent whose Redis write or results-topic acks are still awaited


@dataclass
class _Unacked:
    """A batch sent to the results topic and to the Redis thread, not yet done with both."""

    batch: FinishedBatch
    results: list[Result]
    delivery: Delivery
    redis: Future[Failures]  # Redis's permanent failures, once written

    def done(self) -> bool:
        return self.redis.done() and self.delivery.answered()


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
        self._unacked: deque[_Unacked] = deque()
        # One thread: Redis writes stay in order; its waits release the GIL.
        self._redis_thread = ThreadPoolExecutor(
            1, thread_name_prefix="framewire-redis", initializer=name_os_thread
        )

    def stop(self, abort: bool = False) -> None:
        self._stop_event.set()
        if abort:
            self.abort.set()

    def run(self) -> None:
        name_os_thread()
        while not (self._stop_event.is_set() and self.finished.empty() and not self._unacked):
            job = self._next_job()
            if job is None:
                continue
            if isinstance(job, FinishedBatch):
                job = self._predicted(job)
            try:
                if isinstance(job, FinishedBatch):
                    self._unacked.append(self._send_batch(job))
                else:
                    self._dead_letter(job.items)
                    self.on_done(job.items)
            except GaveUp as exc:
                log.error("stopped before writing; frames will be redelivered", error=str(exc))
        self._redis_thread.shutdown(wait=True)

    def _next_job(self) -> FinishedBatch | Rejected | None:
        """The next job, finishing meanwhile the batches whose acks are in. With nothing new
        to write, wait for the oldest batch's acks rather than for a job."""
        while self._unacked and (self._unacked[0].done()
                                 or len(self._unacked) >= _MAX_UNACKED):  # fmt: skip
            self._finish(self._unacked.popleft())
        try:
            return self.finished.get(timeout=0.001 if self._unacked else 0.1)
        except queue.Empty:
            if self._unacked:
                self._finish(self._unacked.popleft())
            return None

    def _predicted(self, batch: FinishedBatch) -> FinishedBatch | Rejected:
        """The batch with its predictions built (here, not on the device thread), or its
        frames rejected when the model's outputs cannot be read as predictions."""
        try:
            batch.predictions  # noqa: B018 (built once, kept)
        except Exception as exc:  # a model's outputs must not stop the writer
            log.exception("postprocessing failed", frames=len(batch.items))
            return failed_inference(batch.items, exc)
        return batch

    def _send_batch(self, batch: FinishedBatch) -> _Unacked:
        """Results to the results topic (sent, not awaited) and Redis; the batch's events."""
        completed = now_ms()
        results = [
            self._result(item, preds, batch, completed)
            for item, preds in zip(batch.items, batch.predictions, strict=True)
        ]
        delivery, redis = self._send(batch.items, results, copy_frames=True)
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
        if batch.observed is not None:  # one batch in FRAMEWIRE_OBSERVE_EVERY
            self.kafka_sink.send_event(observation_event(batch, self.worker))
        return _Unacked(batch, results, delivery, redis)

    def _finish(self, unacked: _Unacked) -> None:
        """Once its acks are in: the frames that failed for good to the DLQ, the batch
        counted, its offsets free to commit."""
        batch = unacked.batch
        try:
            failed = self._awaited(unacked.delivery, unacked.redis)
        except GaveUp as exc:
            log.error("stopped before writing; frames will be redelivered", error=str(exc))
            return
        self._observe(batch, [r for i, r in enumerate(unacked.results) if i not in failed])
        if failed:  # a result that can never be written: its frame goes to the DLQ
            for i, error in failed.items():
                metrics.SINK_FAILURES.labels(error.sink).inc()
                batch.items[i].fail("sink", str(error))
            self._dead_letter([batch.items[i] for i in sorted(failed)], error_results=False)
        self.on_done(batch.items)

    def _dead_letter(self, items: list[WorkItem], error_results: bool = True) -> None:
        """Items to the DLQ, each with an `error` event, a metric and one log line.

        A frame whose headers were valid also gets an error result, so a client waiting
        for it (the gateway) hears why instead of timing out."""
        refused = self.kafka_sink.send_dead_letters(items).wait(self.abort)
        parsed = [item for item in items if item.frame is not None] if error_results else []
        if parsed:
            for i, error in self._write(parsed, [_error_result(item) for item in parsed]).items():
                metrics.SINK_FAILURES.labels(error.sink).inc()
                log.error("error result not written", error=str(error), **_where(parsed[i]))
        for i, item in enumerate(items):
            metrics.FRAMES.labels("dlq").inc()
            metrics.DEAD_LETTERS.labels(item.error_stage or "unknown").inc()
            self.counts["dlq"] += 1
            if i in refused:
                # Nothing more can be written for it; the original stays in the frames
                # topic for its retention, at the coordinates logged here.
                metrics.SINK_FAILURES.labels("dlq").inc()
                log.error("frame rejected and refused by the DLQ", stage=item.error_stage,
                          reason=item.error, dlq_error=str(refused[i]), **_where(item))  # fmt: skip
            else:
                log.warning("frame rejected", stage=item.error_stage, reason=item.error,
                            **_where(item))  # fmt: skip
            self.kafka_sink.send_event(
                Event("error", self.worker, {"stage": item.error_stage or "unknown",
                                             "reason": item.error or "unknown",
                                             **_coordinates(item)})
            )  # fmt: skip

    def _write(
        self, items: list[WorkItem], results: list[Result], copy_frames: bool = False
    ) -> Failures:
        """The results topic and Redis, awaited; the frames that failed for good in either."""
        return self._awaited(*self._send(items, results, copy_frames))

    def _awaited(self, delivery: Delivery, redis: Future[Failures]) -> Failures:
        """Redis's permanent failures plus the results topic's, once both are done."""
        failed = redis.result()  # raises the GaveUp of a hard stop
        for i, error in delivery.wait(self.abort).items():
            failed.setdefault(i, error)
        return failed

    def _send(
        self, items: list[WorkItem], results: list[Result], copy_frames: bool = False
    ) -> tuple[Delivery, Future[Failures]]:
        """Results sent to the results topic and handed to the Redis thread, neither
        awaited; the delivery, and the Redis write's future: the frames Redis refused for
        good (retriable failures are retried there). copy_frames: also keep each frame's
        bytes in Redis for a while (only frames the model ran: a frame that failed is no
        training data)."""
        encoded = [r.to_json() for r in results]
        delivery = self.kafka_sink.send_results(
            [(r.stream_id.encode(), data, r.frame_id) for r, data in zip(results, encoded,
                                                                         strict=True)]
        )  # fmt: skip
        rows = [
            RedisResult(
                r.frame_id, r.stream_id, r.seq, data, item.frame.reply_to,
                item.frame if copy_frames else None,
            )
            for item, r, data in zip(items, results, encoded, strict=True)
            if item.frame is not None
        ]  # fmt: skip
        return delivery, self._redis_thread.submit(self._write_redis, rows)

    def _write_redis(self, rows: list[RedisResult]) -> Failures:
        try:
            with_retries(lambda: self.redis_sink.write(rows), "redis", self.abort)
            return {}
        except PermanentWriteError as error:
            if len(rows) == 1:
                return {0: error}
        # One frame's keys broke the batch's script call (a key of the wrong type, say):
        # write each frame alone to find which. Rewrites are idempotent by frame id.
        failed = {}
        for i, row in enumerate(rows):
            try:
                with_retries(lambda row=row: self.redis_sink.write([row]), "redis", self.abort)
            except PermanentWriteError as error:
                failed[i] = error
        return failed

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


def _where(item: WorkItem) -> dict[str, object]:
    """What a log line needs to find the frame: its coordinates and ids."""
    return {**_coordinates(item), **item.log_ids()}


def _coordinates(item: WorkItem) -> dict[str, object]:
    record = item.record
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def _rounded(latency: Latency) -> Latency:
    return Latency(*(round(v, 3) for v in (
        latency.queue, latency.decode, latency.batch_wait, latency.inference, latency.total
    )))  # fmt: skip


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 3) if values else 0.0
