"""The Celery application of the GPU workers: the shared configuration
(foundation/celery.py) plus the streaming consumer and the remote control commands.

The streaming consumer is not a task: it is a bootstep (workers/bootstep.py) that runs
beside Celery's own consumer for the whole worker life.
"""

from __future__ import annotations

from celery import Celery

from foundation.celery import celery_app
from foundation.settings import Settings
from workers.bootstep import StreamStep


def create_app(settings: Settings, stream: bool = True) -> Celery:
    """The app; stream=False gives one without the streaming bootstep."""
    app = celery_app(settings)
    if stream:
        app.steps["worker"].add(StreamStep)
    from workers.backfill.task import register

    register(app)

    return app
