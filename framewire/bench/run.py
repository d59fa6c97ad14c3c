"""One `framewire bench` run: ceilings, naive baseline, pipeline saturation, loads.

Order matters on a small machine: the in-process measurements (model, decoder, naive
baseline) run before the worker process exists, and the worker is started only after its
frames are published, so no phase shares the cores with another phase's work.

With the null model (`--model null`) decode and compute cost nearly nothing, so the
decode ceiling and the naive baseline are skipped, and a bare consumer reads the
saturation phase's records before the worker starts: the broker's own ceiling, against
which the pipeline's rate is the framework's (`framework_to_bare_ratio`).
"""

from __future__ import annotations

import gc
import os
import platform
import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
import torch

from foundation import collector
from foundation.kafka import create_topics
from foundation.settings import Settings
from framewire.bench import ceilings
from framewire.bench.bare import bare_consume
from framewire.bench.frames import FramePool, stream_ids
from framewire.bench.model import model_directory
from framewire.bench.naive import run_naive
from framewire.bench.options import BenchOptions
from framewire.bench.pipeline_load import measure_load, measure_saturation, publish_all
from framewire.bench.profile import WorkerProfiler
from framewire.bench.report import frames_label, framework_ratio, ratios
from framewire.bench.sink import SinkReader
from framewire.services import ensure_services
from framewire.stack import LocalStack
from framewire.worker_process import WorkerExited, WorkerProcess
from models import InputSpec, ModelCard, load_model
from models.device import resolve_device
from workers.decode import FrameDecoder
from workers.device_decode import DecodePlan, DeviceJpegDecoder, select_decode
from workers.engine import InferenceEngine

Echo = Callable[[str], None]
_MIN_SECONDS = 1.0  # each ceiling runs at least this long (and at least --frames frames)


def run_bench(settings: Settings, options: BenchOptions, echo: Echo) -> dict[str, Any]:
    """Run every phase; returns the summary (the --json object)."""
    device = resolve_device(None if options.device == "auto" else options.device)
    max_batch = options.max_batch or settings.max_batch
    profiler = WorkerProfiler(options.profile) if options.profile else None  # py-spy there?
    run_id = uuid.uuid4().hex[:8]
    workdir = settings.state_dir / "bench"
    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fw-bench-")))
        model_dir = model_directory(options.model, options.input_size, tmp)
        # The same number format as the worker's (FRAMEWIRE_PRECISION): the naive baseline
        # and the model-only ceiling run this engine.
        engine = InferenceEngine(load_model(model_dir), device, max_batch,
                                 precision=settings.precision)  # fmt: skip
        card = engine.card
        pool = _frame_pool(options, card)
        # As the worker will decide it, on the same machine with the same settings.
        decode = select_decode(settings.decode_on, engine.device)
        summary: dict[str, Any] = {
            "model": f"{card.name}:{card.version}",
            "input": f"{card.input.width}x{card.input.height}",
            "frame_size": f"{pool.width}x{pool.height}",
            "frame_encoding": pool.encoding,
            "frame_kb": round(pool.mean_kb, 1),
            "frame_bytes": round(pool.mean_kb * 1024),
            "device": device,
            "device_name": device_name(device),
            "decode_on": decode.where,
            "decode_on_reason": decode.reason,
            "max_batch": max_batch,
            "decode_threads": settings.decode_threads,
            "frames": options.frames,
        }
        echo(f"bench: {summary['model']} on {summary['device_name']}, {frames_label(summary)}, "
             f"max batch {max_batch}")  # fmt: skip
        echo(f"bench: JPEG frames decoded on the {decode.where} ({decode.reason})")

        summary.update(_ceilings(engine, pool, settings, options, max_batch, echo))
        if decode.decoder is not None and not options.null_model:
            summary.update(_device_decode_ceiling(engine, pool, settings, decode, options, echo))

        settings = ensure_services(settings, workdir, cleanup, echo, label="bench")
        base = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-{run_id}.")
        # One frame at a time with no decode and no model: a group join that tells nothing.
        if not options.null_model:
            summary.update(_naive(base, engine, pool, options, run_id, echo))
        del engine  # the worker loads its own copy; free this one's memory first
        # The paced sender shares this process: a full collection over torch's objects
        # held the GIL for 107-279 ms in the load phases, then the sender burst to catch up.
        collector.freeze_long_lived()
        cleanup.callback(gc.unfreeze)  # a caller in the same process collects as before
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

        summary.update(_pipeline(base, pool, options, max_batch, device, model_dir, workdir,
                                 run_id, cleanup, echo, profiler))  # fmt: skip
        summary["stage_costs"].update(summary.pop("stage_costs_pipeline"))
        if options.null_model:
            summary.update(framework_ratio(summary["pipeline_fps"], summary["bare_consume_fps"]))
            echo(f"framework: {summary['framework_fps']:,.0f} frames/s, "
                 f"{summary['framework_to_bare_ratio']:.2f} of the bare consumer")  # fmt: skip
        else:
            summary.update(ratios(summary["model_only_fps"], summary["decode_fps"],
                                  summary["pipeline_fps"], summary["naive_fps"]))  # fmt: skip
    return summary


