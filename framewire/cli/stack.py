"""`framewire stack up|down|status` and `framewire topics create`."""

from __future__ import annotations

import click

from foundation.kafka import create_topics
from foundation.settings import Settings
from framewire.stack import LocalStack
from framewire.stack_usage import WARN_RECORDS

port_option = click.IntRange(1, 65535)


@click.group()
def stack() -> None:
    """The embedded local stack: a Kafka-protocol broker and Redis on loopback."""


@stack.command()
@click.option("--kafka-port", type=port_option, help="[FRAMEWIRE_STACK_KAFKA_PORT, 9092]")
@click.option("--redis-port", type=port_option, help="[FRAMEWIRE_STACK_REDIS_PORT, 6379]")
@click.option(
    "--fresh",
    is_flag=True,
    help="stop the embedded broker and Redis first and start them empty: DISCARDS every "
    "frame and result they hold (external services are left alone)",
)
@click.pass_obj
def up(settings: Settings, kafka_port: int | None, redis_port: int | None, fresh: bool) -> None:
    """Start what is not configured externally, wait until it answers, create topics.

    The embedded broker keeps every record in memory and gets slower as it fills
    (`stack status` warns): `--fresh` restarts it empty, on the same ports.
    """
    _echo(LocalStack(settings, kafka_port, redis_port).up(fresh=fresh))


@stack.command()
@click.pass_obj
def down(settings: Settings) -> None:
    """Stop exactly the processes `stack up` started."""
    _echo(LocalStack(settings).down())


@stack.command()
@click.option(
    "--warn-records",
    type=click.IntRange(0),
    default=WARN_RECORDS,
    show_default=True,
    help="warn when the embedded broker holds more records than this in one topic",
)
@click.pass_obj
def status(settings: Settings, warn_records: int) -> None:
    """Say what runs where, and what the broker holds (records per topic, memory)."""
    _echo(LocalStack(settings).status(warn_records))


@click.group()
def topics() -> None:
    """Kafka topics of framewire."""


@topics.command("create")
@click.option("--partitions", type=click.IntRange(1), help="[FRAMEWIRE_PARTITIONS, 4]")
@click.pass_obj
def create(settings: Settings, partitions: int | None) -> None:
    """Create the frames, results, monitoring and DLQ topics where missing (idempotent)."""
    if partitions:
        settings = settings.replace(partitions=partitions)
    for topic in create_topics(settings):
        state = "created" if topic.created else "exists"
        click.echo(f"{topic.name}: {state}, {topic.partitions} partitions")


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)
