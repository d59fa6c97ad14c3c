"""`framewire gateway` (filled by the gateway issue)."""

from __future__ import annotations

import click


@click.command()
def gateway() -> None:
    """Serve the HTTP gateway (not implemented yet)."""
    raise click.ClickException("`framewire gateway` is not implemented yet (the gateway issue)")
