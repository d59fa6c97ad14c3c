"""`reload_model`: a broadcast control command that swaps a worker's model between batches.

Registered for every framewire Celery worker (foundation/celery.py imports this module): a
streaming worker acts on it through the pipeline it hangs on its app; any other (the
`framewire retrain worker`) answers that it runs no stream pipeline, instead of logging a
traceback for a command it does not know at every promotion.

    celery -A workers.celery_app control reload_model /path/to/model
    celery -A workers.celery_app control reload_model models:/shapes@production
    app.control.broadcast("reload_model", arguments={"registered": "shapes"})

With `model`, the worker prepares that model (a directory or a models:/ URI) in the
background and serves it from then on; with `registered` (what `framewire registry
promote` and `rollback` send, see mlops/registry/deploy.py), only workers that follow an
alias of that registered model look the alias up now instead of at their next poll.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.worker.control import control_command

RELOAD_COMMAND = "reload_model"


@control_command(
    args=[("model", str), ("registered", str)], signature="[model] [registered]"
)
def reload_model(
    state: Any, model: str | None = None, registered: str | None = None, **kwargs: Any
) -> dict[str, str]:
    """Prepare the model at this path or URI (empty: the current source again) in the
    background and swap it in between batches; or, with `registered`, re-check an alias."""
    pipeline = getattr(state.consumer.app, "framewire_pipeline", None)
    if pipeline is None:
        return {"error": "this worker runs no stream pipeline"}
    if registered:
        if pipeline.alias_moved(registered):
            return {"ok": f"checking where the alias of {registered} points"}
        return {"ok": f"not following {registered}: nothing to do"}
    pipeline.request_reload(model or None)
    return {"ok": f"preparing {model or 'the current model source'}; swapped between batches"}


def broadcast_reload(
    app: Celery, model: str | None = None, destination: list[str] | None = None
) -> list[dict[str, Any]]:
    """Ask workers (all, or destination) to reload; returns their replies."""
    return app.control.broadcast(
        RELOAD_COMMAND, arguments={"model": model or ""}, destination=destination, reply=True
    )
