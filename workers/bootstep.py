"""The Celery bootstep that runs the streaming pipeline inside a worker.

A StartStopStep of the worker blueprint (not the consumer's, which restarts whenever the
broker connection drops): started once after the pool, stopped on warm shutdown (SIGTERM),
when the pipeline finishes in-flight frames, commits and leaves the consumer group. Its
info() lands in `celery inspect stats`, which is what Flower's worker page shows.
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps

from workers.health import serve_health


class StreamStep(bootsteps.StartStopStep):
    label = "framewire stream"
    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.pipeline = None
        self.health = None

    def start(self, worker: Any) -> None:
        # Imported here: torch and the model load only in the process that runs them.
        from workers.pipeline import StreamingPipeline

        settings = worker.app.framewire_settings
        self.pipeline = StreamingPipeline(settings, worker=worker.hostname)
        # Up while the model loads, so /readyz can say that it does.
        self.health = serve_health(settings.metrics_port, self.pipeline.not_ready_reasons)
        self.pipeline.start()
        worker.app.framewire_pipeline = self.pipeline

    def stop(self, worker: Any) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None
        if self.health is not None:
            self.health.shutdown()
            self.health = None

    shutdown = stop

    def info(self, worker: Any) -> dict[str, Any]:
        return {"framewire": self.pipeline.stats() if self.pipeline else None}
