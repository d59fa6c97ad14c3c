"""`framewire bench` (filled by the benchmark issue)."""

from __future__ import annotations

import click


@click.command()
def bench() -> None:
    """Benchmark the pipeline against the model's ceiling (not implemented yet)."""
    raise click.ClickException("`framewire bench` is not implemented yet (the benchmark issue)")
