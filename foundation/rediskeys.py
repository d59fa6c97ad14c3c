"""The Redis layout of DESIGN.md, in one place for the worker, the CLI and the gateway."""

from __future__ import annotations


def result_key(frame_id: str) -> str:
    """A result/1 JSON per frame, with a TTL."""
    return f"fw:result:{frame_id}"


def latest_key(stream_id: str) -> str:
    """The result of the highest seq seen for a stream."""
    return f"fw:stream:{stream_id}:latest"


def stream_key(stream_id: str) -> str:
    """A capped Redis Stream of a stream's results, field `result`."""
    return f"fw:stream:{stream_id}:results"


def reply_key(request_id: str) -> str:
    """A list the gateway waits on with BLPOP."""
    return f"fw:reply:{request_id}"


def frame_key(frame_id: str) -> str:
    """A hash: a short-lived copy of a frame's bytes (`data`, `encoding`, and `width`,
    `height` when known), for joining labels to frames (FRAMEWIRE_FRAME_COPY_TTL_S)."""
    return f"fw:frame:{frame_id}"


def deliveries_key(group: str, topic: str, partition: int) -> str:
    """A hash of delivery counts by offset for one partition as one consumer group reads it."""
    return f"fw:deliveries:{group}:{topic}:{partition}"


# Backfill jobs: their own namespace, so live results are untouched (unless --overwrite).


def backfill_result_key(job: str, frame_id: str) -> str:
    """A backfill job's result/1 JSON per frame, with the results' TTL."""
    return f"fw:backfill:{job}:result:{frame_id}"


def backfill_job_key(job: str) -> str:
    """A hash: the job's request and its tasks (JSON), written by `framewire backfill`."""
    return f"fw:backfill:{job}:job"


def backfill_task_key(job: str, task: str) -> str:
    """A hash: one task's checkpoint (next position), counts and state."""
    return f"fw:backfill:{job}:task:{task}"


def backfill_cancel_key(job: str) -> str:
    """Set when the job is cancelled; each task checks it between batches."""
    return f"fw:backfill:{job}:cancelled"


# Retraining (mlops/retrain/): never two at once per registered model.


def retrain_lease_key(name: str) -> str:
    """Held (with a TTL, renewed) while a retrain of the model runs."""
    return f"fw:retrain:{name}:lease"


def retrain_started_key(name: str) -> str:
    """When the model's last retrain started (ms): an older request is already served."""
    return f"fw:retrain:{name}:last_started"


# The scheduled monitor (mlops/monitor/scheduled.py): one run at a time, each going on from
# where the last stopped.


def monitor_lease_key() -> str:
    """Held while a scheduled monitor run reads: two at once would emit every event twice."""
    return "fw:monitor:lease"


def monitor_state_key() -> str:
    """JSON: the topics' positions and the monitor's open windows, streaks and accuracy."""
    return "fw:monitor:state"
