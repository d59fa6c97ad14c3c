"""`framewire results get|tail`: read results from Redis or the results topic."""

from __future__ import annotations

import json

import click
import redis

from foundation.kafka import topic_reader
from foundation.rediskeys import result_key, stream_key
from foundation.settings import Settings


@click.group()
def results() -> None:
    """Read results: one by frame id, or a live tail."""


@results.command()
@click.argument("frame_id")
@click.pass_obj
def get(settings: Settings, frame_id: str) -> None:
    """Print the result/1 JSON of FRAME_ID from Redis."""
    client = redis.Redis.from_url(settings.redis_url)
    value = client.get(result_key(frame_id))
    if value is None:
        raise click.ClickException(f"no result for frame {frame_id} (unknown, or expired)")
    click.echo(json.dumps(json.loads(value), indent=2))


@results.command()
@click.option("--stream-id", help="only this stream (read from its Redis Stream)")
@click.option("--from-beginning", is_flag=True, help="start at the oldest kept result")
@click.option("--limit", type=click.IntRange(1), help="stop after this many results")
@click.pass_obj
def tail(
    settings: Settings, stream_id: str | None, from_beginning: bool, limit: int | None
) -> None:
    """Print results as they arrive, one JSON line each (Ctrl-C stops)."""
    if stream_id:
        lines = _tail_stream(settings, stream_id, from_beginning)
    else:
        lines = _tail_topic(settings, from_beginning)
    try:
        for count, line in enumerate(lines, start=1):
            click.echo(line)
            if limit and count >= limit:
                break
    except KeyboardInterrupt:
        pass


def _tail_stream(settings: Settings, stream_id: str, from_beginning: bool):
    client = redis.Redis.from_url(settings.redis_url)
    last = "0-0" if from_beginning else "$"
    while True:
        for _, entries in client.xread({stream_key(stream_id): last}, block=1000) or []:
            for entry_id, fields in entries:
                last = entry_id
                yield fields[b"result"].decode()


def _tail_topic(settings: Settings, from_beginning: bool):
    try:
        consumer = topic_reader(settings, [settings.results_topic], from_beginning)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        while True:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    yield record.value.decode()
    finally:
        consumer.close()
