"""`framewire bench --soak MINUTES`: live cameras into one worker for a long time.

What it proves: that a worker keeps answering every frame of K live cameras for as long as
the run lasts, with its memory flat, on the stack the rest of the bench uses. A live camera
writes one record batch per frame, which is what makes the embedded broker's fetches
slower as it fills (framewire/stack_usage.py): a short benchmark never sees that, a soak
does. Every interval it prints one sample; at the end, a verdict.

- sent: frames the broker acknowledged (the publisher's count).
- answered: sent frame ids with `fw:result:{id}` in Redis. Only ids not found yet are
  checked again (pipelined EXISTS), so a sample costs what the backlog is, not the run.
- lag: the worker group's committed offsets against the end offsets (the gateway's
  LagMonitor; against Tansu it can read short by a batch per partition).
- RSS: VmRSS of the worker process and of the embedded broker (/proc/PID/status).
- stall lines: worker log lines containing "stalled" (its stall watchdog's reports).

"Worker memory flat": the least-squares slope of the worker's RSS over the second half of
the run (the first half is warm-up: allocator pools, model, caches) is below
FLAT_MB_PER_10MIN.
"""

from __future__ import annotations

import csv
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from foundation.kafka import create_topics
from foundation.rediskeys import result_key
from foundation.settings import Settings
from framewire.bench.options import BenchOptionError
from framewire.services import ensure_services
from framewire.stack import LocalStack
from framewire.stack_usage import rss_bytes
from framewire.worker_process import WorkerProcess
from producers.publisher import Publisher
from producers.synthetic import SyntheticSource
from schemas import Frame

Echo = Callable[[str], None]

# Worker memory counts as flat below this growth in the second half of the run. 5 MB per
# 10 min is 720 MB a day: small enough to catch a per-frame leak (at 30 frames/s one byte
# a frame is 0.5 MB per 10 min, so 10 bytes a frame shows), large enough to ignore the
# allocator's noise of a few MB.
FLAT_MB_PER_10MIN = 5.0
_EXISTS_CHUNK = 1_000  # ids per pipelined EXISTS round trip
_TICK_S = 0.25  # how often the loop looks at the worker and the drain between samples
STALL_TEXT = "stalled"  # the worker's watchdog logs "consumer stalled"


@dataclass(frozen=True)
class SoakOptions:
    minutes: float
    streams: int = 2
    fps: float = 15.0
    interval_s: float = 10.0
    device: str = "cpu"
    frame_width: int = 640
    frame_height: int = 480
    drain_s: float = 60.0  # after publishing stops, wait at most this long for results

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise BenchOptionError(f"--soak must be positive minutes, got {self.minutes}")
        if self.streams < 1:
            raise BenchOptionError(f"--soak-streams must be at least 1, got {self.streams}")
        if self.fps <= 0 or self.interval_s <= 0:
            raise BenchOptionError("--soak-fps and --soak-interval-s must be positive")


@dataclass(frozen=True)
class Sample:
    elapsed_s: float  # since publishing started
    sent: int
    answered: int
    lag: int | None
    worker_rss_mb: float | None
    broker_rss_mb: float | None
    stall_lines: int
    publishing: bool


def run_soak(settings: Settings, options: SoakOptions, echo: Echo) -> dict[str, Any]:
    """Run the soak; returns the summary (the --json object, samples included)."""
    from producers.gateway.overload import LagMonitor  # committed-offset lag, Tansu-proof

    workdir = settings.state_dir / "soak"
    run_id = uuid.uuid4().hex[:8]
    with ExitStack() as cleanup:
        settings = ensure_services(settings, workdir, cleanup, echo, label="soak")
        # Topics of this run's own: the broker's cost grows with what the topic holds, so
        # every soak starts from an empty frames topic, as a fresh stack would.
        settings = settings.replace(topic_prefix=f"{settings.topic_prefix}soak-{run_id}.")
        create_topics(settings)
        broker_pid = LocalStack(settings).embedded_pid("kafka", settings.kafka_bootstrap)
        client = redis.Redis.from_url(settings.redis_url)
        cleanup.callback(client.close)
        lag = LagMonitor(settings)
        cleanup.callback(lag.close)
        worker = WorkerProcess(settings, workdir / "logs", device=options.device)
        cleanup.callback(worker.stop)
        echo(f"soak: worker starting on {options.device} (log {worker.log_path})")
        worker.wait_ready()
        cameras = _Cameras(settings, options)
        cleanup.callback(cameras.stop)
        stalls = _LogCounter(worker.log_path, STALL_TEXT)
        answers = _AnswerCounter(client, cameras.frame_ids)
        echo(f"soak: {options.streams} live cameras x {options.fps:g} fps, "
             f"{options.frame_width}x{options.frame_height} JPEG, one record batch per frame, "
             f"for {options.minutes:g} min; a sample every {options.interval_s:g} s")  # fmt: skip

        def sample() -> Sample:
            return Sample(
                elapsed_s=round(time.monotonic() - cameras.started_at, 1),
                sent=cameras.sent,
                answered=answers.update(),
                lag=lag.reading(max_age_s=0).lag,
                worker_rss_mb=_mb(rss_bytes(worker.process.pid)),
                broker_rss_mb=_mb(rss_bytes(broker_pid)),
                stall_lines=stalls.update(),
                publishing=cameras.is_alive(),
            )

        cameras.start()
        samples, ending = _follow(sample, cameras, answers, worker, options, echo)
        summary = _summary(options, samples, cameras, answers, ending)
        summary["worker_log"] = str(worker.log_path)
        summary["broker"] = "embedded" if broker_pid is not None else settings.kafka_bootstrap
    return summary


