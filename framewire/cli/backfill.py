"""`framewire backfill`: re-score history on the workers, and follow the job.

    framewire backfill --from 2h --to 1h [--stream-id S] [--model M] [--wait]
    framewire backfill --source video.mp4 | --source images/ | --source-topic T
    framewire backfill status JOB | cancel JOB | resume JOB
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings

_POLL_S = 0.5


@click.group(invoke_without_command=True)
@click.option("--from", "since", metavar="TIME", help="capture time from (ISO-8601 or 2h ago)")
@click.option("--to", "until", metavar="TIME", help="capture time up to, excluded  [default: now]")
@click.option("--stream-id", help="only this stream (topic ranges); the stream id (files)")
@click.option("--model", help="model to score with (directory or models:/ URI) "
              "[default: the one each worker serves]")  # fmt: skip
@click.option("--source", type=click.Path(exists=True, path_type=Path),
              help="a video file or an image folder (a path the workers can read)")
@click.option("--source-topic", metavar="TOPIC", help="a topic of frame/1 records "
              "[default: the frames topic]")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="also replace the live results in Redis")
@click.option("--job", "job_id", help="job id  [default: bf-<time>-<random>]")
@click.option("--wait", is_flag=True, help="show progress until the job ends; exit 1 if it fails")
@click.pass_context
def backfill(ctx: click.Context, since: str | None, until: str | None, stream_id: str | None,
             model: str | None, source: Path | None, source_topic: str | None, overwrite: bool,
             job_id: str | None, wait: bool) -> None:  # fmt: skip
    """Re-run inference over past frames (a time range of a topic, a video, a folder).

    Tasks go to the workers' `backfill` queue, one per partition, file or chunk of 500
    images; live frames keep priority on each worker's device. Results go to the
    results.backfill topic and fw:backfill:JOB:result:FRAME_ID in Redis.
    """
    if ctx.invoked_subcommand is not None:
        return
    from framewire.backfill import Backfills, JobError, new_job_id
    from framewire.dlq import parse_since
    from workers.backfill.plan import PlanError, file_tasks, topic_tasks

    settings: Settings = ctx.obj
    if source is not None and (since or until or source_topic):
        raise click.UsageError("--source reads a file or folder: no --from, --to or --source-topic")
    if source is None and since is None and source_topic is None:
        raise click.UsageError("say what to backfill: --from TIME, --source PATH or "
                               "--source-topic TOPIC")  # fmt: skip
    job = job_id or new_job_id()
    options: dict[str, Any] = {"model": model, "overwrite": overwrite}
    try:
        if source is not None:
            tasks = file_tasks(job, source, stream_id, **options)
        else:
            since_ms = parse_since(since, flag="--from") if since else None
            until_ms = parse_since(until, flag="--to") if until else None
            if since_ms is not None and until_ms is not None and until_ms <= since_ms:
                raise click.UsageError("--to must be after --from")
            tasks = topic_tasks(settings, job, source_topic or settings.frames_topic,
                                since_ms, until_ms, stream_id, **options)  # fmt: skip
        backfills = Backfills(settings)
        backfills.submit(job, tasks, {"argv": sys.argv[1:], "submitted_at": time.time()})
    except (PlanError, JobError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backfill job {job}: {len(tasks)} task(s) queued")
    if wait:
        _wait(backfills, job)


@backfill.command("status")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.pass_obj
def status(settings: Settings, job: str, as_json: bool) -> None:
    """A job's state and each task's progress."""
    from framewire.backfill import Backfills, JobError

    try:
        report = Backfills(settings).status(job)
    except JobError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    total = "?" if report.total is None else f"{report.total:,}"
    click.echo(f"job {job}: {report.state}, {report.done:,} of {total} positions")
    click.echo(f"  {'task':<6} {'state':<12} {'done':>9} {'total':>9} {'scored':>9} "
               f"{'skipped':>8} {'frames/s':>9}  worker")  # fmt: skip
    for t in report.tasks:
        p = t.progress()
        click.echo(f"  {p['task']:<6} {p['state']:<12} {p['done']:>9,} "
                   f"{'?' if p['total'] is None else format(p['total'], ','):>9} "
                   f"{p['scored']:>9,} {p['skipped']:>8,} {p['frames_per_s']:>9.1f}  "
                   f"{p['worker'] or '-'}")  # fmt: skip
        if p["error"]:
            click.echo(f"         error: {p['error']}")


@backfill.command("cancel")
@click.argument("job")
@click.pass_obj
def cancel(settings: Settings, job: str) -> None:
    """Stop a job: queued tasks are revoked, running ones stop after their chunk."""
    from framewire.backfill import Backfills, JobError

    try:
        report = Backfills(settings).cancel(job)
    except JobError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"job {job}: {report.state} ({report.done:,} positions done)")


@backfill.command("resume")
@click.argument("job")
@click.option("--wait", is_flag=True, help="show progress until the job ends")
@click.pass_obj
def resume(settings: Settings, job: str, wait: bool) -> None:
    """Queue a job's unfinished tasks again; each continues from its checkpoint."""
    from framewire.backfill import Backfills, JobError

    backfills = Backfills(settings)
    try:
        specs = backfills.resume(job)
    except JobError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"job {job}: {len(specs)} task(s) queued again")
    if wait:
        _wait(backfills, job)


def _wait(backfills: Any, job: str) -> None:
    """A progress bar until the job ends; exit 1 unless every task is done."""
    report = backfills.status(job)
    length = report.total or 0
    with click.progressbar(length=length or 1, label=job, file=sys.stderr,
                           show_pos=bool(length)) as bar:  # fmt: skip
        shown = 0
        while not report.ended:
            time.sleep(_POLL_S)
            report = backfills.status(job)
            step = min(report.done, length) - shown if length else 0
            if step > 0:
                bar.update(step)
                shown += step
    click.echo(f"job {job}: {report.state}, {report.done:,} positions, "
               f"{sum(t.scored for t in report.tasks):,} frames scored")  # fmt: skip
    failed = [t for t in report.tasks if t.state == "failed"]
    for t in failed:
        click.echo(f"  task {t.spec.task} failed: {t.error}", err=True)
    if report.state != "done":
        sys.exit(1)
