"""`framewire dlq list|show|replay`: see and redrive the dead-letter topic.

The logic is in framewire/dlq.py; this module parses options and prints. Records are
named `PARTITION:OFFSET` of the DLQ topic, as `list` prints them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import click

from foundation.settings import Settings
from framewire.dlq import (
    DlqEntry,
    DlqError,
    Selection,
    iter_dlq,
    parse_id,
    parse_since,
    read_entry,
    reason_group,
    replay,
)
from schemas.dlq import DLQ_HEADERS

_REASON_CHARS = 60
_STREAM_CHARS = 16


@click.group()
def dlq() -> None:
    """See and replay dead letters (frames a worker could not use)."""


def _selection(
    reason: str | None, stage: str | None, since: str | None, ids: tuple[str, ...] = ()
) -> Selection:
    # Parsed here rather than by a click type: a bad value is one line, without the usage.
    try:
        since_ms = parse_since(since) if since else None
        id_set = frozenset(parse_id(text) for text in ids) if ids else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return Selection(reason=reason, stage=stage, since_ms=since_ms, ids=id_set)


def _entries(settings: Settings, select: Selection) -> Iterator[DlqEntry]:
    try:
        yield from (entry for entry in iter_dlq(settings) if select(entry))
    except DlqError as exc:
        raise click.ClickException(str(exc)) from None


_since_option = click.option(
    "--since",
    metavar="T",
    help="only records written since T: ISO-8601 (UTC unless a zone "
    "is given) or a duration back from now: 30s, 10m, 2h, 1d, 1w",
)
_reason_option = click.option(
    "--reason", metavar="R", help="only records whose reason contains R (any case)"
)
_stage_option = click.option(
    "--stage", metavar="S", help="only this stage: schema, decode, inference, poison, sink"
)


@dlq.command("list", short_help="List DLQ records and a summary by reason.")
@_since_option
@_reason_option
@_stage_option
@click.option("--json", "as_json", is_flag=True, help="one JSON object per record, no summary")
@click.pass_obj
def list_(
    settings: Settings, since: str | None, reason: str | None, stage: str | None, as_json: bool
) -> None:
    """One line per DLQ record, then the count of each stage and kind of reason.

    The kind of a reason is its text before the first ': ' (the header of a schema error,
    the exception of a decode or inference error, `poison`), digits shown as N.
    """
    select = _selection(reason, stage, since)
    groups: Counter[tuple[str, str]] = Counter()
    for entry in _entries(settings, select):
        if as_json:
            click.echo(json.dumps(entry.to_json()))
            continue
        if not groups:
            click.echo(_line(settings, "ID", "TIME", "STAGE", "STREAM", "SIZE", "COMPLETE",
                             "ORIGINAL", "REASON"))  # fmt: skip
        groups[entry.letter.stage, reason_group(entry.letter.reason)] += 1
        click.echo(_entry_line(settings, entry))
    if as_json:
        return
    total = sum(groups.values())
    if not total:
        click.echo(f"no dead letters on {settings.dlq_topic}" + (" selected" if select !=
                   Selection() else ""))  # fmt: skip
        return
    click.echo(f"\n{total} dead letter{'s' if total != 1 else ''}, by stage and reason:")
    for (stage_name, group), count in groups.most_common():
        click.echo(f"  {count:>6}  {stage_name:<10} {group}")


def _line(settings: Settings, *columns: str) -> str:
    # Lines are printed as records arrive, so widths are fixed: the original's coordinates
    # are the frames topic's name plus room for /partition/offset.
    original = len(settings.frames_topic) + 12
    return "{:<8} {:<20} {:<9} {:<16} {:>8}  {:<9} {:<{}} {}".format(
        *columns[:7], original, *columns[7:]
    )


def _entry_line(settings: Settings, entry: DlqEntry) -> str:
    letter = entry.letter
    stream = entry.stream_id or "-"
    if len(stream) > _STREAM_CHARS:
        stream = stream[: _STREAM_CHARS - 1] + "…"
    complete = "yes" if letter.complete else "no:" + ",".join(letter.incomplete)
    return _line(settings, entry.id, entry.time, letter.stage, stream,
                 _size(letter.original_size), complete, entry.original,
                 _clip(letter.reason, _REASON_CHARS))  # fmt: skip


def _clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _size(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@dlq.command(short_help="Everything about one DLQ record.")
@click.argument("record_id", metavar="ID")
@click.pass_obj
def show(settings: Settings, record_id: str) -> None:
    """Everything about one DLQ record ID (PARTITION:OFFSET): headers, key, sizes, and
    whether the carried value is the original (SHA-256)."""
    try:
        entry = read_entry(settings, record_id)
    except DlqError as exc:
        raise click.ClickException(str(exc)) from None
    letter = entry.letter
    rows = [
        ("id", f"{entry.id} on {settings.dlq_topic}"),
        ("time", f"{entry.time} ({entry.timestamp_ms})"),
        ("stage", letter.stage),
        ("reason", letter.reason),
        ("worker", letter.worker or "-"),
        ("stream", entry.stream_id or "-"),
        ("frame", entry.frame_id or "-"),
        ("original", entry.original),
        ("key", _show_bytes(letter.key)),
        ("value", f"{len(letter.value)} bytes carried of {letter.original_size}"),
        ("sha256", _sha_line(entry)),
        ("complete", "yes" if letter.complete else
         f"no: {', '.join(letter.incomplete)} cut (replay fetches the original)"),
    ]  # fmt: skip
    for name, value in rows:
        click.echo(f"{name + ':':<10}{value}")
    click.echo("original headers:" if letter.headers else "original headers: (none carried)")
    for name, value in letter.headers:
        click.echo(f"  {name}: {_show_bytes(value)}")
    click.echo("DLQ headers:")
    for name, value in entry.raw_headers:
        if name in DLQ_HEADERS:
            click.echo(f"  {name}: {_show_bytes(value)}")


def _sha_line(entry: DlqEntry) -> str:
    expected = entry.letter.original_sha256
    ok = entry.value_sha256_ok
    if ok is None:
        return f"{expected} (not checked: the value was cut to a prefix)"
    return f"{expected} ({'matches' if ok else 'MISMATCH with'} the carried value)"


def _show_bytes(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"{len(value)} bytes, not text: {value[:32].hex()}{'…' if len(value) > 32 else ''}"
    return _clip(repr(text)[1:-1], 300) if text.isprintable() else repr(text)[:300]


@dlq.command("replay", short_help="Send DLQ records back to the frames topic.")
@_reason_option
@_stage_option
@_since_option
@click.option("--id", "ids", multiple=True, metavar="ID",
              help="only this record (PARTITION:OFFSET); repeat for more")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="say what would be replayed, send nothing")
@click.pass_obj
def replay_(
    settings: Settings,
    reason: str | None,
    stage: str | None,
    since: str | None,
    ids: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Send the selected DLQ records (all when no option selects) back to the frames topic
    with their original key, value and headers, so each keeps its frame id.

    An incomplete record is fetched from the frames topic by its original coordinates and
    checked against its SHA-256; one the topic no longer holds is skipped. Exit status 1
    when any selected record was not replayed.
    """
    select = _selection(reason, stage, since, ids)
    verb = "would replay" if dry_run else "replayed"
    done = skipped = 0
    seen: set[tuple[int, int]] = set()
    for outcome in replay(settings, _entries(settings, select), dry_run=dry_run):
        entry = outcome.entry
        seen.add((entry.partition, entry.offset))
        if outcome.replayed:
            done += 1
            frame = f" frame {entry.frame_id}" if entry.frame_id else ""
            click.echo(f"{verb} {entry.id}{frame} ({outcome.detail}) -> {settings.frames_topic}")
        else:
            skipped += 1
            click.echo(f"skipped {entry.id}: {outcome.detail}")
    for partition, offset in sorted((select.ids or set()) - seen):
        skipped += 1
        click.echo(
            f"skipped {partition}:{offset}: no such DLQ record (or other options exclude it)"
        )
    click.echo(f"{'would_replay' if dry_run else 'replayed'}={done} skipped={skipped}")
    if skipped:
        raise click.ClickException(f"{skipped} selected record(s) not replayed (see above)")