def _follow(sample: Callable[[], Sample], cameras: _Cameras, answers: _AnswerCounter,
            worker: WorkerProcess, options: SoakOptions,
            echo: Echo) -> tuple[list[Sample], str]:  # fmt: skip
    """Sample every interval until publishing stops and every frame is answered (or the
    drain time runs out, or the worker dies). Ctrl-C stops publishing and drains; a second
    one aborts. Returns the samples and how the run ended."""
    samples = [sample()]
    echo(format_sample(samples[-1]))
    next_sample = time.monotonic() + options.interval_s
    drain_until: float | None = None
    ending = "drained"
    while True:
        try:
            time.sleep(_TICK_S)
        except KeyboardInterrupt:
            if not cameras.is_alive():
                raise
            echo("soak: interrupted; publishing stops, waiting for the last results")
            cameras.stop()
            ending = "interrupted"
        now = time.monotonic()
        if worker.process.poll() is not None:
            samples.append(sample())
            echo(f"soak: worker exited ({worker.process.returncode}):\n{worker.tail()}")
            return samples, "worker exited"
        if drain_until is None and not cameras.is_alive():
            drain_until = now + options.drain_s
        due = now >= next_sample
        if drain_until is not None and not due:
            # Draining: look more often than every interval, to end as soon as it is done.
            answers.update()
            due = answers.pending_count == 0 or now >= drain_until
        if due:
            samples.append(sample())
            echo(format_sample(samples[-1]))
            next_sample = now + options.interval_s
        if drain_until is not None and (answers.pending_count == 0 or now >= drain_until):
            if answers.pending_count:
                ending = f"drain time ({options.drain_s:g} s) ran out"
            return samples, ending


class _Cameras(threading.Thread):
    """K synthetic cameras published in real time, one frame at a time, ids remembered."""

    def __init__(self, settings: Settings, options: SoakOptions) -> None:
        super().__init__(name="soak-cameras", daemon=True)
        self.settings = settings
        self.source = SyntheticSource(
            streams=options.streams, fps=options.fps, seconds=options.minutes * 60, seed=0,
            width=options.frame_width, height=options.frame_height, realtime=True,
        )  # fmt: skip
        self.frame_ids: list[str] = []  # appended here, read by the sampler (append is atomic)
        self.started_at = time.monotonic()
        self.publisher: Publisher | None = None
        self.finished_at: float | None = None
        self.error: str | None = None
        self._stop_event = threading.Event()

    @property
    def sent(self) -> int:
        return self.publisher.stats.sent if self.publisher else 0

    @property
    def failed(self) -> int:
        return self.publisher.stats.failed if self.publisher else 0

    def stop(self) -> None:
        self._stop_event.set()

    def start(self) -> None:
        self.started_at = time.monotonic()
        super().start()

    def run(self) -> None:
        # linger_ms=0: each frame leaves as soon as it is made, a record batch of its own,
        # as from a live camera (the publisher's 5 ms linger may pair frames of two streams).
        try:
            with Publisher(self.settings, linger_ms=0) as self.publisher:
                self.publisher.publish(self._frames())
        except Exception as exc:  # reported in the summary; the sampler sees sends stop
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished_at = time.monotonic()

    def _frames(self) -> Iterator[Frame]:
        for frame in self.source:
            if self._stop_event.is_set():
                return
            self.frame_ids.append(frame.frame_id)
            yield frame


