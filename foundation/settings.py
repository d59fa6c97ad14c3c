"""Every FRAMEWIRE_* setting, defined once.

A setting is a dataclass field whose metadata names its environment variable and how to
parse it. `Settings.load()` reads the environment, applies CLI overrides on top, and
remembers which names were set explicitly (the local stack needs to know whether Kafka
and Redis were pointed somewhere on purpose). A bad value raises SettingsError with a
one-line message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "FRAMEWIRE_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; str() is one line naming the variable."""


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise ValueError("must be between 0 and 1")
    return value


# A stock Apache Kafka broker refuses records above message.max.bytes (1,048,588 bytes by
# default, headers and framing included): a DLQ value of at most 1,000,000 bytes leaves room
# for the key and headers, which the DLQ writer clips too (schemas/dlq.py).
DLQ_VALUE_CEILING = 1_000_000


def _dlq_value_bytes(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= DLQ_VALUE_CEILING:
        raise ValueError(f"must be between 0 and {DLQ_VALUE_CEILING} (what a stock Kafka accepts)")
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _bootstrap(text: str) -> str:
    for server in text.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port[,host:port...]")
    return text.strip()


def _redis_url(text: str) -> str:
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return text


def _path(text: str) -> Path:
    return Path(text).expanduser()


def setting(default: Any, parse: Callable[[str], Any], help: str) -> Any:
    """A settings field: its env variable is FRAMEWIRE_ + the field name in upper case."""
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = setting(
        "localhost:9092", _bootstrap, "Kafka bootstrap servers (host:port, comma separated)"
    )
    redis_url: str = setting(
        "redis://localhost:6379/0", _redis_url, "Redis for results, latest-per-stream, replies"
    )
    celery_broker_url: str = setting(
        "", str, "Celery broker and result backend; default: the same Redis server, database 1"
    )
    topic_prefix: str = setting("framewire.", str, "prefix of every framewire topic")
    partitions: int = setting(4, _positive_int, "partitions of each topic created by framewire")
    replication_factor: int = setting(1, _positive_int, "replication factor of created topics")
    frames_retention_hours: float = setting(
        24.0, _non_negative_float, "how long the frames topic keeps frames (the replay window)"
    )
    state_dir: Path = setting(
        Path("~/.framewire"),
        _path,
        "where the local stack, models and datasets keep their files",
    )
    stack_kafka_port: int = setting(9092, _port, "loopback port of the embedded broker")
    stack_redis_port: int = setting(6379, _port, "loopback port of the embedded Redis")
    log_level: str = setting("info", _one_of("debug", "info", "warning", "error"), "log level")
    log_format: str = setting(
        "auto", _one_of("auto", "json", "console"), "auto: console on a terminal, else JSON"
    )
    # The worker.
    consumer_group: str = setting(
        "", str, "consumer group of the workers; default: the topic prefix + 'workers'"
    )
    auto_offset_reset: str = setting(
        "earliest", _one_of("earliest", "latest"), "where a new consumer group starts reading"
    )
    device: str = setting("auto", str, "auto (CUDA when available), cpu, cuda or cuda:N")
    model: str = setting(
        "", str, "model to serve: a model directory, or models:/NAME@ALIAS or models:/NAME/VERSION "
        "from the registry (extra 'registry'); default: the built-in demo model"
    )
    model_poll_s: float = setting(
        30.0, _non_negative_float, "how often a worker serving models:/NAME@ALIAS checks where "
        "the alias points (promote and rollback also tell the workers at once); 0: never"
    )
    max_batch: int = setting(32, _positive_int, "largest batch the device runs")
    max_delay_ms: float = setting(
        5.0, _non_negative_float, "longest a ready frame waits for a fuller batch while the "
        "device is busy, or on a CPU while a backlog is still in decode"
    )
    decode_threads: int = setting(
        min(8, os.cpu_count() or 1), _positive_int, "threads decoding and resizing frames"
    )
    precision: str = setting(
        "auto", _one_of("auto", "fp32", "bf16", "fp16"), "the model's number format: auto is "
        "bf16 or fp16 on CUDA (whichever the GPU runs natively) and fp32 on a CPU; bf16 on a "
        "CPU with AMX (Sapphire Rapids and later) runs the demo model 3x faster"
    )
    decode_on: str = setting(
        "auto", _one_of("auto", "cpu", "device"), "where JPEG frames are decoded and resized: "
        "device (a batch at a time with nvJPEG, torchvision.io.decode_jpeg, on the model's GPU), "
        "cpu (the decode threads) or auto (device when the model runs on CUDA and nvJPEG is "
        "available, else cpu); device where it is not available warns and decodes on the CPU"
    )
    cpu_threads: int = setting(
        0, _int, "the model's intra-op threads on a CPU device; 0: the cores left by the "
        "decode threads (at least 1), or every core once the model costs more CPU per frame "
        "than decoding"
    )
    max_in_flight: int = setting(
        0, _int, "frames polled but not finished before the poll thread stops consuming; "
        "0: 8 x max_batch"
    )
    max_frame_bytes: int = setting(
        10_000_000, _positive_int, "largest accepted frame record value (bytes)"
    )
    max_frame_pixels: int = setting(
        40_000_000, _positive_int, "largest accepted decoded frame (width x height)"
    )
    result_ttl_s: int = setting(86_400, _positive_int, "how long fw:result:{frame_id} lives")
    stream_maxlen: int = setting(
        1_000, _positive_int, "approximate length cap of each fw:stream:{id}:results"
    )
    reply_ttl_s: int = setting(120, _positive_int, "how long an unread gateway reply lives")
    # A copy of each frame's bytes in Redis, so a label can still be joined to its frame
    # when the frames topic no longer has it (mlops/feedback/, docs/MLOPS.md "Feedback").
    # Redis memory = frames/s x bytes per frame x TTL: 120 s of one 30 fps camera of 61 KB
    # JPEGs (640x480) is 220 MB, of the demo's 30 frames/s of 17.5 KB 63 MB. 120 s covers
    # the usual gap between a result and a label given on it (a gateway client or an
    # operator reacting to what they see; a gateway reply also lives 120 s), and a label
    # sent through framewire extends its frame's copy to the result's TTL, so the window
    # only has to reach the label, not the collector.
    frame_copy_ttl_s: int = setting(
        120, _non_negative_int, "how long the worker keeps a copy of each frame's bytes in Redis "
        "(fw:frame:{frame_id}) for joining labels to frames; 0: no copies"
    )
    metrics_port: int = setting(0, _int, "Prometheus /metrics port of the worker; 0: off")
    consumer_session_timeout_s: float = setting(
        10.0, _non_negative_float, "how long the group waits for a silent worker before its "
        "partitions go to the others (Kafka session.timeout.ms; the broker allows 6-1800 s "
        "by default)"
    )
    drain_timeout_s: float = setting(
        20.0, _non_negative_float, "how long shutdown or a revocation waits for in-flight frames"
    )
    # Reliability (docs/ARCHITECTURE.md, "Failure modes").
    dlq_max_value_bytes: int = setting(
        1_000_000, _dlq_value_bytes, "largest original value copied into a DLQ record; a larger "
        "one keeps a prefix and the original's coordinates, size and SHA-256"
    )
    max_deliveries: int = setting(
        3, _positive_int, "deliveries of a frame that never finished before it goes to the DLQ "
        "as poison, undecoded"
    )
    inference_deadline_s: float = setting(
        60.0, _non_negative_float, "longest a batch may run on the device before the worker "
        "exits for a restart (a hung model); 0: no deadline"
    )
    stall_after_s: float = setting(
        15.0, _non_negative_float, "seconds with lag and no record received before the worker "
        "reports a stall (event, metric, /readyz); 0: never"
    )
    # Drift monitoring (workers/observe.py, mlops/monitor/).
    observe_every: int = setting(
        10, _non_negative_int, "observe one device batch in this many: its frames' input "
        "statistics and embeddings go to the monitoring topic for the drift monitor; 0: never"
    )
    monitor_config: str = setting(
        "", str, "JSON file of drift thresholds per model name (\"*\": all): window, psi, js, "
        "ks_alpha, ks_distance, embedding, confirm, retrain_after, bad_share, stream_frames "
        "(mlops/monitor/checks.py)"
    )
    # Celery beat's schedule (mlops/tasks.py), served by `framewire retrain worker`.
    monitor_every_s: int = setting(
        0, _non_negative_int, "run the drift monitor every this many seconds, each run going "
        "on from the last (celery beat); 0: never. Instead of a `monitor --follow` service, "
        "not beside one: each would send its own drift events"
    )
    retrain_every_s: int = setting(
        0, _non_negative_int, "every this many seconds, retrain each production model whose "
        "dataset has a version newer than the one it was trained on (celery beat); 0: never"
    )
    # Backfill jobs (workers/backfill/, docs/OPERATIONS.md).
    backfill_share: float = setting(
        0.25, _fraction, "largest share (0..1) of a worker's device batches that backfill may "
        "take while live frames wait; an idle stream leaves the device to backfill"
    )
    backfill_batch: int = setting(
        32, _positive_int, "frames per backfill batch (the task's checkpoint step)"
    )
    # The registry's promotion gate (mlops/registry/gate.py).
    promotion_max_accuracy_drop: float = setting(
        0.01, _non_negative_float, "largest accuracy drop (0..1) against the production version "
        "that the promotion gate accepts"
    )
    promotion_max_recall_drop: float = setting(
        0.05, _non_negative_float, "largest drop (0..1) of any class's recall against the "
        "production version that the promotion gate accepts"
    )
    # The producers (the publisher's figures are measured: see producers/publisher.py).
    producer_acks: str = setting(
        "all", _one_of("all", "1", "0"), "acknowledgements a frame needs before it counts as sent"
    )
    producer_linger_ms: int = setting(
        5, _int, "how long the publisher waits to fill a batch of frames (ms)"
    )
    producer_batch_bytes: int = setting(
        1_048_576, _positive_int, "largest batch of frames per partition (bytes)"
    )
    producer_buffer_bytes: int = setting(
        33_554_432, _positive_int, "frames the publisher holds unacknowledged before send blocks"
    )
    producer_max_block_s: float = setting(
        30.0, _non_negative_float, "how long send blocks on a full buffer before it fails"
    )
    producer_idempotence: str = setting(
        "off", _one_of("off", "on"), "idempotent producer: on for Apache Kafka (Tansu refuses it)"
    )
    # The HTTP gateway (producers/gateway/, docs/GATEWAY.md).
    gateway_host: str = setting("127.0.0.1", str, "address the HTTP gateway listens on")
    gateway_port: int = setting(8080, _port, "port the HTTP gateway listens on")
    gateway_workers: int = setting(2, _positive_int, "gateway processes (gunicorn workers)")
    gateway_threads: int = setting(
        64, _positive_int, "request threads per gateway process (each waiting request holds one)"
    )
    gateway_timeout_ms: int = setting(
        10_000, _positive_int, "how long a gateway request waits for its results before a 504"
    )
    gateway_max_batch: int = setting(64, _positive_int, "most images in one batch request")
    gateway_max_body_bytes: int = setting(
        64_000_000, _positive_int, "largest gateway request body (bytes); larger is a 413"
    )
    gateway_max_in_flight: int = setting(
        48, _positive_int, "prediction requests per gateway process before a 503"
    )
    gateway_max_lag: int = setting(
        10_000, _int, "workers' consumer lag (frames) above which the gateway answers 503; 0: off"
    )
    api_keys: str = field(
        default="",
        metadata={"parse": str, "help": "comma-separated gateway API keys; empty: no auth"},
        repr=False,  # secrets stay out of logs and tracebacks
    )
    # Names that came from the environment or a CLI flag rather than a default.
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        # Expanded here rather than at import so a default follows the current $HOME.
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser())

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Defaults, then FRAMEWIRE_* variables, then overrides (CLI flags; None = not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in _setting_fields():
            var = env_name(f.name)
            if var in environ:
                values[f.name] = _parse(f.name, var, environ[var])
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in {f.name for f in _setting_fields()}:
                raise TypeError(f"unknown setting {name!r}")
            values[name] = _parse(name, "--" + name.replace("_", "-"), str(value))
        return cls(**values, explicit=frozenset(values))

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed; changed names count as explicit."""
        return replace(self, **changes, explicit=self.explicit | frozenset(changes))

    def to_env(self) -> dict[str, str]:
        """The explicit settings as FRAMEWIRE_* variables, to hand to a child process."""
        return {env_name(name): str(getattr(self, name)) for name in sorted(self.explicit)}

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @property
    def frames_topic(self) -> str:
        return self.topic("frames")

    @property
    def results_topic(self) -> str:
        return self.topic("results")

    @property
    def monitoring_topic(self) -> str:
        return self.topic("monitoring")

    @property
    def dlq_topic(self) -> str:
        return self.topic("frames.dlq")

    @property
    def backfill_results_topic(self) -> str:
        return self.topic("results.backfill")

    @property
    def feedback_topic(self) -> str:
        return self.topic("feedback")

    @property
    def group_id(self) -> str:
        return self.consumer_group or self.topic_prefix.rstrip(".-_") + "-workers"

    @property
    def in_flight_limit(self) -> int:
        # Every stage (decode, ready, device N and N+1, writer) should hold a full batch
        # with room to spare; the poll thread resumes only at half the limit. Measured on 2
        # CPU cores (docs/PERFORMANCE.md): 4 x max_batch let batches shrink to half of
        # max_batch and gave 563 frames/s, 8 x gave full batches and ~680.
        return self.max_in_flight if self.max_in_flight > 0 else 8 * self.max_batch

    @property
    def celery_url(self) -> str:
        """Celery keeps its queues in their own Redis database, away from results."""
        if self.celery_broker_url:
            return self.celery_broker_url
        parts = urlsplit(self.redis_url)
        if parts.scheme == "unix":
            return self.redis_url.split("?")[0] + "?db=1"
        return urlunsplit(parts._replace(path="/1"))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting: for `--help` texts and the README."""
    return [
        (env_name(f.name), str(f.default), f.metadata["help"]) for f in _setting_fields()
    ]


def _setting_fields() -> list:
    return [f for f in fields(Settings) if "parse" in f.metadata]


def _parse(name: str, source: str, text: str) -> Any:
    parse = next(f for f in _setting_fields() if f.name == name).metadata["parse"]
    try:
        return parse(text)
    except ValueError as exc:
        raise SettingsError(f"{source}={text!r}: {exc}") from None
