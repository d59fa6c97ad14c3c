"""`framewire registry ...`: list, show, promote with a validation gate, rollback, import.

The logic is in mlops/registry/ (store, gate, deploy); this module parses options and
prints. Errors a user can fix are one line.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings

_CLASSES_SHOWN = 12


def _one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Registry, dataset and model errors end the command with one line."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from mlops.data.store import DatasetError
        from mlops.registry.store import RegistryError
        from models.loader import ModelLoadError

        # MLflow and alembic log their database set-up at INFO on stderr: not ours to show.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            return command(*args, **kwargs)
        except (RegistryError, DatasetError, ModelLoadError) as exc:
            raise click.ClickException(" ".join(str(exc).split())) from None

    return run


@click.group()
def registry() -> None:
    """The model registry: list, show, promote with a validation gate, rollback, import."""


@registry.command("list")
@click.pass_obj
@_one_line_errors
def list_models(settings: Settings) -> None:
    """Every registered model's versions, aliases, dataset and accuracy."""
    from mlops.registry.store import ACCURACY_TAG, Registry

    reg = Registry(settings)
    rows = [("MODEL", "VERSION", "ALIASES", "DATASET", "ACCURACY", "CREATED")]
    for name in reg.names():
        for v in reg.versions(name):
            rows.append((name, v.version, ",".join(v.aliases) or "-", v.dataset or "-",
                         _figure(v.tags.get(ACCURACY_TAG)), _when(v.created_at)))  # fmt: skip
    if len(rows) == 1:
        click.echo("no registered models (framewire registry import PATH --name NAME)")
        return
    _table(rows)


@registry.command()
@click.argument("name")
@click.argument("version", required=False)
@click.pass_obj
@_one_line_errors
def show(settings: Settings, name: str, version: str | None) -> None:
    """A registered model (versions, aliases, promotion history), or one version."""
    from mlops.registry.store import Registry

    reg = Registry(settings)
    if version is None:
        versions = reg.versions(name)
        click.echo(f"{name}: {len(versions)} version(s)")
        for v in versions:
            aliases = f"  [{', '.join(v.aliases)}]" if v.aliases else ""
            click.echo(f"  {v.version:>4}  {_when(v.created_at)}  dataset {v.dataset or '-'}"
                       f"{aliases}")  # fmt: skip
        history = reg.history(name)
        click.echo("history:" if history else "history: none")
        for h in history:
            forced = "  FORCED: " + "; ".join(h.reasons) if h.forced else ""
            click.echo(f"  {_when(h.at)}  {h.action:<8} {h.alias} -> {h.version} "
                       f"(was {h.previous or '-'}) by {h.by}{forced}")  # fmt: skip
        return
    v = reg.version(name, version)
    card = reg.card(name, v.version)
    click.echo(f"{name} version {v.version}")
    click.echo(f"  created   {_when(v.created_at)}")
    click.echo(f"  aliases   {', '.join(v.aliases) or '-'}")
    click.echo(f"  source    {v.source}")
    click.echo(f"  run       {v.run_id or '-'}")
    click.echo(f"  card      {card.architecture}, {card.task}, input {card.input.width}x"
               f"{card.input.height} {card.input.channel_order} {card.input.resize}")  # fmt: skip
    click.echo(f"  labels    {', '.join(card.labels)}")
    for key, value in sorted(v.tags.items()):
        click.echo(f"  tag       {key} = {value}")


@registry.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="registered model name")
@click.option("--card", type=click.Path(path_type=Path),
              help="model.json for a TorchScript file (architecture \"torchscript\")")
@click.option("--dataset", "dataset_ref",
              help="NAME@VERSION it is validated on: evaluated now, used by the gate")
