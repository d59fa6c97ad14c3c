"""The backfill task: one TaskSpec, chunk by chunk, from its checkpoint to its end.

    claim -> read a chunk (workers/backfill/sources.py) -> prepare -> the device thread
    (the backfill lane) -> results (workers/backfill/output.py) -> checkpoint and PROGRESS
    -> cancelled? -> next chunk

It runs in a thread of Celery's pool (`framewire worker` uses the threads pool with one
slot), so Celery's consumer keeps answering `inspect stats`, control commands and Flower
while a task runs. A worker that stops gracefully fails the lane's waiting batch; the task
keeps its checkpoint and goes back to the queue for another worker. A killed one leaves
its checkpoint: Celery delivers the message again after the broker's visibility timeout,
or `framewire backfill resume JOB` sends it now.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from celery import Celery, Task
from celery.exceptions import Reject

from foundation.log import get_logger
from models.spec import ModelCard
from schemas import Latency, ModelRef, Prediction, Result
from schemas.frame import now_ms
from workers import metrics
from workers.backfill import jobs
from workers.backfill.jobs import JobStore, TaskState
from workers.backfill.lane import InputChanged, LaneClosed
from workers.backfill.output import BackfillOutput
from workers.backfill.plan import TaskSpec
from workers.backfill.sources import Chunk, read
from workers.decode import FrameDecoder

log = get_logger(__name__)

TASK_NAME = "framewire.backfill"
QUEUE = "backfill"


def register(app: Celery) -> None:
    """Add the backfill task to a worker's app."""

    @app.task(name=TASK_NAME, bind=True, acks_late=True)
    def backfill(self: Task, spec: dict[str, Any]) -> dict[str, Any]:
        return BackfillRun(self, TaskSpec.from_dict(spec)).run()


class BackfillRun:
    def __init__(self, task: Task, spec: TaskSpec) -> None:
        pipeline = getattr(task.app, "framewire_pipeline", None)
        if pipeline is None:
            raise RuntimeError("this worker runs no stream pipeline (no device to run on)")
        self.task, self.spec, self.pipeline = task, spec, pipeline
        self.settings = pipeline.settings
        self.store = JobStore(pipeline.redis)
        self.decoder = FrameDecoder(self.settings.max_frame_bytes, self.settings.max_frame_pixels)
        self.engine = None  # the job's own model (--model), or None: the live one

    def run(self) -> dict[str, Any]:
        state = self.store.state(self.spec)
        if state.state in jobs.ENDED:
            return state.progress()  # delivered again after it ended: nothing to redo
        if not self.store.claim(self.spec, self.pipeline.worker):
            log.warning("backfill task runs elsewhere", job=self.spec.job, task=self.spec.task)
            return state.progress()
        metrics.BACKFILL_TASKS.inc()
        try:
            return self._run(state)
        finally:
            metrics.BACKFILL_TASKS.dec()
            self.store.release(self.spec)

    def _run(self, state: TaskState) -> dict[str, Any]:
        spec = self.spec
        if state.position > spec.start:
            state.resumed_from = state.position
        state.state, state.worker, state.error = jobs.RUNNING, self.pipeline.worker, None
        self._report(state)
        try:
            if spec.model:
                self.engine = self.pipeline.build_engine_for(spec.model)
            pipeline = self.pipeline
            output = BackfillOutput(self.settings, pipeline.kafka_sink, pipeline.redis, spec.job,
                                    spec.overwrite, pipeline.writer.abort)  # fmt: skip
            started, scored_before = time.monotonic(), state.scored
            for chunk in read(spec, self.settings, state.position, self.settings.backfill_batch):
                if self.store.cancelled(spec.job):
                    state.state = jobs.CANCELLED
                    break
                self._score(chunk, output, state)
                elapsed = max(time.monotonic() - started, 1e-6)
                state.frames_per_s = (state.scored - scored_before) / elapsed
                self._report(state)
            else:
                state.state = jobs.DONE
        except LaneClosed:
            state.state = jobs.INTERRUPTED
            self._report(state)
            log.info("backfill task interrupted; back to the queue", job=spec.job,
                     task=spec.task, position=state.position)  # fmt: skip
            raise Reject("worker stopping", requeue=True) from None
        except Exception as exc:
            state.state, state.error = jobs.FAILED, f"{type(exc).__name__}: {exc}"[:300]
            self._report(state)
            log.exception("backfill task failed", job=spec.job, task=spec.task)
            raise
        if state.total is None and state.state == jobs.DONE:
            state.total = state.position - spec.start
        self._report(state)
        log.info("backfill task " + state.state, job=spec.job, task=spec.task,
                 scored=state.scored, skipped=state.skipped)  # fmt: skip
        return state.progress()

    def _score(self, chunk: Chunk, output: BackfillOutput, state: TaskState) -> None:
        items, unreadable = [], list(chunk.skipped)
        if chunk.items:
            predictions, card, items = self._predict(chunk, unreadable)
            if items:
                output.write([_result(item, p, card, len(items))
                              for item, p in zip(items, predictions, strict=True)])  # fmt: skip
                state.model = f"{card.name}:{card.version}"
        for reason in unreadable:
            log.warning("backfill skipped a position", job=self.spec.job, reason=reason)
        state.position = chunk.next_position
        state.scored += len(items)
        state.skipped += len(unreadable)
        metrics.BACKFILL_FRAMES.labels(self.spec.job).inc(len(items))
        self.store.renew(self.spec)

    def _predict(self, chunk: Chunk, unreadable: list[str]) -> tuple[list, ModelCard, list]:
        """Prepare the chunk for the model that will run it, and run it; prepared again
        if the live model's input changed in between (a swap)."""
        try:
            return self._run_on_device(chunk, unreadable)
        except InputChanged:
            return self._run_on_device(chunk, [])

    def _run_on_device(self, chunk: Chunk, unreadable: list[str]) -> tuple[list, ModelCard, list]:
        engine = self.engine or self.pipeline.device_stage.engine
        spec = engine.card.input
        images, items = [], []
        for item in chunk.items:
            try:
                images.append(item.prepare(spec, self.decoder))
                items.append(item)
            except ValueError as exc:
                unreadable.append(f"{item.frame_id}: {exc}")
        if not images:
            return [], engine.card, []
        predictions, card = self.pipeline.backfill.run(np.stack(images), spec, self.engine)
        return predictions, card, items

    def _report(self, state: TaskState) -> None:
        self.store.save(state)
        self.task.update_state(state="PROGRESS", meta=state.progress())


def _result(item: Any, predictions: list[dict], card: ModelCard, batch_size: int) -> Result:
    completed = now_ms()
    return Result(
        frame_id=item.frame_id, stream_id=item.stream_id, seq=item.seq,
        captured_at=item.captured_at, completed_at=completed,
        model=ModelRef(card.name, card.version), task=card.task,
        predictions=[Prediction(p["label"], p["score"], p.get("box")) for p in predictions],
        latency_ms=Latency(0.0, 0.0, 0.0, 0.0, 0.0), batch_size=batch_size, source=item.source,
    )  # fmt: skip
