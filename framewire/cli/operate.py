"""`framewire flower` and `framewire beat`: Celery's own tools on framewire's Celery app.

Both run Celery's command line in this process (`app.start`, as `framewire worker` runs
`app.worker_main`) with the app the workers use, built from these settings: the global
flags (`framewire --redis-url ... flower`) reach them as they reach every other command,
and a process manager's SIGTERM reaches Flower or beat directly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from foundation.log import get_logger
from foundation.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

log = get_logger(__name__)

# Flower reads its basic auth from this variable itself (user:password[,user:password]).
BASIC_AUTH_VARIABLE = "FLOWER_BASIC_AUTH"


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option(
    "--address", default="127.0.0.1", show_default=True,
    help="listen address; 0.0.0.0 in a container (then set FLOWER_BASIC_AUTH)",
)  # fmt: skip
@click.pass_obj
def flower(settings: Settings, port: int, address: str) -> None:
    """Serve Flower, Celery's dashboard: the workers with their `framewire` stats section
    (partitions, lag, batches, model), and tasks such as backfill jobs with their progress.

    Basic auth comes from FLOWER_BASIC_AUTH only, never from a flag: a flag's value is
    visible to every user of the machine in `ps` and stays in shell history. Without it the
    pages are open to anyone who reaches the port, and Flower's HTTP API answers 401 unless
    FLOWER_UNAUTHENTICATED_API=1 opens it too.
    """
    try:
        import flower as _flower  # noqa: F401  (registers `flower` with Celery's command line)
    except ImportError:
        raise click.ClickException(
            "framewire flower needs Flower: pip install 'framewire[flower]'"
        ) from None
    if not os.environ.get(BASIC_AUTH_VARIABLE):
        log.warning("flower is open: FLOWER_BASIC_AUTH is empty, no password is required",
                    address=address, port=port)  # fmt: skip
    _celery(settings).start(["flower", f"--port={port}", f"--address={address}"])


@click.command()
@click.pass_obj
def beat(settings: Settings) -> None:
    """Run Celery beat: sends the periodic MLOps tasks when they are due, to the `monitor`
    queue that `framewire retrain worker` serves: the drift monitor every
    FRAMEWIRE_MONITOR_EVERY_S, and a retrain of every model whose dataset has grown every
    FRAMEWIRE_RETRAIN_EVERY_S (0 turns either off).

    Run exactly one per deployment: two would send every periodic task twice. It keeps
    when each task last ran in a schedule file under the state directory, so a restart
    does not send them all again.
    """
    from mlops.tasks import create_mlops_app

    schedule = settings.state_dir / "beat" / "schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    create_mlops_app(settings).start(
        ["beat", f"--schedule={schedule}", f"--loglevel={settings.log_level.upper()}"]
    )


def _celery(settings: Settings) -> Celery:
    """The workers' app without their streaming bootstep (it only runs inside a worker)."""
    from workers.app import create_app  # here: `framewire --help` does not pay for Celery

    return create_app(settings, stream=False)
