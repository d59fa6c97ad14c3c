"""Retraining as a Celery task on its own queue, served by `framewire retrain worker` (a
process with the training extras and the CPU or GPU to train on, apart from the streaming
workers, whose device serves live frames).

Whoever asks (the monitor on drift, the feedback collector, a person, beat) sends the task
by name, so it needs none of this code: `request_retrain`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from kafka import KafkaProducer

from foundation.celery import celery_app
from foundation.kafka import CLIENT_ID, producer_config
from foundation.settings import Settings
from mlops.retrain.retrain import RetrainRequest, retrain
from schemas import Event

TASK_NAME = "framewire.retrain"
QUEUE = "retrain"


def create_retrain_app(settings: Settings) -> Celery:
    """framewire's Celery configuration plus the retrain task."""
    app = celery_app(settings)

    @app.task(name=TASK_NAME, bind=True, acks_late=True)
    def retrain_task(self: Task, request: dict[str, Any]) -> dict[str, Any]:
        producer = KafkaProducer(**producer_config(settings, client_id=f"{CLIENT_ID}-retrain"))

        def emit(event: Event) -> None:
            producer.send(settings.monitoring_topic, key=b"retrainer", value=event.to_json())
            self.update_state(state="PROGRESS", meta=event.fields)  # Flower shows the step

        try:
            return retrain(settings, RetrainRequest(**request), emit).to_dict()
        finally:
            producer.flush(timeout=10)
            producer.close(timeout=10)

    return app


def request_retrain(settings: Settings, request: RetrainRequest) -> str:
    """Queue a retrain; returns the Celery task id."""
    app = celery_app(settings)
    result = app.send_task(TASK_NAME, args=[request.to_dict()], queue=QUEUE)
    return str(result.id)
