"""`framewire data ...`: Versioned datasets: import, list, show, diff, report (docs/MLOPS.md)."""

from __future__ import annotations

import click


@click.group()
def data() -> None:
    """Versioned datasets: import, list, show, diff, report (docs/MLOPS.md)."""
