"""The `framewire` command: one click group, one module a verb group.

Global options override FRAMEWIRE_* variables; the resulting Settings object is ctx.obj
for every subcommand. Errors a user can fix (a bad setting, a taken port, an unreachable
service) end the command with one line, never a traceback.
"""

from __future__ import annotations

from typing import Any

import click
from kafka.errors import KafkaError

from foundation.log import configure_logging
from foundation.servers import ServerError
from foundation.settings import Settings, SettingsError
from framewire.cli.backfill import backfill
from framewire.cli.bench import bench
from framewire.cli.data import data
from framewire.cli.demo import demo
from framewire.cli.dlq import dlq
from framewire.cli.feedback import feedback
from framewire.cli.gateway import gateway
from framewire.cli.monitor import monitor
from framewire.cli.operate import beat, flower
from framewire.cli.produce import produce
from framewire.cli.registry import registry
from framewire.cli.results import results
from framewire.cli.retrain import retrain
from framewire.cli.stack import stack, topics
from framewire.cli.train import mlflow_group, train
from framewire.cli.train_demo import train_demo
from framewire.cli.worker import worker
from schemas import SchemaError

# Exceptions that mean "the user's input or environment is wrong", shown as one line.
USER_ERRORS = (SettingsError, ServerError, SchemaError, KafkaError, OSError)


class FramewireGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=FramewireGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kafka-bootstrap", help="Kafka bootstrap servers [FRAMEWIRE_KAFKA_BOOTSTRAP]")
@click.option("--redis-url", help="Redis URL [FRAMEWIRE_REDIS_URL]")
@click.option("--topic-prefix", help="topic name prefix [FRAMEWIRE_TOPIC_PREFIX]")
@click.option("--state-dir", help="directory for local state [FRAMEWIRE_STATE_DIR]")
@click.option("--log-level", help="debug|info|warning|error [FRAMEWIRE_LOG_LEVEL]")
@click.option("--log-format", help="auto|json|console [FRAMEWIRE_LOG_FORMAT]")
@click.version_option(package_name="framewire")
@click.pass_context
def cli(ctx: click.Context, **overrides: str | None) -> None:
    """framewire: streaming computer-vision inference over Kafka, Celery and Redis."""
    try:
        settings = Settings.load(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


cli.add_command(stack)
cli.add_command(topics)
cli.add_command(produce)
cli.add_command(worker)
cli.add_command(results)
cli.add_command(demo)
cli.add_command(train_demo)
cli.add_command(gateway)
cli.add_command(bench)
cli.add_command(data)
cli.add_command(train)
cli.add_command(mlflow_group)
cli.add_command(registry)
cli.add_command(dlq)
cli.add_command(flower)
cli.add_command(beat)
cli.add_command(backfill)
cli.add_command(feedback)
cli.add_command(monitor)
cli.add_command(retrain)


def main() -> None:
    cli(prog_name="framewire")
