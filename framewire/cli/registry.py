"""`framewire registry ...`: list, show, promote with a validation gate, rollback, import."""

from __future__ import annotations

import click


@click.group()
def registry() -> None:
    """The model registry: list, show, promote with a validation gate, rollback, import."""
