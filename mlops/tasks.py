"""The MLOps Celery tasks, served by `framewire retrain worker` (a process with the training
extras and the CPU or GPU to train on, apart from the streaming workers, whose device
serves live frames), and the schedule `framewire beat` sends them on.

    framewire.retrain            queue retrain   one model's retrain (mlops/retrain/)
    framewire.monitor            queue monitor   a scheduled monitor run (mlops/monitor/)
    framewire.retrain.scheduled  queue monitor   queue a retrain of each model whose
                                                 dataset has grown (mlops/retrain/schedule.py)

Whoever asks (the monitor on drift, the feedback collector, a person, beat) sends a task by
name, so it needs none of this code's imports: `request_retrain`. The bodies import their
work when they run, so beat, which only sends, never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery, Task

from foundation.celery import celery_app
from foundation.settings import Settings
from schemas import Event

if TYPE_CHECKING:
    from mlops.retrain.retrain import RetrainRequest

RETRAIN_TASK = "framewire.retrain"
MONITOR_TASK = "framewire.monitor"
SCHEDULED_RETRAIN_TASK = "framewire.retrain.scheduled"
RETRAIN_QUEUE = "retrain"
MONITOR_QUEUE = "monitor"
QUEUES = (RETRAIN_QUEUE, MONITOR_QUEUE)


def create_mlops_app(settings: Settings) -> Celery:
    """framewire's Celery configuration plus the MLOps tasks and their beat schedule."""
    app = celery_app(settings)
    app.conf.beat_schedule = beat_schedule(settings)

    @app.task(name=RETRAIN_TASK, bind=True, acks_late=True)
    def retrain_task(self: Task, request: dict[str, Any]) -> dict[str, Any]:
        from foundation.kafka import event_sender
        from mlops.retrain.retrain import RetrainRequest, retrain

        with event_sender(settings, "retrainer") as emit:

            def step(event: Event) -> None:
                emit(event)
                self.update_state(state="PROGRESS", meta=event.fields)  # Flower shows it

            return retrain(settings, RetrainRequest(**request), step).to_dict()

    @app.task(name=MONITOR_TASK, acks_late=False)  # a lost run is made up by the next
    def monitor_task() -> dict[str, Any]:
        from mlops.monitor.scheduled import run_scheduled

        return run_scheduled(settings).to_dict()

    @app.task(name=SCHEDULED_RETRAIN_TASK, acks_late=False)
    def scheduled_retrain_task() -> list[dict[str, Any]]:
        from mlops.retrain.schedule import retrain_grown

        return retrain_grown(settings, lambda request: request_retrain(settings, request))

    return app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic tasks; each expires after its period, so a backlog (a worker down for an
    hour) runs once, not once per missed period."""
    schedule = {}
    for task, every in ((MONITOR_TASK, settings.monitor_every_s),
                        (SCHEDULED_RETRAIN_TASK, settings.retrain_every_s)):  # fmt: skip
        if every:
            options = {"queue": MONITOR_QUEUE, "expires": float(every)}
            schedule[task] = {"task": task, "schedule": float(every), "options": options}
    return schedule


def request_retrain(settings: Settings, request: RetrainRequest) -> str:
    """Queue a retrain; returns the Celery task id."""
    app = celery_app(settings)
    result = app.send_task(RETRAIN_TASK, args=[request.to_dict()], queue=RETRAIN_QUEUE)
    return str(result.id)
