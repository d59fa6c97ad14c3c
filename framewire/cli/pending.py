"""Verbs that later issues fill. They are listed in --help so the CLI's shape is visible."""

from __future__ import annotations

import click

# name -> (help, what fills it)
_PENDING = {
    "monitor": ("Drift monitoring.", "the MLOps issues"),
}


def _pending(name: str, help_text: str, owner: str) -> click.Command:
    @click.command(
        name,
        help=f"{help_text} (not implemented yet)",
        context_settings={"ignore_unknown_options": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"`framewire {name}` is not implemented yet ({owner})")

    return command


PENDING_COMMANDS = [_pending(name, *entry) for name, entry in _PENDING.items()]
