"""Backfill jobs in Redis: the job's tasks, each task's checkpoint and counts, cancel.

Redis, not Celery's result backend, holds what a resumed task needs: the backend keeps a
task's last state only, expires it, and a task killed with its worker never writes one.
Celery's PROGRESS state mirrors the same counts for Flower.

A task claims itself (SET NX with a TTL that each checkpoint renews) before it runs, so a
task delivered twice (a resume while the first copy still runs, or Celery's redelivery
after its visibility timeout) is run by one copy only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from foundation.rediskeys import backfill_cancel_key, backfill_job_key, backfill_task_key
from workers.backfill.plan import TaskSpec

CLAIM_TTL_S = 10  # a claim outlives its dead worker by at most this; renewed every chunk
JOB_TTL_S = 7 * 86_400  # job records are kept a week

# Task states, as `framewire backfill status` shows them.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted"
)  # fmt: skip
ENDED = (DONE, FAILED, CANCELLED)


@dataclass
class TaskState:
    spec: TaskSpec
    state: str = QUEUED
    position: int = 0  # the checkpoint: every position before it is finished
    scored: int = 0  # frames with a result
    skipped: int = 0  # positions without one (not frames, unreadable)
    total: int | None = None
    frames_per_s: float = 0.0
    worker: str | None = None
    model: str | None = None  # NAME:VERSION of the last batch
    error: str | None = None
    resumed_from: int | None = None  # the checkpoint a later run started at
    updated_at: float = 0.0

    def progress(self) -> dict[str, Any]:
        """What Celery's PROGRESS state and `status --json` carry."""
        done = self.position - self.spec.start
        return {"job": self.spec.job, "task": self.spec.task, "state": self.state,
                "done": done, "total": self.total, "scored": self.scored,
                "skipped": self.skipped, "frames_per_s": round(self.frames_per_s, 1),
                "position": self.position, "worker": self.worker, "model": self.model,
                "resumed_from": self.resumed_from, "error": self.error}  # fmt: skip


class JobStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    # Jobs ------------------------------------------------------------------------------

    def create(self, job: str, request: dict[str, Any], tasks: list[TaskSpec]) -> None:
        key = backfill_job_key(job)
        if not self.client.hsetnx(key, "request", json.dumps(request)):
            raise ValueError(f"backfill job {job} exists already")
        self.client.hset(key, mapping={"tasks": json.dumps([t.to_dict() for t in tasks]),
                                       "created_at": time.time()})  # fmt: skip
        self.client.expire(key, JOB_TTL_S)

    def tasks(self, job: str) -> list[TaskSpec]:
        raw = self.client.hget(backfill_job_key(job), "tasks")
        if raw is None:
            raise KeyError(job)
        return [TaskSpec.from_dict(t) for t in json.loads(raw)]

    def request(self, job: str) -> dict[str, Any]:
        raw = self.client.hget(backfill_job_key(job), "request")
        return json.loads(raw) if raw else {}

    def cancel(self, job: str) -> None:
        self.client.set(backfill_cancel_key(job), 1, ex=JOB_TTL_S)

    def cancelled(self, job: str) -> bool:
        return bool(self.client.exists(backfill_cancel_key(job)))

    # Tasks -----------------------------------------------------------------------------

    def state(self, spec: TaskSpec) -> TaskState:
        raw = self.client.hget(backfill_task_key(spec.job, spec.task), "state")
        if raw is None:
            return TaskState(spec, position=spec.start, total=spec.total)
        fields = json.loads(raw)
        return TaskState(spec, **{k: v for k, v in fields.items() if k != "spec"})

    def save(self, state: TaskState) -> None:
        state.updated_at = time.time()
        fields = {k: v for k, v in state.__dict__.items() if k != "spec"}
        key = backfill_task_key(state.spec.job, state.spec.task)
        self.client.hset(key, "state", json.dumps(fields))
        self.client.expire(key, JOB_TTL_S)

    def claim(self, spec: TaskSpec, worker: str, wait_s: float = CLAIM_TTL_S + 5) -> bool:
        """Take the task for this worker, waiting for a dead owner's claim to expire."""
        key = backfill_task_key(spec.job, spec.task) + ":owner"
        deadline = time.monotonic() + wait_s
        while not self.client.set(key, worker, nx=True, ex=CLAIM_TTL_S):
            if self.client.get(key) == worker.encode():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def renew(self, spec: TaskSpec) -> None:
        self.client.expire(backfill_task_key(spec.job, spec.task) + ":owner", CLAIM_TTL_S)

    def release(self, spec: TaskSpec) -> None:
        self.client.delete(backfill_task_key(spec.job, spec.task) + ":owner")