class _AnswerCounter:
    """How many of the sent frames have a result in Redis; each id is checked until found."""

    def __init__(self, client: redis.Redis, frame_ids: list[str]) -> None:
        self.client = client
        self.frame_ids = frame_ids
        self.taken = 0  # ids moved into pending so far
        self.answered = 0
        self._pending: list[str] = []

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def update(self) -> int:
        new = len(self.frame_ids)
        self._pending += self.frame_ids[self.taken : new]
        self.taken = new
        still: list[str] = []
        for i in range(0, len(self._pending), _EXISTS_CHUNK):
            chunk = self._pending[i : i + _EXISTS_CHUNK]
            pipe = self.client.pipeline(transaction=False)
            for frame_id in chunk:
                pipe.exists(result_key(frame_id))
            found = pipe.execute()
            still += [frame_id for frame_id, hit in zip(chunk, found, strict=True) if not hit]
        self.answered += len(self._pending) - len(still)
        self._pending = still
        return self.answered


class _LogCounter:
    """Lines containing text in a growing log file, read from where the last call stopped."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.needle = text.encode()
        self.count = 0
        self._offset = 0
        self._partial = b""

    def update(self) -> int:
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                data = log.read()
        except OSError:
            return self.count
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line is counted once it ends
        self.count += sum(self.needle in line for line in lines)
        return self.count


def _summary(options: SoakOptions, samples: list[Sample], cameras: _Cameras,
             answers: _AnswerCounter, ending: str) -> dict[str, Any]:  # fmt: skip
    answers.update()
    first, last = samples[0], samples[-1]
    missing = answers.pending_count + (len(cameras.frame_ids) - answers.taken)
    slope = rss_slope_mb_per_10min(samples)
    lags = [s.lag for s in samples if s.lag is not None]
    worker_rss = [s for s in samples if s.worker_rss_mb is not None]
    return {
        "minutes": options.minutes,
        "streams": options.streams,
        "fps_per_stream": options.fps,
        "interval_s": options.interval_s,
        "device": options.device,
        "frame_size": f"{options.frame_width}x{options.frame_height}",
        "ending": ending,
        "publishing_s": round((cameras.finished_at or time.monotonic()) - cameras.started_at, 1),
        "publisher_error": cameras.error,
        "frames_sent": cameras.sent,
        "frames_failed": cameras.failed,
        "frames_answered": answers.answered,
        "frames_missing": missing,
        "max_lag": max(lags) if lags else None,
        "worker_rss_start_mb": worker_rss[0].worker_rss_mb if worker_rss else None,
        "worker_rss_end_mb": worker_rss[-1].worker_rss_mb if worker_rss else None,
        "worker_rss_slope_mb_per_10min": slope,
        "broker_rss_start_mb": first.broker_rss_mb,
        "broker_rss_end_mb": last.broker_rss_mb,
        "stall_lines": last.stall_lines,
        "every_frame_answered": cameras.sent > 0 and missing == 0 and cameras.failed == 0,
        "worker_memory_flat": slope is not None and slope < FLAT_MB_PER_10MIN,
        "flat_limit_mb_per_10min": FLAT_MB_PER_10MIN,
        "samples": [asdict(s) for s in samples],
    }


def rss_slope_mb_per_10min(samples: list[Sample]) -> float | None:
    """Least-squares slope of the worker's RSS over the second half of the run, in MB per
    10 minutes; None with fewer than 3 samples there."""
    end = samples[-1].elapsed_s if samples else 0.0
    points = [(s.elapsed_s, s.worker_rss_mb) for s in samples
              if s.worker_rss_mb is not None and s.elapsed_s >= end / 2]  # fmt: skip
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_m = sum(m for _, m in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope_per_s = sum((t - mean_t) * (m - mean_m) for t, m in points) / var
    return round(slope_per_s * 600, 2)


def format_sample(s: Sample) -> str:
    return (
        f"soak {s.elapsed_s:7.0f} s  sent {s.sent:>8,}  answered {s.answered:>8,}  "
        f"lag {_num(s.lag):>6}  worker {_num(s.worker_rss_mb)} MB  "
        f"broker {_num(s.broker_rss_mb)} MB  stall lines {s.stall_lines}"
        + ("" if s.publishing else "  (draining)")
    )


def format_summary(s: dict[str, Any]) -> str:
    """The verdict people read."""
    yes = {True: "yes", False: "NO"}
    slope = s["worker_rss_slope_mb_per_10min"]
    lines = [
        f"framewire soak: {s['streams']} cameras x {s['fps_per_stream']:g} fps, "
        f"{s['minutes']:g} min on {s['device']} ({s['ending']})",
        f"  frames sent {s['frames_sent']:,}, answered {s['frames_answered']:,}, "
        f"missing {s['frames_missing']:,}, failed to send {s['frames_failed']:,}",
        f"  max consumer lag {_num(s['max_lag'])}",
        f"  worker RSS {_num(s['worker_rss_start_mb'])} -> {_num(s['worker_rss_end_mb'])} MB, "
        f"second-half slope {_num(slope)} MB per 10 min",
        f"  broker RSS {_num(s['broker_rss_start_mb'])} -> {_num(s['broker_rss_end_mb'])} MB",
        f"  worker log lines with {STALL_TEXT!r}: {s['stall_lines']}",
        f"  every frame answered: {yes[s['every_frame_answered']]}",
        f"  worker memory flat (slope < {s['flat_limit_mb_per_10min']:g} MB per 10 min in the "
        f"second half): {yes[s['worker_memory_flat']]}"
        + (" (too few samples)" if slope is None else ""),
    ]
    if s["publisher_error"]:
        lines.append(f"  publisher stopped: {s['publisher_error']}")
    return "\n".join(lines)


def write_csv(summary: dict[str, Any], path: Path) -> Path:
    rows = summary["samples"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def draw(summary: dict[str, Any], path: Path) -> Path:
    """Results against frames sent, lag and unanswered frames, and memory, over time."""
    from framewire.bench.plot import PlotUnavailable

    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers and CI
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'framewire[bench]'") from None
    rows = summary["samples"]
    minutes = [r["elapsed_s"] / 60 for r in rows]
    fig, (count, lag, mem) = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True)
    count.plot(minutes, [r["sent"] for r in rows], label="frames sent", linewidth=2.5)
    count.plot(minutes, [r["answered"] for r in rows], label="answered (result in Redis)",
               linestyle="--")  # fmt: skip
    count.set_ylabel("frames")
    count.legend(loc="upper left")
    lag.plot(minutes, [r["lag"] if r["lag"] is not None else float("nan") for r in rows],
             label="consumer lag (committed offsets)", color="C3")  # fmt: skip
    lag.plot(minutes, [r["sent"] - r["answered"] for r in rows], label="sent, not answered yet",
             color="C1", linestyle=":")  # fmt: skip
    lag.set_ylabel("frames")
    # Headroom above the largest value, so the legend never covers the lines.
    highest = max([r["lag"] or 0 for r in rows] + [r["sent"] - r["answered"] for r in rows])
    lag.set_ylim(0, max(highest, 1) * 1.6)
    lag.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 frames
    lag.legend(loc="upper left")
    _rss(mem, minutes, rows)
    mem.set_xlabel("minutes since the cameras started")
    stop = summary["publishing_s"] / 60
    for axis in (count, lag, mem):
        axis.grid(alpha=0.3)
        axis.axvline(stop, color="grey", linestyle="--", linewidth=1)
    count.annotate("cameras stop", (stop, 0), xytext=(-4, 4), textcoords="offset points",
                   ha="right", fontsize=8, color="grey")  # fmt: skip
    yes = {True: "yes", False: "NO"}
    fig.suptitle(
        f"framewire soak: {summary['streams']} cameras x {summary['fps_per_stream']:g} fps, "
        f"{summary['minutes']:g} min, {summary['device']}\n"
        f"every frame answered: {yes[summary['every_frame_answered']]} "
        f"({summary['frames_answered']:,} of {summary['frames_sent']:,}); worker memory flat: "
        f"{yes[summary['worker_memory_flat']]} "
        f"(second-half slope {_num(summary['worker_rss_slope_mb_per_10min'])} MB per 10 min)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rss(axis: Any, minutes: list[float], rows: list[dict[str, Any]]) -> None:
    # Two scales: the worker's few hundred MB would be a flat line beside a broker that
    # holds every frame (GBs).
    axis.plot(minutes, [_nan(r["worker_rss_mb"]) for r in rows], color="C0",
              label="worker RSS (left)")  # fmt: skip
    axis.set_ylabel("worker RSS (MB)", color="C0")
    # From zero, with headroom for the legend: allocator noise of a few MB must not look like
    # growth, and the line must not hide under the frame or the legend.
    top = max((r["worker_rss_mb"] for r in rows if r["worker_rss_mb"] is not None), default=1)
    axis.set_ylim(0, top * 1.35)
    handles, labels = axis.get_legend_handles_labels()
    if any(r["broker_rss_mb"] is not None for r in rows):
        broker = axis.twinx()
        broker.plot(minutes, [_nan(r["broker_rss_mb"]) for r in rows], color="C2",
                    label="broker RSS (right)")  # fmt: skip
        broker.set_ylabel("broker RSS (MB)", color="C2")
        broker_top = max(r["broker_rss_mb"] for r in rows if r["broker_rss_mb"] is not None)
        broker.set_ylim(0, broker_top * 1.35)
        more = broker.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axis.legend(handles, labels, loc="upper left")


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 1e6, 1)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"
