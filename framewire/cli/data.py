"""`framewire data ...`: Versioned datasets: import, list, show, diff, report (docs/MLOPS.md).

The logic is in mlops/data/; this module parses options and prints. A dataset is named
NAME@VERSION (NAME or NAME@latest: the newest version; a unique prefix of a version id
will do). Every error a user can fix is one line.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from foundation.settings import Settings
from framewire.dlq import parse_since
from mlops.data.diff import VersionDiff, diff_versions
from mlops.data.importers import Imported, import_folder
from mlops.data.store import SPLITS, DatasetError, DatasetStore, DatasetVersion
from mlops.data.topic_import import FrameFilter, import_topic

_SHOWN = 20  # items listed by diff, each list, unless --all


@click.group()
def data() -> None:
    """Versioned datasets: import, list, show, diff, report (docs/MLOPS.md)."""


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None


def _store(settings: Settings) -> DatasetStore:
    return DatasetStore.for_settings(settings)


# -- import --------------------------------------------------------------------------------


@data.command("import", short_help="Import a folder, or labelled frames from Kafka.")
@click.argument("folder", required=False, metavar="[DIR]")
@click.option("--name", required=True, help="dataset name (letters, digits, . _ -)")
@click.option("--labels", "labels_csv", metavar="CSV",
              help="for a flat folder: a CSV with columns file,label (file relative to DIR)")
@click.option("--from-topic", is_flag=True, help="import labelled frames (fw-label) from Kafka")
@click.option("--topic", metavar="T", help="with --from-topic: the topic [the frames topic]")
@click.option("--stream-id", metavar="S", help="with --from-topic: only this stream's frames")
@click.option("--since", metavar="T", help="with --from-topic: only frames captured since T: "
              "ISO-8601 (UTC unless a zone is given) or back from now: 30s, 10m, 2h, 1d, 1w")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.pass_obj
def import_(settings: Settings, folder: str | None, name: str, labels_csv: str | None,
            from_topic: bool, topic: str | None, stream_id: str | None, since: str | None,
            as_json: bool) -> None:  # fmt: skip
    """Import DIR (class folders become labels: DIR/LABEL/*.png) or, with --from-topic,
    the labelled frames of a Kafka topic. Importing the same images again changes nothing.
    """
    if from_topic == (folder is not None):
        raise click.ClickException("give a folder DIR or --from-topic (one of them)")
    topic_options = {"--topic": topic, "--stream-id": stream_id, "--since": since}
    if folder is not None and any(topic_options.values()):
        used = ", ".join(k for k, v in topic_options.items() if v)
        raise click.ClickException(f"{used}: only with --from-topic")
    if from_topic and labels_csv:
        raise click.ClickException("--labels: only with a folder")
    store = _store(settings)
    with _user_errors():
        if folder is not None:
            result = import_folder(store, name, Path(folder),
                                   Path(labels_csv) if labels_csv else None)  # fmt: skip
        else:
            select = FrameFilter(stream_id, _since_ms(since))
            result = import_topic(store, name, settings, topic, select)
    _print_imported(result, "records" if from_topic else "files", as_json)


def _since_ms(since: str | None) -> int | None:
    if since is None:
        return None
    try:
        return parse_since(since)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _print_imported(result: Imported, unit: str, as_json: bool) -> None:
    version = result.version
    if as_json:
        click.echo(json.dumps({
            "ref": version.ref, "version": version.version, "created": result.created,
            "parent": version.parent, unit: result.files, "items": len(version.items),
            "counts": version.counts(), "skipped": list(result.skipped),
            "left_out": result.left_out,
        }))  # fmt: skip
        return
    state = "new version" if result.created else "unchanged: the store already holds this"
    click.echo(f"{version.ref}  {state}")
    click.echo(f"  read {result.files:,} {unit}; the version has {_split_line(version)}, "
               f"{len(version.labels)} labels")  # fmt: skip
    if result.left_out:
        click.echo("  left out: " + ", ".join(f"{n:,} {why}" for why, n in result.left_out.items()))
    for line in result.skipped:
        click.echo(f"  skipped {line}")


# -- list, show -----------------------------------------------------------------------------


@data.command("list", short_help="Datasets and their versions, newest first.")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per version")
@click.pass_obj
def list_(settings: Settings, as_json: bool) -> None:
    """Every dataset name and its versions, newest first, with item counts per split."""
    store = _store(settings)
    names = store.names()
    if not names and not as_json:
        click.echo(f"no datasets in {store.root} (framewire data import DIR --name NAME)")
        return
    if not as_json:
        click.echo(f"{'DATASET':<22} {'VERSION':<17} {'CREATED':<20} {'ITEMS':>7} "
                   f"{'TRAIN':>7} {'VALID':>7} {'TEST':>7} {'LABELS':>6}")  # fmt: skip
    for name in names:
        with _user_errors():
            versions = [store.resolve(f"{name}@{v}") for v in reversed(store.history(name))]
        for n, version in enumerate(versions):
            _print_list_row(version, n == 0, as_json)


def _print_list_row(version: DatasetVersion, latest: bool, as_json: bool) -> None:
    per_split = {s: len(version.split(s)) for s in SPLITS}
    if as_json:
        click.echo(json.dumps({"name": version.name, "version": version.version,
                               "latest": latest, "created_at": version.created_at,
                               "parent": version.parent, "items": len(version.items),
                               "splits": per_split, "labels": len(version.labels)}))  # fmt: skip
        return
    click.echo(f"{version.name if latest else '':<22} {version.version:<17} "
               f"{_time(version.created_at):<20} {len(version.items):>7,} "
               f"{per_split['train']:>7,} {per_split['validation']:>7,} {per_split['test']:>7,} "
               f"{len(version.labels):>6}" + ("  (latest)" if latest else ""))  # fmt: skip


@data.command("show", short_help="One version: counts per split and label, origin.")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--items", "list_items", is_flag=True, help="also list every item")
@click.option("--json", "as_json", is_flag=True, help="one JSON object (with the items)")
@click.pass_obj
def show(settings: Settings, ref: str, list_items: bool, as_json: bool) -> None:
    """Counts per split and label, parent, created time, where the items came from."""
    store = _store(settings)
    with _user_errors():
        version = store.resolve(ref)
        latest = store.history(version.name)[-1] == version.version
    if as_json:
        click.echo(json.dumps(_version_json(version, latest)))
        return
    copies = sum(len(c) for c in version.also.values())
    click.echo(f"{version.ref}" + ("  (latest)" if latest else ""))
    click.echo(f"  created  {_time(version.created_at)}")
    click.echo(f"  parent   {version.parent or 'none'}")
    click.echo(f"  items    {len(version.items):,}: {_split_line(version)}"
               + (f" (+{copies:,} byte-identical {_plural(copies, 'copy', 'copies')} stored once)"
                  if copies else ""))  # fmt: skip
    click.echo(f"  from     {_origins(version)}")
    click.echo("")
    _print_counts(version)
    if list_items:
        click.echo("")
        for item in sorted(version.items, key=lambda i: i.source):
            click.echo(f"  {item.blob[:12]}  {item.split:<10} {item.label or '-':<16} "
                       f"{item.source}")  # fmt: skip


def _print_counts(version: DatasetVersion) -> None:
    counts = version.counts()
    labels = sorted({lb for split in counts.values() for lb in split})
    width = max([5, *map(len, labels)])
    click.echo(f"  {'LABEL':<{width}} " + " ".join(f"{s.upper():>10}" for s in SPLITS)
               + f" {'TOTAL':>8}")  # fmt: skip
    for label in labels:
        cells = [counts[s].get(label, 0) for s in SPLITS]
        click.echo(f"  {label:<{width}} " + " ".join(f"{n:>10,}" for n in cells)
                   + f" {sum(cells):>8,}")  # fmt: skip
    totals = [sum(counts[s].values()) for s in SPLITS]
    click.echo(f"  {'total':<{width}} " + " ".join(f"{n:>10,}" for n in totals)
               + f" {sum(totals):>8,}")  # fmt: skip


def _origins(version: DatasetVersion) -> str:
    """Files, or frames per topic: a source is a relative path or topic/partition/offset."""
    kinds: Counter[str] = Counter()
    for item in version.items:
        parts = item.source.rsplit("/", 2)
        is_frame = len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()
        kinds[f"frames from {parts[0]}" if is_frame else "files"] += 1
    return ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common()) or "nothing"


def _version_json(version: DatasetVersion, latest: bool) -> dict:
    return {
        "ref": version.ref, "name": version.name, "version": version.version,
        "latest": latest, "created_at": version.created_at, "parent": version.parent,
        "counts": version.counts(),
        "items": [{"blob": i.blob, "label": i.label, "split": i.split, "source": i.source,
                   "also": [list(c) for c in version.also.get(i.blob, ())]}
                  for i in version.items],
    }  # fmt: skip


# -- diff -----------------------------------------------------------------------------------


@data.command("diff", short_help="Items added, removed, relabelled between two versions.")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@click.option("--all", "show_all", is_flag=True, help=f"list every item, not the first {_SHOWN}")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.pass_obj
def diff(settings: Settings, old: str, new: str, show_all: bool, as_json: bool) -> None:
    """What B has that A has not: items (matched by their bytes) added, removed and
    relabelled, and the change of each label's count in each split."""
    store = _store(settings)
    with _user_errors():
        changes = diff_versions(store.resolve(old), store.resolve(new))
    if as_json:
        click.echo(json.dumps(changes.to_json()))
        return
    click.echo(f"{changes.old.ref} -> {changes.new.ref}")
    if changes.unchanged:
        click.echo("  same items, same labels")
        return
    click.echo(f"  {len(changes.added):,} added, {len(changes.removed):,} removed, "
               f"{len(changes.relabelled):,} relabelled")  # fmt: skip
    limit = None if show_all else _SHOWN
    _print_items("added", "+", [f"{i.source}  ({i.label or '-'}, {i.split})"
                                for i in changes.added], limit)  # fmt: skip
    _print_items("removed", "-", [f"{i.source}  ({i.label or '-'}, {i.split})"
                                  for i in changes.removed], limit)  # fmt: skip
    _print_items("relabelled", "~", [f"{r.item.source}  {r.old_label or '-'} -> "
                                     f"{r.item.label or '-'} ({r.item.split})"
                                     for r in changes.relabelled], limit)  # fmt: skip
    _print_count_changes(changes)


def _print_items(title: str, mark: str, lines: list[str], limit: int | None) -> None:
    if not lines:
        return
    click.echo(f"\n{title}:")
    for line in lines[:limit]:
        click.echo(f"  {mark} {line}")
    if limit is not None and len(lines) > limit:
        click.echo(f"  ... {len(lines) - limit:,} more (--all)")


def _print_count_changes(changes: VersionDiff) -> None:
    table = changes.count_changes()
    if not table:
        return
    width = max([5, *map(len, table)])
    click.echo("\ncount changes:")
    click.echo(f"  {'LABEL':<{width}} " + " ".join(f"{s.upper():>10}" for s in SPLITS))
    for label, delta in table.items():
        cells = (f"{delta[s]:+,}" if delta[s] else "0" for s in SPLITS)
        click.echo(f"  {label:<{width}} " + " ".join(f"{c:>10}" for c in cells))


# -- report ---------------------------------------------------------------------------------


@data.command("report", short_help="One HTML page: balance, quality, duplicates, samples.")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--out", required=True, metavar="FILE", help="the HTML file to write")
@click.option("--json", "as_json", is_flag=True, help="what was found, as one JSON object")
@click.pass_obj
def report(settings: Settings, ref: str, out: str, as_json: bool) -> None:
    """A self-contained HTML page (no network): class balance per split, image sizes,
    brightness, contrast and sharpness, a sample grid per class, exact and near
    duplicates, unreadable or truncated files."""
    from mlops.data.report import write_report  # matplotlib: only when a report is made

    store = _store(settings)
    with _user_errors():
        version = store.resolve(ref)
    summary = write_report(store, version, Path(out))
    if as_json:
        click.echo(json.dumps({
            "ref": version.ref, "out": str(summary.out), "items": summary.items,
            "unreadable": [{"source": s, "problem": p} for s, p in summary.unreadable],
            "duplicates": [{"kind": g.kind, "sources": [m.source for m in g.members],
                            "labels_differ": g.labels_differ, "splits_differ": g.splits_differ}
                           for g in summary.duplicates],
        }))  # fmt: skip
        return
    click.echo(f"wrote {summary.out}: {version.ref}, {summary.items:,} items, "
               f"{len(summary.unreadable)} unreadable, "
               f"{len(summary.duplicates)} duplicate "
               f"{_plural(len(summary.duplicates), 'group', 'groups')}")  # fmt: skip
    for source, problem in summary.unreadable[:_SHOWN]:
        click.echo(f"  unreadable  {source}: {problem}")
    for group in summary.duplicates[:_SHOWN]:
        click.echo(f"  {group.kind:<11} " + ", ".join(m.source for m in group.members[:5])
                   + (" ..." if len(group.members) > 5 else ""))  # fmt: skip


def _split_line(version: DatasetVersion) -> str:
    return ", ".join(f"{len(version.split(s)):,} {s}" for s in SPLITS)


def _time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many
