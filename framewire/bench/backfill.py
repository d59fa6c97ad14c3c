"""`framewire bench --backfill`: does live traffic keep its latency while a backfill runs?

One worker; live cameras at a fixed rate for `seconds`, measured twice: alone, then while a
backfill job scores a folder of frames on the same worker (more than it can finish in the
phase, so it runs throughout). Live latency is capture to result in Redis, as in the load
phases of the main bench; the backfill's rate is read from its task's progress. The job
is cancelled at the end. The share backfill may take while live frames wait is the
worker's FRAMEWIRE_BACKFILL_SHARE.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from foundation.kafka import create_topics
from foundation.settings import Settings
from framewire.backfill import Backfills
from framewire.bench.frames import FramePool, stream_ids
from framewire.bench.pipeline_load import measure_load
from framewire.bench.sink import SinkReader
from framewire.services import ensure_services
from framewire.worker_process import WorkerExited, WorkerProcess
from workers.backfill.plan import file_tasks

Echo = Callable[[str], None]
_WARM_UP_S = 3.0


def run_backfill_bench(settings: Settings, live_fps: float, seconds: float, device: str,
                       frame_size: tuple[int, int], echo: Echo) -> dict[str, Any]:  # fmt: skip
    run_id = uuid.uuid4().hex[:8]
    workdir = settings.state_dir / "bench"
    with ExitStack() as cleanup:
        settings = ensure_services(settings, workdir, cleanup, echo, label="bench")
        settings = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-{run_id}.",
                                    stream_maxlen=max(settings.stream_maxlen, 10_000))  # fmt: skip
        create_topics(settings)
        pool = FramePool.render(*frame_size)
        client = redis.Redis.from_url(settings.redis_url)
        cleanup.callback(client.close)
        worker = WorkerProcess(settings, workdir / "logs", device=device)
        cleanup.callback(worker.stop)
        echo(f"backfill bench: worker starting (log {worker.log_path})")
        worker.wait_ready()

        def check() -> None:
            if worker.process.poll() is not None:
                raise WorkerExited(f"worker exited ({worker.process.returncode})")

        def live(phase: str, phase_seconds: float) -> dict[str, Any]:
            streams = stream_ids(run_id, phase, 2)
            point = measure_load(settings, pool, SinkReader(client, streams), streams, 0.0,
                                 live_fps, phase_seconds, check)  # fmt: skip
            return {"p50_ms": point.p50_ms, "p99_ms": point.p99_ms, "frames": point.results,
                    "mean_batch": point.mean_batch}  # fmt: skip

        live("warm-up", _WARM_UP_S)
        alone = live("alone", seconds)
        echo(f"live alone: {live_fps:g} frames/s, p50 {alone['p50_ms']} ms, "
             f"p99 {alone['p99_ms']} ms")  # fmt: skip
        folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fw-bf-")))
        count = _write_folder(folder, pool, round(2_000 * seconds))  # beyond a GPU's rate
        backfills = Backfills(settings)
        job = f"bench-{run_id}"
        backfills.submit(job, file_tasks(job, folder), {"bench": True})
        cleanup.callback(backfills.cancel, job)
        _wait_until_running(backfills, job, check)
        scored_before, started = _scored(backfills, job), time.monotonic()
        during = live("with-backfill", seconds)
        backfill_fps = (_scored(backfills, job) - scored_before) / (time.monotonic() - started)
        echo(f"live with a backfill: p50 {during['p50_ms']} ms, p99 {during['p99_ms']} ms; "
             f"backfill {backfill_fps:,.0f} frames/s meanwhile")  # fmt: skip
    return {
        "live_fps": live_fps, "seconds": seconds, "device": device,
        "frame_size": f"{frame_size[0]}x{frame_size[1]}",
        "backfill_share": settings.backfill_share, "backfill_frames": count,
        "live_alone": alone, "live_with_backfill": during,
        "backfill_fps_meanwhile": round(backfill_fps, 1),
    }  # fmt: skip


def _write_folder(folder: Path, pool: FramePool, count: int) -> int:
    """count JPEG files: the pool's, then hard links to them (no disk for the copies)."""
    originals = []
    for i, data in enumerate(pool.payloads):
        originals.append(folder / f"pool-{i:03d}.jpeg")
        originals[-1].write_bytes(data)
    for i in range(count - len(originals)):
        os.link(originals[i % len(originals)], folder / f"{i:06d}.jpg")
    return max(count, len(originals))


def _scored(backfills: Backfills, job: str) -> int:
    return sum(t.scored for t in backfills.status(job).tasks)


def _wait_until_running(backfills: Backfills, job: str, check: Callable[[], None]) -> None:
    deadline = time.monotonic() + 60
    while _scored(backfills, job) == 0:
        check()
        if time.monotonic() > deadline:
            raise RuntimeError("the backfill job did not start within 60 s (see the worker log)")
        time.sleep(0.2)
