"""Telling the workers that an alias moved, so they need not wait for their next poll.

A Celery broadcast of the workers' `reload_model` control command with `registered=NAME`
(foundation/control.py). Workers following an alias of NAME look it up at once; the others
answer that they do not. A
broadcast can be missed (a worker restarting, the broker away): the workers' poll of the
registry every FRAMEWIRE_MODEL_POLL_S is what makes the move certain, this makes it fast.
"""

from __future__ import annotations

from typing import Any

from foundation.celery import celery_app
from foundation.control import RELOAD_COMMAND
from foundation.settings import Settings


def notify_workers(settings: Settings, name: str, timeout_s: float = 1.0) -> str:
    """Broadcast that NAME's alias moved; one line saying who answered."""
    app = celery_app(settings)
    try:
        with app.connection_for_write() as connection:
            # Fail fast when the broker is away instead of retrying for minutes.
            connection.ensure_connection(max_retries=1, timeout=2)
        replies: list[dict[str, Any]] = app.control.broadcast(
            RELOAD_COMMAND, arguments={"registered": name}, reply=True, timeout=timeout_s
        ) or []
    except Exception as exc:  # the alias has moved; workers will see it at their poll
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
        return (f"workers not told ({why}); they follow within FRAMEWIRE_MODEL_POLL_S "
                f"({settings.model_poll_s:g} s)")  # fmt: skip
    answers = [answer for reply in replies for answer in reply.values()]
    following = sum("checking" in str(answer.get("ok", "")) for answer in answers)
    return f"told the workers: {len(answers)} answered, {following} follow {name}"
