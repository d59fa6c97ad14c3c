"""Kafka and Redis for a one-shot run (demo, bench): the running ones, or an embedded
stack on free ports that the caller's ExitStack stops."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from foundation.kafka import kafka_answers
from foundation.servers import free_port, redis_answers
from foundation.settings import Settings
from framewire.stack import LocalStack

Echo = Callable[[str], None]


def ensure_services(
    settings: Settings, workdir: Path, cleanup: ExitStack, echo: Echo, label: str = "stack"
) -> Settings:
    """Settings that reach a running Kafka and Redis, starting the embedded stack if needed.

    Running services are used when both answer (configured, or `framewire stack up`);
    otherwise a fresh embedded stack on free ports, with its state under workdir, is
    started and registered on cleanup to be stopped.
    """
    if kafka_answers(settings.kafka_bootstrap) and redis_answers(settings.redis_url):
        echo(f"{label}: using Kafka at {settings.kafka_bootstrap}, Redis at {settings.redis_url}")
        return settings
    local = settings.replace(state_dir=workdir)
    stack = LocalStack(local, kafka_port=free_port(), redis_port=free_port())
    for line in stack.up():
        if not line.startswith("export"):
            echo(f"{label}: {line}")
    cleanup.callback(lambda: [echo(f"{label}: {line}") for line in stack.down()])
    return local.replace(**stack.addresses)
