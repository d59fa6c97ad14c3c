"""`framewire retrain run|request|worker`: retraining a registered model on the newest
version of its dataset, gated and promoted (docs/MLOPS.md, "Retraining")."""

from __future__ import annotations

import json
import os
import socket

import click

from foundation.settings import Settings


@click.group()
def retrain() -> None:
    """Retrain a registered model on the newest data and promote it if the gate agrees."""


def _request_options(command):  # type: ignore[no-untyped-def]
    for option in reversed([
        click.argument("name"),
        click.option("--reason", default="manual", show_default=True),
        click.option("--dataset", default=None, help="dataset NAME  [default: production's]"),
        click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True),
        click.option("--device", default="auto", show_default=True),
    ]):  # fmt: skip
        command = option(command)
    return command


@retrain.command("run")
@_request_options
@click.pass_obj
def run(settings: Settings, name: str, reason: str, dataset: str | None, epochs: int,
        device: str) -> None:  # fmt: skip
    """Retrain now, in this process, printing each step."""
    from mlops.retrain.retrain import RetrainRequest
    from mlops.retrain.retrain import retrain as run_retrain
    from schemas import Event

    def say(event: Event) -> None:
        details = {k: v for k, v in event.fields.items() if k not in ("step", "model", "reason")}
        click.echo(f"retrain: {event.fields['step']} "
                   + ", ".join(f"{k}={v}" for k, v in details.items()))  # fmt: skip

    request = RetrainRequest(name, reason, dataset=dataset, epochs=epochs, device=device)
    outcome = run_retrain(settings, request, say)
    click.echo(json.dumps(outcome.to_dict()))
    if outcome.state == "failed":
        raise SystemExit(1)


@retrain.command("request")
@_request_options
@click.pass_obj
def request(settings: Settings, name: str, reason: str, dataset: str | None, epochs: int,
            device: str) -> None:  # fmt: skip
    """Queue a retrain for `framewire retrain worker`."""
    from mlops.retrain.retrain import RetrainRequest
    from mlops.tasks import request_retrain

    task_id = request_retrain(settings, RetrainRequest(name, reason, dataset=dataset,
                                                       epochs=epochs, device=device))  # fmt: skip
    click.echo(f"retrain of {name} queued: task {task_id}")


@retrain.command("worker")
@click.pass_obj
def worker(settings: Settings) -> None:
    """Serve the MLOps queues: `retrain` (retrains) and `monitor` (the scheduled monitor and
    retrain checks that `framewire beat` sends).

    Two threads, so a monitor run is not held up behind a retrain that takes minutes; two
    retrains of one model never run at once all the same (each holds the model's lease).
    """
    from mlops.tasks import QUEUES, create_mlops_app

    app = create_mlops_app(settings)
    app.worker_main(["worker", "--pool=threads", "--concurrency=2",
                     f"--queues={','.join(QUEUES)}",
                     f"--hostname=retrain-{socket.gethostname()}-{os.getpid()}@%h",
                     f"--loglevel={settings.log_level.upper()}", "--task-events",
                     "--without-mingle", "--without-gossip"])  # fmt: skip
