"""The streaming pipeline inside one worker process, wired from its stages.

    poll thread ──► decode pool ──► ready queue ──► device thread ──► finished queue
         ▲            (N threads)    (batcher)     (model, GPU)          │
         └──────── commit offsets ◄──── writer thread (Redis, Kafka) ◄───┘

Each arrow is a bounded hand-over; the poll thread pauses the partitions when the
number of frames in flight reaches the limit. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis

from foundation import collector
from foundation.log import get_logger
from foundation.settings import Settings
from models.device import resolve_device
from models.loader import LoadedModel
from models.spec import ModelCard
from schemas import Event
from workers import metrics
from workers.alarms import Alarms
from workers.backfill.lane import BackfillLane
from workers.batcher import DynamicBatcher
from workers.deadline import InferenceDeadline
from workers.decode import FrameDecoder
from workers.deliveries import DeliveryCounter
from workers.device import DeviceStage
from workers.device_decode import DecodePlan, DeviceJpegDecoder, select_decode
from workers.engine import InferenceEngine
from workers.model_threads import ModelThreads
from workers.model_watch import ModelWatcher, check_candidate, load_candidate
from workers.offsets import OffsetTracker, Partition
from workers.poller import FramePoller
from workers.sinks import KafkaSink, RedisSink
from workers.threads import name_os_thread
from workers.watchdog import Watchdog
from workers.work import WorkItem
from workers.writer import ResultWriter

log = get_logger(__name__)


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamingPipeline:
    def __init__(self, settings: Settings, worker: str | None = None) -> None:
        self.settings = settings
        self.worker = worker or default_worker_name()
        self.device = resolve_device(None if settings.device == "auto" else settings.device)
        self.started_at = time.time()
        limit = settings.in_flight_limit
        self.tracker = OffsetTracker()
        self.decoder = FrameDecoder(settings.max_frame_bytes, settings.max_frame_pixels)
        # The model's threads on a CPU device to begin with: FRAMEWIRE_CPU_THREADS, else
        # the cores the decode threads leave, which the device thread may raise to every
        # core once it has measured the model against decoding (workers/model_threads.py).
        threads = ModelThreads(os.cpu_count() or 1, settings.decode_threads)
        self.cpu_threads = settings.cpu_threads if settings.cpu_threads > 0 else threads.shared
        adaptive = self.device == "cpu" and settings.cpu_threads <= 0
        # What the decode threads do with a frame: decode_or_defer once JPEGs go to the GPU.
        self._decode = self.decoder.decode
        self.decode_plan: DecodePlan | None = None  # decided with the first model
        # Decode futures in poll order. Unbounded as a queue, bounded by the in-flight
        # limit: the poll thread must never block on a put (it keeps the group alive).
        self.ready: queue.Queue[Future[WorkItem]] = queue.Queue()
        self.finished: queue.Queue = queue.Queue(maxsize=limit)
        self.kafka_sink = KafkaSink(settings, self.worker)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        redis_sink = RedisSink(
            self.redis, settings.result_ttl_s, settings.stream_maxlen, settings.reply_ttl_s,
            settings.frame_copy_ttl_s,
        )
        self.decode_pool = ThreadPoolExecutor(
            settings.decode_threads, thread_name_prefix="framewire-decode",
            initializer=name_os_thread,
        )
        # Backfill tasks hand their batches to the device thread through this lane.
        self.backfill = BackfillLane(settings.backfill_share)
        self._backfill_engine: tuple[str, InferenceEngine] | None = None
        self.device_stage = DeviceStage(
            DynamicBatcher(self.ready, settings.max_batch, settings.max_delay_ms,
                           fill_from_decode=self.device == "cpu"),
            self._load_first_engine,
            self.finished,
            prepare_again=lambda item, engine: self._decode(item, engine.card.input),
            on_model_loaded=self._model_loaded,
            begin_redelivered=self._begin_redelivered,
            backfill=self.backfill,
            observe_every=settings.observe_every,
            model_threads=threads if adaptive else None,
        )
        self.model_source = settings.model or ""  # what the engine serving now came from
        self.model_watcher = ModelWatcher(
            settings, self._build_engine, self._serving_card, self._install, self._model_refused
        )
        self.writer = ResultWriter(
            self.finished, redis_sink, self.kafka_sink, self._done, self.worker
        )
        self.deliveries = DeliveryCounter(settings.redis_url, settings.group_id)
        self.poller = FramePoller(
            settings, self.tracker, self._submit, self._rebalanced, f"framewire-{self.worker}",
            self.deliveries,
        )  # fmt: skip
        self.alarms = Alarms(
            self.poller, settings.inference_deadline_s, self._event,
            flush=lambda: self.kafka_sink.flush(5),
        )  # fmt: skip
        deadline = InferenceDeadline(
            settings.inference_deadline_s, self.device_stage.running_since,
            self.alarms.deadline_exceeded,
        )  # fmt: skip
        self.watchdog = Watchdog([deadline.check, self.alarms.check_stall])

    # Lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        """Load the model (in the device thread), then start consuming."""
        # Torch, Celery and the rest live as long as the process: out of the collector's
        # walk (foundation/collector.py). The model, loaded next, stays within it.
        collector.time_collections(metrics.observe_gc_pause)
        metrics.GC_FROZEN.set(collector.freeze_long_lived())
        self.device_stage.start()
        if not self.device_stage.ready.wait(timeout_s) or self.device_stage.engine is None:
            raise RuntimeError(f"model did not load: {self.device_stage.load_error}")
        self.writer.start()
        self.poller.start()
        self.watchdog.start()
        self.model_watcher.start()
        self._event("worker", state="started")
        log.info("pipeline started", worker=self.worker, device=self.device,
                 decode_on=self.decode_on, topic=self.settings.frames_topic,
                 group=self.settings.group_id)  # fmt: skip

    def stop(self) -> None:
        """Finish in-flight frames, write and commit them, leave the group, stop."""
        self.watchdog.stop()
        self.model_watcher.stop()
        self.poller.stop()
        self.poller.join(self.settings.drain_timeout_s + 30)
        if self.tracker.in_flight():  # the drain timed out (a sink is down): stop retrying
            self.writer.stop(abort=True)
        self.device_stage.stop()
        self.device_stage.join(30)
        self.writer.stop()
        self.writer.join(30)
        if self.writer.is_alive():  # a sink still down: give up, nothing more is committed
            self.writer.stop(abort=True)
            self.writer.join(10)
        self.decode_pool.shutdown(wait=True, cancel_futures=True)
        self._event("worker", state="stopped")
        self.kafka_sink.close()
        self.redis.close()
        self.deliveries.close()
        log.info("pipeline stopped", worker=self.worker, **self.writer.counts)

    def request_reload(self, model: str | None) -> None:
        """Prepare this model (None: the configured source again) in the background and
        swap it in between batches; a model that fails is refused and the old one serves."""
        self.model_watcher.request(model)

    def alias_moved(self, name: str) -> bool:
        """A registered model's alias moved; True when this worker follows it and checks."""
        return self.model_watcher.alias_moved(name)

    # Hand-overs between stages ---------------------------------------------------------

    def _submit(self, item: WorkItem) -> None:
        if item.redelivered:
            # Decoded by the device thread, alone (workers/device.py): in its place in poll
            # order, but not in parallel with anything that could take the blame for it.
            item.finished = threading.Event()
            waiting: Future[WorkItem] = Future()
            waiting.set_result(item)
            self.ready.put(waiting)
            return
        engine = self.device_stage.engine
        assert engine is not None
        spec = engine.card.input
        self.ready.put(self.decode_pool.submit(self._decode, item, spec))

    def _done(self, items: list[WorkItem]) -> None:
        for item in items:
            self.tracker.finish(item.partition_key, item.record.offset, item.generation)
        metrics.IN_FLIGHT.set(self.tracker.in_flight())
        self.poller.frames_finished()
        alone = [item for item in items if item.finished is not None]
        if alone:
            self.deliveries.finished([(i.partition_key, i.record.offset) for i in alone])
            for item in alone:
                item.finished.set()

    def _begin_redelivered(self, item: WorkItem) -> None:
        """Record the start of a redelivered frame, or fail it as poison when its earlier
        starts never finished FRAMEWIRE_MAX_DELIVERIES times (counting the first, whose
        start is not recorded: the common case costs nothing)."""
        earlier = self.deliveries.record_start(item.partition_key, item.record.offset)
        if earlier + 1 >= self.settings.max_deliveries:
            item.fail("poison", f"poison: {earlier + 1} deliveries")
            metrics.POISON_FRAMES.inc()

    def _rebalanced(self, change: str, partitions: list[Partition]) -> None:
        log.info("partitions " + change, partitions=partitions)
        if partitions:
            key = "assigned" if change == "assigned" else "revoked"
            other = "revoked" if key == "assigned" else "assigned"
            self._event("rebalance", **{key: [p for _, p in partitions], other: []})

    def _load_first_engine(self) -> InferenceEngine:
        """The configured model, in the device thread (CUDA starts in the thread using it)."""
        candidate = load_candidate(self.settings, self.settings.model or None)
        check_candidate(candidate, None)
        engine = self._build_engine(candidate.model)
        self._plan_decode(engine)
        return engine

    def _plan_decode(self, engine: InferenceEngine) -> None:
        """Decide once, before the first frame is polled, where JPEGs are decoded; here in
        the device thread, since trying nvJPEG initialises CUDA."""
        plan = select_decode(self.settings.decode_on, engine.device)
        if plan.decoder is not None:
            self.device_stage.device_decode = DeviceJpegDecoder(plan.decoder, self.decoder,
                                                                engine.device)  # fmt: skip
            self._decode = self.decoder.decode_or_defer
        self.decode_plan = plan
        log.info("JPEG frames decoded on the " + plan.where, reason=plan.reason)

    def _build_engine(self, model: LoadedModel) -> InferenceEngine:
        return InferenceEngine(
            model, self.device, self.settings.max_batch, precision=self.settings.precision,
            cpu_threads=self.cpu_threads,
        )  # fmt: skip

    def build_engine_for(self, source: str) -> InferenceEngine:
        """An engine for a backfill job's own model, beside the live one (the last one is
        kept: a job's tasks on this worker load it once)."""
        cached = self._backfill_engine
        if cached is not None and cached[0] == source:
            return cached[1]
        candidate = load_candidate(self.settings, source)
        check_candidate(candidate, None)
        engine = self._build_engine(candidate.model)
        self._backfill_engine = (source, engine)
        return engine

    def _serving_card(self) -> ModelCard | None:
        engine = self.device_stage.engine
        return engine.card if engine is not None else None

    def _install(self, engine: InferenceEngine, source: str) -> None:
        self.model_source = source
        self.device_stage.install(engine)

    def _model_refused(self, source: str, version: str | None, reason: str) -> None:
        serving = self._serving_card()
        still = f"{serving.name}:{serving.version}" if serving else None
        log.error("model refused; the current model keeps serving", source=source,
                  version=version, reason=reason, serving=still)  # fmt: skip
        fields = {"source": source, "version": version, "serving": still}
        self._event("error", stage="model", reason=reason,
                    **{k: v for k, v in fields.items() if v is not None})  # fmt: skip

    def _model_loaded(self, engine: InferenceEngine) -> None:
        card = engine.card
        source = self.model_source or "built-in demo model"
        metrics.MODEL_INFO.info(
            {"name": card.name, "version": card.version, "device": self.device, "source": source}
        )
        memory = engine.device_memory_bytes()
        if memory is not None:
            metrics.DEVICE_MEMORY.set(memory)
        self._event("model", name=card.name, version=card.version, source=source)
        log.info("model loaded", model=card.name, version=card.version, device=self.device,
                 source=source)  # fmt: skip

    def _event(self, kind: str, **fields: Any) -> None:
        self.kafka_sink.send_event(Event(kind, self.worker, fields))

    # Observability ---------------------------------------------------------------------

    @property
    def decode_on(self) -> str | None:
        """Where JPEG frames are decoded: "device" or "cpu" (None before the model loads)."""
        return self.decode_plan.where if self.decode_plan else None

    def _model_threads_now(self) -> int | None:
        """The model's intra-op threads on a CPU device (None on CUDA)."""
        if self.device != "cpu":
            return None
        threads = self.device_stage.model_threads
        return threads.threads if threads is not None else self.cpu_threads

    def not_ready_reasons(self) -> list[str]:
        """Why the worker cannot serve now; empty when it can (workers/health.py)."""
        reasons = []
        if self.device_stage.engine is None:
            reasons.append("model not loaded")
        if not self.poller.joined.is_set():
            reasons.append("consumer has not joined its group")
        if self.poller.stall.stalled:
            reasons.append(f"stalled: lag {self.poller.stall.lag} and nothing received for "
                           f"{self.poller.stall.silent_for_s():.0f} s")  # fmt: skip
        return reasons

    def stats(self) -> dict[str, Any]:
        """What `celery inspect stats` and Flower show under `framewire`."""
        counts = self.writer.counts
        engine = self.device_stage.engine
        return {
            "worker": self.worker,
            "device": self.device,
            "decode_on": self.decode_on,
            "model_threads": self._model_threads_now(),
            "model": f"{engine.card.name}:{engine.card.version}" if engine else None,
            "model_source": self.model_source or None,
            "model_loading": self.model_watcher.loading,
            "topic": self.settings.frames_topic,
            "group": self.settings.group_id,
            "assigned": [f"{t}/{p}" for t, p in self.poller.assigned],
            "polled": self.poller.polled,
            "in_flight": self.tracker.in_flight(),
            "paused": self.poller.paused,
            "results_ok": counts["ok"],
            "dead_lettered": counts["dlq"],
            "batches": counts["batches"],
            "mean_batch": round(counts["batched_frames"] / counts["batches"], 2)
            if counts["batches"]
            else 0.0,
            "lag": sum(self.poller.lag.values()),
            "stalled": self.poller.stall.stalled,
            "fetch_max_wait_ms": self.poller.fetch_wait.ms,
            "uptime_s": round(time.time() - self.started_at, 1),
        }
