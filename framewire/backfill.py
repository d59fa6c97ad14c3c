"""Backfill jobs from the client's side: plan, submit, follow, cancel, resume.

The tasks themselves run on the workers (workers/backfill/). A job is its tasks' specs in
Redis plus one Celery message per task on the `backfill` queue, with task id
`JOB-TASK`, so Flower and `status` name the same things.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from foundation.celery import celery_app
from foundation.settings import Settings
from workers.backfill import jobs
from workers.backfill.jobs import JobStore, TaskState
from workers.backfill.plan import TaskSpec
from workers.backfill.task import QUEUE, TASK_NAME


class JobError(ValueError):
    """A job that does not exist or cannot do what was asked; str() is one line."""


def new_job_id() -> str:
    return time.strftime("bf-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


@dataclass
class JobStatus:
    job: str
    tasks: list[TaskState]
    cancelled: bool

    @property
    def done(self) -> int:
        return sum(t.position - t.spec.start for t in self.tasks)

    @property
    def total(self) -> int | None:
        totals = [t.total for t in self.tasks]
        return None if None in totals else sum(totals)  # type: ignore[arg-type]

    @property
    def state(self) -> str:
        states = {t.state for t in self.tasks}
        if jobs.FAILED in states:
            return jobs.FAILED
        if states <= {jobs.DONE}:
            return jobs.DONE
        if self.cancelled:
            return jobs.CANCELLED if states <= set(jobs.ENDED) | {jobs.QUEUED} else "cancelling"
        return jobs.RUNNING if states & {jobs.RUNNING, jobs.DONE} else jobs.QUEUED

    @property
    def ended(self) -> bool:
        return self.state in (jobs.DONE, jobs.FAILED, jobs.CANCELLED)

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "state": self.state, "done": self.done, "total": self.total,
                "tasks": [t.progress() for t in self.tasks]}  # fmt: skip


class Backfills:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self.store = JobStore(self.client)
        self.app = celery_app(settings)

    def submit(self, job: str, tasks: list[TaskSpec], request: dict[str, Any]) -> None:
        if not tasks:
            raise JobError("nothing to backfill: no partition holds frames in that range")
        try:
            self.store.create(job, request, tasks)
        except ValueError as exc:
            raise JobError(str(exc)) from None
        for spec in tasks:
            self._send(spec)

    def status(self, job: str) -> JobStatus:
        specs = self._tasks(job)
        return JobStatus(job, [self.store.state(s) for s in specs], self.store.cancelled(job))

    def cancel(self, job: str) -> JobStatus:
        """Queued tasks are revoked; running ones stop at their next chunk."""
        specs = self._tasks(job)
        self.store.cancel(job)
        self.app.control.revoke([s.celery_id for s in specs])
        for spec in specs:
            state = self.store.state(spec)
            if state.state in (jobs.QUEUED, jobs.INTERRUPTED):
                state.state = jobs.CANCELLED
                self.store.save(state)
        return self.status(job)

    def resume(self, job: str) -> list[TaskSpec]:
        """Send every task that has not ended again; each continues from its checkpoint."""
        if self.store.cancelled(job):
            raise JobError(f"backfill job {job} was cancelled")
        specs = [s for s in self._tasks(job) if self.store.state(s).state not in jobs.ENDED]
        for spec in specs:
            self._send(spec)
        return specs

    def close(self) -> None:
        self.client.close()

    def _send(self, spec: TaskSpec) -> None:
        self.app.send_task(TASK_NAME, args=[spec.to_dict()], queue=QUEUE, task_id=spec.celery_id)

    def _tasks(self, job: str) -> list[TaskSpec]:
        try:
            return self.store.tasks(job)
        except KeyError:
            raise JobError(f"no backfill job {job} (jobs are kept for a week)") from None