def _frame_pool(options: BenchOptions, card: ModelCard) -> FramePool:
    """JPEGs of --frame-size; for the null model raw frames of its input size, so that
    decode is a reshape and preparing them a no-op."""
    if options.null_model:
        return FramePool.raw(card.input.width, card.input.height)
    return FramePool.render(options.frame_width, options.frame_height)


def _naive(settings: Settings, engine: InferenceEngine, pool: FramePool,
           options: BenchOptions, run_id: str, echo: Echo) -> dict[str, Any]:  # fmt: skip
    naive = settings.replace(topic_prefix=f"{settings.topic_prefix}naive.")
    create_topics(naive)
    publish_all(naive, pool, options.frames, stream_ids(run_id, "naive", options.streams))
    echo(f"naive: {options.frames} frames published; one at a time (at most "
         f"{options.naive_seconds:g} s)")  # fmt: skip
    run = run_naive(naive, engine, options.frames, options.naive_seconds)
    echo(f"naive: {run.fps:,.0f} frames/s over {run.frames} frames")
    return {"naive_fps": round(run.fps, 1), "naive_frames": run.frames}


def _ceilings(engine: InferenceEngine, pool: FramePool, settings: Settings,
              options: BenchOptions, max_batch: int, echo: Echo) -> dict[str, Any]:  # fmt: skip
    images = ceilings.decoded_batch(engine, pool, min(max_batch, len(pool.payloads)))
    model_fps = ceilings.model_only_fps(engine, images, max_batch, options.frames, _MIN_SECONDS)
    model1_fps = ceilings.model_only_fps(engine, images, 1, 1, _MIN_SECONDS)
    echo(f"model only: {model_fps:,.0f} frames/s at batch {max_batch}, "
         f"{model1_fps:,.0f} at batch 1 ({1000 / model1_fps:.2f} ms per frame)")  # fmt: skip
    out: dict[str, Any] = {
        "model_only_fps": round(model_fps, 1),
        "model_only_batch1_fps": round(model1_fps, 1),
        "single_frame_model_ms": round(1000 / model1_fps, 3),
        "stage_costs": {
            "model_ms_per_frame_at_max_batch": round(1000 / model_fps, 3),
            "model_ms_per_frame_at_batch1": round(1000 / model1_fps, 3),
        },
    }
    if not options.null_model:  # decoding a raw frame is a reshape: nothing to measure
        decode, decode1 = _decode_ceiling(pool, engine.card.input, settings, options, echo)
        out.update(decode_fps=round(decode, 1), decode_cpu_fps=round(decode, 1),
                   decode_1thread_fps=round(decode1, 1))  # fmt: skip
        out["stage_costs"]["decode_cpu_ms_per_frame"] = round(1000 / decode1, 3)
    if options.batch_curve:
        curve = ceilings.batch_curve(engine, images, max_batch, _MIN_SECONDS / 2)
        out["batch_curve"] = {str(b): round(fps, 1) for b, fps in curve.items()}
    return out


def _device_decode_ceiling(engine: InferenceEngine, pool: FramePool, settings: Settings,
                           decode: DecodePlan, options: BenchOptions,
                           echo: Echo) -> dict[str, Any]:  # fmt: skip
    """With JPEGs decoded on the GPU, that is the worker's decode stage: `decode_fps` is its
    ceiling, and the CPU threads' figure stays as `decode_cpu_fps` for comparison."""
    assert decode.decoder is not None
    gpu = DeviceJpegDecoder(decode.decoder, FrameDecoder(settings.max_frame_bytes,
                                                         settings.max_frame_pixels),
                            engine.device)  # fmt: skip
    fps = ceilings.device_decode_fps(gpu, engine, pool, engine.max_batch, options.frames,
                                     _MIN_SECONDS)  # fmt: skip
    difference = ceilings.device_pixel_difference(gpu, engine, pool)
    echo(f"decode + prepare on the GPU: {fps:,.0f} frames/s at batch {engine.max_batch}; "
         f"{difference:.2f} grey levels from the CPU path's pixels on average")  # fmt: skip
    return {
        "decode_fps": round(fps, 1),
        "device_decode_mean_abs_diff": round(difference, 3),
    }


