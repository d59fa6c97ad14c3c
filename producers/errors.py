"""Errors a source raises when it cannot start; str() is one line for the CLI."""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source cannot produce frames: a missing or undecodable file, an empty folder."""
