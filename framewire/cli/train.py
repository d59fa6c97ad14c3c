"""`framewire train` (a tracked training run) and `framewire mlflow ui`."""

from __future__ import annotations

import click


@click.command()
def train() -> None:
    """Train a model on a dataset version, validate it, track it in MLflow, register it."""
    raise click.ClickException("not implemented yet")


@click.group("mlflow")
def mlflow_group() -> None:
    """The MLflow tracking store (local SQLite by default; MLFLOW_TRACKING_URI for a server)."""
