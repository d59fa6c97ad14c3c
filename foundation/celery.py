"""The Celery application's configuration, shared by the workers and their clients.

Redis is the broker and result backend (its own database, see Settings.celery_url). JSON
only, never pickle: a task message is data from the network. Late acks, so a task whose
worker dies is delivered again. Queues: `gpu` (the streaming workers' tasks) and
`backfill` (batch jobs), both served by `framewire worker`; `retrain` is served by
`framewire retrain worker` alone (mlops/retrain/task.py), with the training extras. A
client (the gateway pinging the workers) uses this app as it is; the workers add their
bootstep and control commands (workers/app.py).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

import foundation.control  # noqa: F401  (registers reload_model for every framewire worker)
from foundation.settings import Settings

QUEUES = ("gpu", "backfill")


def celery_app(settings: Settings) -> Celery:
    app = Celery("framewire", broker=settings.celery_url, backend=settings.celery_url)
    app.conf.update(
        accept_content=["json"],
        result_accept_content=["json"],
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="gpu",
        result_expires=3600,
        # Flower shows tasks from these events.
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    app.framewire_settings = settings  # read by the bootstep in the worker
    return app
