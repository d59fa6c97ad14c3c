"""Retraining with a real MLflow store and Redis: triggered twice at once it runs once; a
request older than the last retrain is already served; a failure leaves production alone;
the Celery tasks (a retrain, beat's retrain check and monitor run) run on a real
`framewire retrain worker`.

Small data and few epochs (tests/test_train.py's shapes at 32x32).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
from celery.result import AsyncResult

from foundation.celery import celery_app
from foundation.control import broadcast_reload
from framewire.worker_process import child_env
from mlops.data.importers import import_folder
from mlops.data.store import DatasetStore
from mlops.registry.store import Registry
from mlops.retrain.retrain import RetrainRequest, retrain
from mlops.tasks import MONITOR_QUEUE, MONITOR_TASK, SCHEDULED_RETRAIN_TASK, beat_schedule
from mlops.train import TrainConfig, train
from tests.cli_helpers import invoke
from tests.test_registry import local_mlflow_store
from tests.test_train import make_images

__all__ = ["local_mlflow_store"]  # the fixture of tests/test_registry.py, autouse here too


@pytest.fixture
def production(topics, tmp_path):
    """`shapes` trained once (1 epoch) and promoted: what a retrain starts from."""
    make_images(tmp_path / "images")
    import_folder(DatasetStore.for_settings(topics), "shapes", tmp_path / "images")
    first = train(topics, TrainConfig(dataset="shapes", arch="small-cnn", input_size=32,
                                      epochs=1, batch_size=32, lr=6e-3, device="cpu", seed=7))
    assert invoke(topics, "registry", "promote", "shapes", first.model_version).exit_code == 0
    return topics, first.model_version


def test_triggered_twice_at_once_it_runs_once(production) -> None:
    settings, v1 = production
    events: list = []
    request = RetrainRequest("shapes", "drift: embedding_shift", epochs=6, device="cpu")
    outcomes: list = []
    threads = [threading.Thread(target=lambda: outcomes.append(
        retrain(settings, request, events.append))) for _ in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    states = sorted(o.state for o in outcomes)
    assert len(outcomes) == 2 and states.count("skipped") == 1, outcomes
    ran = next(o for o in outcomes if o.state != "skipped")
    assert ran.state in ("promoted", "refused") and ran.version != v1
    trained = [e for e in events if e.fields["step"] == "trained"]
    assert len(trained) == 1  # one training, not two
    production_now = Registry(settings).alias_version("shapes", "production")
    assert production_now == (ran.version if ran.state == "promoted" else v1)
    steps = [e.fields["step"] for e in events if e.fields["step"] != "skipped"]
    assert steps == ["started", "trained", ran.state]

    # A request made before that retrain started is served by it: skipped.
    late = retrain(settings, RetrainRequest("shapes", "schedule", requested_at=1, epochs=1),
                   events.append)  # fmt: skip
    assert late.state == "skipped" and "started after" in late.detail


def test_a_failed_retrain_leaves_production_alone(production) -> None:
    settings, v1 = production
    events: list = []
    outcome = retrain(settings, RetrainRequest("shapes", "manual", dataset="no-such-data",
                                               epochs=1, device="cpu"), events.append)  # fmt: skip
    assert outcome.state == "failed" and "no-such-data" in outcome.detail
    assert Registry(settings).alias_version("shapes", "production") == v1
    assert [e.fields["step"] for e in events] == ["started", "failed"]


def test_the_celery_tasks_on_a_real_retrain_worker(production, tmp_path) -> None:
    """What beat sends, on the worker that serves it: the retrain check queues a retrain
    only once the dataset has grown, the retrain it queued runs, and a monitor run goes."""
    settings, v1 = production
    app = celery_app(settings)

    def send(task: str) -> Any:
        return app.send_task(task, queue=MONITOR_QUEUE).get(timeout=60)

    assert beat_schedule(settings) == {}  # both off unless asked for
    assert set(beat_schedule(settings.replace(monitor_every_s=300, retrain_every_s=3600))) == {
        MONITOR_TASK, SCHEDULED_RETRAIN_TASK}  # fmt: skip
    log = open(tmp_path / "retrain-worker.log", "wb")  # noqa: SIM115  (closed below)
    worker = subprocess.Popen([sys.executable, "-m", "framewire", "retrain", "worker"],
                              env=child_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        [unchanged] = send(SCHEDULED_RETRAIN_TASK)
        assert not unchanged["queued"] and unchanged["detail"] == "no newer dataset version"
        make_images(tmp_path / "more", per_class=10, seed=1)
        import_folder(DatasetStore.for_settings(settings), "shapes", tmp_path / "more")
        [grown] = send(SCHEDULED_RETRAIN_TASK)
        assert grown["queued"] and grown["detail"].startswith("schedule: shapes@"), grown
        outcome = AsyncResult(grown["task"], app=app).get(timeout=120)
        assert outcome["state"] in ("promoted", "refused"), outcome
        assert outcome["version"] not in (None, v1)
        monitored = send(MONITOR_TASK)
        assert monitored["state"] == "done" and monitored["windows"] == 0, monitored
        # A promotion's broadcast reaches this worker too: it answers, it logs no traceback.
        [reply] = [r for r in broadcast_reload(app) if next(iter(r)).startswith("retrain-")]
        assert next(iter(reply.values())) == {"error": "this worker runs no stream pipeline"}
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
