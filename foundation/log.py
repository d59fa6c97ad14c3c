"""Logging, configured once: JSON lines for machines, readable lines on a terminal.

Every module gets its logger with `get_logger(__name__)`. A frame's life is followed by
binding its ids (`log.bind(stream_id=..., frame_id=...)`) or, for everything a thread does
on behalf of one frame or batch, with `bound_context(stream_id=..., frame_id=...)`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Route structlog and the standard library (kafka-python, celery) through one renderer."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python logs every refused connection attempt as an ERROR and routine notes
    # ("group_id is None") as warnings; framewire logs what those mean for the user itself.
    # FRAMEWIRE_LOG_LEVEL=debug shows them all.
    kafka_level = logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL
    logging.getLogger("kafka").setLevel(kafka_level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


@contextmanager
def bound_context(**ids: Any) -> Iterator[None]:
    """Attach ids (stream_id, frame_id, batch, ...) to every log line in this context."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield
