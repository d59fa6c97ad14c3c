"""A model swap on a CUDA worker while frames flow: the check the CPU suite cannot make.

On the embedded stack, a worker on `--device cuda` serves a copy of the demo model
(version "1") while synthetic cameras send frames; mid-stream, `reload_model` hands it a
second copy (version "2"), which the model thread loads, checks and warms up on the GPU
while the device thread serves, then swaps in between batches. Passes when every frame has
exactly one result, each stream's results change version once and never back, and the
swap really happened. Prints one JSON line.

    python scripts/gpu_swap_check.py [--device cuda] [--fps 200] [--seconds 12]

Run by scripts/gpu-check.sh on a machine with a GPU (and on CPU here, as a dry run).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import redis

from foundation.celery import celery_app
from foundation.rediskeys import result_key
from foundation.settings import Settings
from framewire.services import ensure_services
from framewire.worker_process import WorkerProcess
from models.loader import CARD_FILE, DEFAULT_MODEL_DIR
from models.spec import ModelCard
from producers.pacing import Pacer
from producers.publisher import Publisher
from producers.synthetic import SyntheticSource


def model_copy(folder: Path, version: str) -> Path:
    """The demo model with another version in its card."""
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    card = ModelCard.from_json((folder / CARD_FILE).read_text())
    card = ModelCard.from_dict({**card.to_dict(), "version": version})
    (folder / CARD_FILE).write_text(card.to_json())
    return folder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--fps", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fw-gpu-swap-"))
    with ExitStack() as cleanup:
        settings = ensure_services(Settings.load(state_dir=str(work)), work / "stack", cleanup,
                                   lambda line: print(line, file=sys.stderr))  # fmt: skip
        first, second = model_copy(work / "v1", "1"), model_copy(work / "v2", "2")
        settings = settings.replace(model=str(first), max_batch=64)
        worker = WorkerProcess(settings, work / "logs", device=args.device)
        cleanup.callback(worker.stop)
        worker.wait_ready()
        source = SyntheticSource(streams=4, fps=args.fps / 4, seed=1, realtime=False)
        frames = list(itertools.islice(source, int(args.fps * args.seconds)))
        sender = threading.Thread(target=_send, args=(settings, frames, args.fps))
        sender.start()
        time.sleep(args.seconds / 3)
        replies = celery_app(settings).control.broadcast(
            "reload_model", arguments={"model": str(second)}, reply=True, timeout=5
        )
        sender.join()
        results = _wait_for_results(settings, [f.frame_id for f in frames], timeout_s=120)
    report = _judge(frames, results, replies)
    print(json.dumps(report, sort_keys=True))
    return 0 if report["passed"] else 1


def _send(settings: Settings, frames: list, fps: float) -> None:
    with Publisher(settings) as publisher:
        pacer = Pacer(fps)
        for frame in frames:
            pacer.wait()
            publisher.send(frame)


def _wait_for_results(settings: Settings, ids: list[str], timeout_s: float) -> dict[str, dict]:
    client = redis.Redis.from_url(settings.redis_url)
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while len(found) < len(ids) and time.monotonic() < deadline:
        missing = [i for i in ids if i not in found]
        for frame_id, value in zip(missing, client.mget([result_key(i) for i in missing]),
                                   strict=True):  # fmt: skip
            if value is not None:
                found[frame_id] = json.loads(value)
        time.sleep(0.2)
    return found


def _judge(frames: list, results: dict[str, dict], replies: list) -> dict:
    by_stream: dict[str, list[tuple[int, str]]] = {}
    for frame in frames:
        result = results.get(frame.frame_id)
        if result is not None:
            version = result["model"]["version"]
            by_stream.setdefault(frame.stream_id, []).append((frame.seq, version))
    changes = {}
    for stream, pairs in by_stream.items():
        versions = [v for _, v in sorted(pairs)]
        changes[stream] = sum(a != b for a, b in itertools.pairwise(versions))
    served = sorted({r["model"]["version"] for r in results.values()})
    correct = sum(results[f.frame_id]["predictions"][0]["label"] == f.label
                  for f in frames if f.frame_id in results)  # fmt: skip
    batches = sum(r["batch_size"] for r in results.values())
    return {
        "frames": len(frames),
        "results": len(results),
        "versions_served": served,
        "version_changes_per_stream": changes,
        "accuracy": round(correct / max(len(results), 1), 4),
        "mean_batch": round(batches / max(len(results), 1), 2),
        "reload_replies": replies,
        "passed": len(results) == len(frames) and served == ["1", "2"]
        and all(n == 1 for n in changes.values()),
    }


if __name__ == "__main__":
    sys.exit(main())
