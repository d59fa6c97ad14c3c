"""`framewire feedback ...`: labels for frames, and joining them into datasets
(docs/MLOPS.md, "Feedback").

The logic is in mlops/feedback/; this module parses options and prints. Every error a user
can fix is one line.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
import redis

from foundation.settings import Settings
from framewire.dlq import parse_since
from mlops.data.store import DatasetError, DatasetStore
from mlops.feedback import (
    Collected,
    FeedbackError,
    collect,
    keep_frame_copies,
    send_feedback,
)
from mlops.feedback.collector import SHOWN
from schemas import Feedback, SchemaError


@click.group()
def feedback() -> None:
    """Labels for frames: send them, and collect them into a dataset (docs/MLOPS.md)."""


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except (FeedbackError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    except SchemaError as exc:
        raise click.ClickException(f"bad feedback: {exc}") from None
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis: {type(exc).__name__}: {exc}") from None


def _default_source() -> str:
    try:
        return f"operator:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry): still a person
        return "operator"


def _box(text: str | None) -> list[float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        return [float(part) for part in parts]
    except ValueError:
        raise click.ClickException(
            f"--box: expected x1,y1,x2,y2 (four numbers, pixels), got {text[:80]!r}"
        ) from None


@feedback.command("send", short_help="Give a frame a label (to the feedback topic).")
@click.argument("frame_id")
@click.argument("label")
@click.option("--source", metavar="S", help="who gives it [operator:<your login name>]")
@click.option("--note", metavar="T", help="free text kept with the label")
@click.option("--box", metavar="x1,y1,x2,y2", help="the labelled region, in pixels")
@click.pass_obj
def send(settings: Settings, frame_id: str, label: str, source: str | None, note: str | None,
         box: str | None) -> None:  # fmt: skip
    """Send LABEL for frame FRAME_ID (its fw-frame-id, as results show it). The collector
    joins it to the frame: `framewire feedback collect --dataset NAME`."""
    with _user_errors():
        item = Feedback(frame_id, label, source or _default_source(), box=_box(box), note=note)
        (where,) = send_feedback(settings, [item])
    click.echo(f"sent: frame {frame_id} is {label!r} ({item.source}) -> {where}")
    try:
        kept = keep_frame_copies(settings, [frame_id])
    except redis.RedisError as exc:  # the label is on Kafka: only the Redis copy is at risk
        click.echo(f"warning: frame copy not kept longer (Redis: {exc})", err=True)
        return
    if kept:
        click.echo(f"  its Redis copy is kept for {settings.result_ttl_s} s "
                   "(FRAMEWIRE_RESULT_TTL_S)")  # fmt: skip


@feedback.command("collect", short_help="Join new labels to their frames, as a new version.")
@click.option("--dataset", "name", required=True, metavar="NAME",
              help="the dataset that gets the labelled frames (created if new)")
@click.option("--since", metavar="T", help="every label given since T, not only the new ones: "
              "ISO-8601 (UTC unless a zone is given) or back from now: 30s, 10m, 2h, 1d, 1w")
@click.option("--retrain", "retrain_model", metavar="MODEL", default=None,
              help="queue a retrain of this registered model when the collect added at least "
              "--min-labels labelled frames (framewire retrain worker)")
@click.option("--min-labels", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.pass_obj
def collect_(settings: Settings, name: str, since: str | None, retrain_model: str | None,
             min_labels: int, as_json: bool) -> None:  # fmt: skip
    """Read the labels the feedback topic got since the last collect for NAME, join each to
    its frame (from the frames topic, or the frame's Redis copy), and add the labelled
    frames to NAME as a new version. The same labels twice make no new version."""
    since_ms = None
    if since is not None:
        try:
            since_ms = parse_since(since)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    with _user_errors():
        report = collect(DatasetStore.for_settings(settings), name, settings, since_ms)
    retrain_task = None
    if retrain_model and report.created and report.added >= min_labels:
        from mlops.retrain.retrain import RetrainRequest
        from mlops.tasks import request_retrain

        retrain_task = request_retrain(settings, RetrainRequest(
            retrain_model, f"feedback: {report.added} labels", dataset=name))  # fmt: skip
    if as_json:
        click.echo(json.dumps({**report.to_json(), "retrain_task": retrain_task}))
    else:
        _print_summary(report)
        if retrain_task:
            click.echo(f"retrain of {retrain_model} queued: task {retrain_task}")


def _print_summary(r: Collected) -> None:
    extras = [f"{n} {what}" for n, what in (
        (r.invalid, "not feedback/1"), (r.before_since, "given before --since"),
        (r.superseded, "replaced by a later label of the same frame"),
        (r.lost_to_retention, "deleted by retention before any collect"),
        (r.positions_reset, "partition(s) read from the start: the topic is newer than the "
                            "last collect's position"),
    ) if n]  # fmt: skip
    click.echo(f"{r.labels_read} labels read from {r.topic}"
               + (f" ({', '.join(extras)})" if extras else ""))  # fmt: skip
    click.echo(f"  joined from the frames topic  {r.joined_kafka}")
    click.echo(f"  joined from Redis copies      {r.joined_redis}")
    reasons = ", ".join(f"{n} {kind}" for kind, n in r.reasons().items())
    click.echo(f"  not joined                    {len(r.not_joined)}"
               + (f" ({reasons})" if reasons else ""))  # fmt: skip
    for miss in r.not_joined[:SHOWN]:
        click.echo(f"    {miss.frame_id[:40]:40}  {miss.label[:20]:20}  {miss.detail}")
    if len(r.not_joined) > SHOWN:
        click.echo(f"    ... and {len(r.not_joined) - SHOWN} more (--json lists them all)")
    v = r.version
    if v is None:
        click.echo(f"dataset {r.dataset}: no version (nothing joined)")
    elif r.created:
        click.echo(f"dataset {v.ref}: new version (parent {v.parent or 'none'}), "
                   f"{len(v.items)} items, {r.added} labelled frames")  # fmt: skip
    else:
        click.echo(f"dataset {v.ref}: unchanged (no new labels, or the version holds them)")
