"""`framewire stack up|down|status` and `framewire topics create`."""

from __future__ import annotations

import click

from framewire.kafka import create_topics
from framewire.settings import Settings
from framewire.stack import LocalStack

port_option = click.IntRange(1, 65535)


@click.group()
def stack() -> None:
    """The embedded local stack: a Kafka-protocol broker and Redis on loopback."""


@stack.command()
@click.option("--kafka-port", type=port_option, help="[FRAMEWIRE_STACK_KAFKA_PORT, 9092]")
@click.option("--redis-port", type=port_option, help="[FRAMEWIRE_STACK_REDIS_PORT, 6379]")
@click.pass_obj
def up(settings: Settings, kafka_port: int | None, redis_port: int | None) -> None:
    """Start what is not configured externally, wait until it answers, create topics."""
    _echo(LocalStack(settings, kafka_port, redis_port).up())


@stack.command()
@click.pass_obj
def down(settings: Settings) -> None:
    """Stop exactly the processes `stack up` started."""
    _echo(LocalStack(settings).down())


@stack.command()
@click.pass_obj
def status(settings: Settings) -> None:
    """Say what runs where."""
    _echo(LocalStack(settings).status())


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