def _decode_ceiling(pool: FramePool, spec: InputSpec, settings: Settings,
                    options: BenchOptions, echo: Echo) -> tuple[float, float]:  # fmt: skip
    """Frames/s decoded and prepared on the worker's decode threads, and on one."""
    threads, limits = settings.decode_threads, (settings.max_frame_bytes, settings.max_frame_pixels)
    decode = ceilings.decode_fps(pool, spec, threads, *limits, options.frames, _MIN_SECONDS)
    decode1 = ceilings.decode_fps(pool, spec, 1, *limits, options.frames // 4, _MIN_SECONDS)
    echo(f"decode + prepare: {decode:,.0f} frames/s on {threads} threads "
         f"({decode1:,.0f} on one)")  # fmt: skip
    return decode, decode1


def _pipeline(settings: Settings, pool: FramePool, options: BenchOptions, max_batch: int,
              device: str, model_dir: Path, workdir: Path, run_id: str, cleanup: ExitStack,
              echo: Echo, profiler: WorkerProfiler | None) -> dict[str, Any]:  # fmt: skip
    settings = settings.replace(
        model=str(model_dir),
        max_batch=max_batch,
        # The phase's results are read from the per-stream Redis Streams: keep them all.
        stream_maxlen=max(settings.stream_maxlen, 2 * options.frames),
    )
    create_topics(settings)
    streams = stream_ids(run_id, "saturation", options.streams)
    expected = publish_all(settings, pool, options.frames, streams)
    # The bare consumer reads these records before the worker exists: the same records,
    # and the cores to itself, as the worker will have them.
    bare = _bare(settings, options.frames, echo) if options.null_model else {}
    client = redis.Redis.from_url(settings.redis_url)
    cleanup.callback(client.close)
    worker = WorkerProcess(settings, workdir / "logs", device=device)
    cleanup.callback(worker.stop)
    echo(f"pipeline: {options.frames} frames published; worker starting (log {worker.log_path})")

    def check() -> None:
        if worker.process.poll() is not None:
            raise WorkerExited(f"worker exited ({worker.process.returncode}):\n{worker.tail()}")

    stack_pids = _stack_pids(settings)
    sat = measure_saturation(SinkReader(client, streams), expected, worker.process.pid, check,
                             profiler, stack_pids)  # fmt: skip
    echo(f"pipeline: {sat.fps:,.0f} frames/s saturated, mean batch {sat.mean_batch:.1f}")
    if profiler is not None:
        echo(f"pipeline: {profiler.outcome}")
    points = []
    for phase, (load, rate) in enumerate(options.offered(sat.fps)):
        phase_streams = stream_ids(run_id, f"load{phase}", options.streams)
        point = measure_load(settings, pool, SinkReader(client, phase_streams), phase_streams,
                             load, rate, options.load_seconds, check, stack_pids)  # fmt: skip
        echo(f"load {load:.0%} ({rate:,.0f} frames/s): p50 {point.p50_ms:.1f} ms, "
             f"p95 {point.p95_ms:.1f} ms, p99 {point.p99_ms:.1f} ms, "
             f"mean batch {point.mean_batch:.2f}")  # fmt: skip
        points.append(point.to_dict())
    return {
        "pipeline_fps": round(sat.fps, 1),
        "pipeline_frames": sat.results,
        "pipeline_mean_batch": sat.mean_batch,
        "pipeline_stage_ms": sat.stage_ms,
        "loads": points,
        "worker_log": str(worker.log_path),
        **bare,
        "stage_costs_pipeline": {
            "worker_cpu_ms_per_frame": sat.worker_cpu_ms_per_frame,
            "worker_thread_cpu_ms_per_frame": sat.worker_thread_ms_per_frame,
            "machine_busy": sat.machine_busy,
            "stack_cpu_ms_per_frame": sat.stack_ms_per_frame,
        },
    }


def _stack_pids(settings: Settings) -> dict[str, int]:
    """The embedded broker's and Redis's pids, where the bench runs against them: they share
    the worker's cores, and what they spend per frame bounds the pipeline too."""
    stack = LocalStack(settings)
    pids = {"broker": stack.embedded_pid("kafka", settings.kafka_bootstrap),
            "redis": stack.embedded_pid("redis", settings.redis_url)}  # fmt: skip
    return {name: pid for name, pid in pids.items() if pid is not None}


def _bare(settings: Settings, records: int, echo: Echo) -> dict[str, Any]:
    run = bare_consume(settings, records)
    echo(f"bare consumer: {run.fps:,.0f} records/s over {run.records} records, no processing "
         "(the broker's own ceiling)")  # fmt: skip
    return {"bare_consume_fps": round(run.fps, 1), "bare_consume_records": run.records}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        index = torch.device(device).index
        return torch.cuda.get_device_name(index if index is not None else 0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu}, {os.cpu_count()} cores)"
