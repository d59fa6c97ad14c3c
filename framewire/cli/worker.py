"""`framewire worker`: one Celery worker process for one device."""

from __future__ import annotations

import os
import socket

import click

from foundation.settings import Settings


@click.command()
@click.option("--device", help="auto|cpu|cuda|cuda:N [FRAMEWIRE_DEVICE, auto]")
@click.option(
    "--model",
    help="model directory, models:/NAME@ALIAS or models:/NAME/VERSION "
    "[FRAMEWIRE_MODEL, built-in demo model]",
)
@click.option("--max-batch", type=click.IntRange(1), help="[FRAMEWIRE_MAX_BATCH, 32]")
@click.option("--max-delay-ms", type=click.FloatRange(0), help="[FRAMEWIRE_MAX_DELAY_MS, 5]")
@click.option("--decode-threads", type=click.IntRange(1), help="[FRAMEWIRE_DECODE_THREADS]")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="[FRAMEWIRE_METRICS_PORT]")
@click.option("--name", help="Celery node name [fw-DEVICE-HOST-PID]")
@click.pass_obj
def worker(settings: Settings, name: str | None, **flags: object) -> None:
    """Run a Celery GPU worker whose bootstep consumes frames from Kafka.

    One process per device: the model lives in this process (no fork after CUDA), so
    the Celery pool is `threads` with one slot (a backfill task; Celery's consumer keeps
    answering control commands beside it); decoding, batching and writing run in threads
    inside it.
    """
    from workers.process_env import missing_worker_env

    # Before anything loads torch, which reads it then (workers/process_env.py); the CLI
    # itself loads without torch (tests/test_worker_env.py holds it to that).
    os.environ.update(missing_worker_env(os.environ))
    # Imported here so that `framewire --help` does not pay for Celery and torch.
    from foundation.celery import QUEUES
    from workers.app import create_app

    given = {key: value for key, value in flags.items() if value is not None}
    settings = settings.replace(**given) if given else settings
    _check_model_source(settings.model)
    _check_device(settings.device)
    device = settings.device.replace(":", "")
    node = name or f"fw-{device}-{socket.gethostname()}-{os.getpid()}@%h"
    app = create_app(settings)
    app.worker_main(
        [
            "worker",
            "--pool=threads",  # one slot: backfill tasks run beside Celery's consumer
            "--concurrency=1",
            f"--queues={','.join(QUEUES)}",
            f"--hostname={node}",
            f"--loglevel={settings.log_level.upper()}",
            "--task-events",
            "--without-mingle",
            "--without-gossip",
        ]
    )


def _check_device(device: str) -> None:
    """One line and exit 1 when this worker cannot run on the device."""
    from models.device import resolve_device

    try:
        resolve_device(None if device == "auto" else device)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _check_model_source(model: str) -> None:
    """A registry URI that cannot be served ends the command with one line, before Celery."""
    from models.loader import ModelLoadError
    from models.registry import check_available, is_registry_uri, parse_model_uri

    if not is_registry_uri(model):
        return
    try:
        parse_model_uri(model)
        check_available()
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from None
