"""`reload_model`: a broadcast control command that swaps a worker's model between batches.

    framewire deploy ...   (later)   or   app.control.broadcast("reload_model", ...)
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.worker.control import control_command


@control_command(args=[("model", str)], signature="[model]")
def reload_model(state: Any, model: str | None = None, **kwargs: Any) -> dict[str, str]:
    """Swap to the model at this path (empty: the configured default) between batches."""
    pipeline = getattr(state.consumer.app, "framewire_pipeline", None)
    if pipeline is None:
        return {"error": "this worker runs no stream pipeline"}
    pipeline.request_reload(model or None)
    return {"ok": f"reloading {model or 'the default model'} between batches"}


def broadcast_reload(
    app: Celery, model: str | None = None, destination: list[str] | None = None
) -> list[dict[str, Any]]:
    """Ask workers (all, or destination) to reload; returns their replies."""
    return app.control.broadcast(
        "reload_model", arguments={"model": model or ""}, destination=destination, reply=True
    )