@click.option("--device", default="cpu", show_default=True, help="device for the evaluation")
@click.pass_obj
@_one_line_errors
def import_model(
    settings: Settings, path: Path, name: str, card: Path | None, dataset_ref: str | None,
    device: str,
) -> None:  # fmt: skip
    """Register a model trained elsewhere: a model directory (model.json + weights.pt or
    model.ts), or a TorchScript file with --card."""
    from mlops.data.store import DatasetStore
    from mlops.evaluate import evaluate
    from mlops.registry.store import (
        ACCURACY_TAG,
        DATASET_TAG,
        Registry,
        model_directory_for,
    )
    from models.loader import load_model

    tags = {}
    with tempfile.TemporaryDirectory(prefix="framewire-import-") as workdir:
        directory = model_directory_for(path, card, Path(workdir))
        model = load_model(directory)  # refuse what a worker could not load, before anything
        if dataset_ref:
            store = DatasetStore.for_settings(settings)
            dataset = store.resolve(dataset_ref)
            items = dataset.split("validation")
            if not items:
                raise click.ClickException(f"dataset {dataset.ref} has no validation images")
            result = evaluate(model, store, items, device=device)
            tags = {DATASET_TAG: dataset.ref, ACCURACY_TAG: f"{result.accuracy:.4f}"}
        reg = Registry(settings)
        version = reg.register(directory, name, tags)
    summary = f", accuracy {tags[ACCURACY_TAG]} on {tags[DATASET_TAG]}" if tags else ""
    click.echo(f"registered {name} version {version.version} ({model.card.architecture}, "
               f"{len(model.card.labels)} labels{summary})")  # fmt: skip


@registry.command()
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="production", show_default=True)
@click.option("--force", is_flag=True, help="promote even if the gate refuses (recorded)")
@click.option("--device", default="cpu", show_default=True, help="device for the evaluation")
@click.pass_obj
@_one_line_errors
def promote(
    settings: Settings, name: str, version: str, alias: str, force: bool, device: str
) -> None:
    """Point ALIAS at VERSION if the validation gate accepts it; tell the workers."""
    from mlops.registry.promote import promote as run_promotion

    promotion = run_promotion(settings, name, version, alias, force=force, device=device)
    decision = promotion.decision
    if decision.production == decision.candidate:
        click.echo(f"{name}@{alias} is already version {version}: nothing to do")
        return
    if decision.production is None:
        click.echo(f"{name}@{alias} points nowhere yet: nothing to regress from")
    for comparison in decision.comparisons:
        _print_comparison(comparison, decision)
    margins = (f"margins: accuracy -{settings.promotion_max_accuracy_drop:g}, "
               f"recall -{settings.promotion_max_recall_drop:g}")  # fmt: skip
    if not decision.accepted:
        click.echo(f"gate: REFUSED ({margins})")
        for reason in decision.reasons:
            click.echo(f"  - {reason}")
        if not force:
            raise click.ClickException(
                f"{name} version {version} not promoted (--force overrides, and is recorded)"
            )
        click.echo("--force: promoting anyway; recorded in the history")
    else:
        click.echo(f"gate: accepted ({margins})")
    entry = promotion.entry
    assert entry is not None
    click.echo(f"{name}@{alias}: {entry.previous or '-'} -> {entry.version}")
    click.echo(promotion.notified)


@registry.command()
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@click.pass_obj
@_one_line_errors
def rollback(settings: Settings, name: str, alias: str) -> None:
    """Point ALIAS back at the version it had before the last promotion; tell the workers."""
    from mlops.registry.deploy import notify_workers
    from mlops.registry.store import Registry

    reg = Registry(settings)
    current, previous = reg.rollback_target(name, alias)
    reg.move_alias(name, alias, previous, "rollback")
    click.echo(f"{name}@{alias}: {current} -> {previous} (rolled back)")
    click.echo(notify_workers(settings, name))


def _print_comparison(comparison: Any, decision: Any) -> None:
    cand, prod = comparison.candidate, comparison.production
    click.echo(f"validation split of {comparison.dataset} ({comparison.images} images):")
    rows = [("", f"v{decision.production} (now)", f"v{decision.candidate} (candidate)", "change"),
            ("accuracy", f"{prod.accuracy:.3f}", f"{cand.accuracy:.3f}",
             f"{cand.accuracy - prod.accuracy:+.3f}")]  # fmt: skip
    classes = [label for label, f in prod.per_class.items() if f.get("support")]
    for label in classes[:_CLASSES_SHOWN]:
        theirs = cand.per_class.get(label, {}).get("recall", 0.0)
        ours = prod.per_class[label]["recall"]
        rows.append((f"recall {label}", f"{ours:.3f}", f"{theirs:.3f}", f"{theirs - ours:+.3f}"))
    if len(classes) > _CLASSES_SHOWN:
        rows.append((f"(+{len(classes) - _CLASSES_SHOWN} classes)", "", "", ""))
    _table(rows, indent="  ")


def _table(rows: list[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(indent + "  ".join(cells).rstrip())


def _figure(text: str | None) -> str:
    try:
        return f"{float(text):.3f}" if text is not None else "-"
    except ValueError:
        return text or "-"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"
