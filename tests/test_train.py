"""`framewire train` end to end on a small generated dataset: tracked, registered,
repeatable, and served by a real worker with the accuracy evaluate() measured."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from foundation.settings import Settings
from framewire.worker_process import WorkerProcess
from mlops.data.importers import import_folder
from mlops.data.store import DatasetStore
from mlops.evaluate import evaluate
from mlops.train import TrainConfig, train
from mlops.train.reference import REFERENCE_FILE, SCHEMA
from models.loader import load_model
from schemas import Frame
from tests.cli_helpers import invoke
from tests.worker_harness import publish, wait_for_results

CLASSES = ("circle", "square", "triangle")
CONFIG = dict(dataset="shapes", arch="small-cnn", input_size=32, epochs=3, batch_size=32,
              lr=6e-3, device="cpu", seed=7)  # fmt: skip


def make_images(folder: Path, per_class: int = 60, seed: int = 0) -> None:
    """Coloured filled shapes on plain backgrounds, 48x48 PNG, one folder a class, plus
    one unreadable file (training must skip it)."""
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            image = np.full((48, 48, 3), rng.integers(0, 110, 3).tolist(), np.uint8)
            colour = rng.integers(140, 256, 3).tolist()
            x, y = rng.integers(16, 33, 2).tolist()
            r = int(rng.integers(8, 15))
            if label == "circle":
                cv2.circle(image, (x, y), r, colour, -1)
            elif label == "square":
                cv2.rectangle(image, (x - r, y - r), (x + r, y + r), colour, -1)
            else:
                cv2.fillPoly(image, [np.array([[x, y - r], [x - r, y + r], [x + r, y + r]])],
                             colour)  # fmt: skip
            cv2.imwrite(str(folder / label / f"{i:03d}.png"), image)
    (folder / "circle" / "broken.png").write_bytes(b"not a png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    # A test process may have MLflow's URI in its environment (mlflow.set_tracking_uri
    # puts it there); these runs must use the temporary store.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    root = tmp_path_factory.mktemp("train")
    make_images(root / "images")
    settings = Settings.load(environ={}, state_dir=str(root / "state"))
    store = DatasetStore.for_settings(settings)
    version = import_folder(store, "shapes", root / "images").version
    result = train(settings, TrainConfig(**CONFIG))
    return settings, store, version, result


def test_run_is_tracked_and_registered(trained) -> None:
    import mlflow

    from foundation.tracking import tracking_uri

    settings, _store, version, result = trained
    client = mlflow.MlflowClient(tracking_uri(settings), registry_uri=tracking_uri(settings))
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["arch"] == "small-cnn" and params["input_size"] == "32"
    assert params["seed"] == "7" and params["epochs"] == "3" and params["lr"] == "0.006"
    assert params["dataset"] == version.ref
    assert int(params["train_images"]) > 100 and params["skipped_unreadable"] == "1"
    tags = run.data.tags
    assert tags["framewire.dataset"] == "shapes"
    assert tags["framewire.dataset_version"] == version.version
    assert len(tags["mlflow.source.git.commit"]) >= 7
    history = client.get_metric_history(result.run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, len(result.history) + 1))
    for key in ("val_accuracy", "val_ece", "val_macro_f1", "latency_b1_p50_ms"):
        assert key in run.data.metrics
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"confusion_matrix.png", "per_class.csv", "evaluation.json", "environment.json",
            "model"} <= names  # fmt: skip
    model_files = {a.path for a in client.list_artifacts(result.run_id, "model")}
    assert model_files == {"model/model.json", "model/weights.pt", f"model/{REFERENCE_FILE}"}

    registered = client.get_model_version("shapes", result.model_version)
    assert registered.run_id == result.run_id
    assert registered.tags["framewire.dataset_version"] == version.version
    assert float(registered.tags["val_accuracy"]) == pytest.approx(result.evaluation.accuracy)
    # The tags the promotion gate reads (mlops/registry/store.py).
    assert registered.tags["dataset"] == version.ref
    assert float(registered.tags["accuracy"]) == pytest.approx(result.evaluation.accuracy)

    # The registered folder loads, and its card carries the registry version.
    source = client.get_model_version_download_uri("shapes", result.model_version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source)
    loaded = load_model(local)
    assert loaded.card.version == result.model_version
    assert loaded.card.labels == list(CLASSES)
    reference = json.loads((Path(local) / REFERENCE_FILE).read_text())
    assert reference["schema"] == SCHEMA
    assert sum(reference["predictions"]["counts"]) == result.evaluation.images
    for hist in (reference["confidence"], *reference["inputs"].values(),
                 reference["embedding"]["norm"]):  # fmt: skip
        assert len(hist["edges"]) == len(hist["counts"]) + 1
        assert sum(hist["counts"]) == result.evaluation.images
    assert reference["embedding"]["dim"] == len(reference["embedding"]["mean"]) == 72


def test_same_seed_same_metrics(trained) -> None:
    settings, _store, _version, first = trained
    second = train(settings, TrainConfig(**CONFIG))
    assert second.model_version != first.model_version  # a new registered version
    assert second.evaluation.to_dict() == first.evaluation.to_dict()
    assert [r.val_loss for r in second.history] == [r.val_loss for r in first.history]


def test_served_accuracy_matches_offline(trained, topics: Settings, tmp_path) -> None:
    _settings, store, version, result = trained
    items = version.split("validation")
    model = load_model(result.model_dir)
    offline = evaluate(model, store, items)
    frames = [
        Frame(stream_id=f"{uuid.uuid4().hex[:8]}-val", seq=i, data=store.read_blob(item.blob),
              encoding="png", label=item.label)
        for i, item in enumerate(items)
    ]  # fmt: skip
    worker_settings = topics.replace(model=str(result.model_dir), max_batch=8)
    worker = WorkerProcess(worker_settings, tmp_path)
    try:
        worker.wait_ready()
        publish(worker_settings, frames)
        results = wait_for_results(worker_settings, [f.frame_id for f in frames])
    finally:
        assert worker.stop() == 0
    assert {r["model"]["version"] for r in results.values()} == {result.model_version}
    served = sum(results[f.frame_id]["predictions"][0]["label"] == f.label for f in frames)
    assert abs(served - round(offline.accuracy * offline.images)) <= 1
    assert offline.images == len(frames)


def test_cli_train_json(trained, tmp_path) -> None:
    settings, _store, _version, _result = trained
    out = invoke(settings.replace(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1"),
                 "train", "--dataset", "shapes", "--epochs", "1", "--input-size", "24",
                 "--device", "cpu", "--name", "shapes-cli", "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["model"]["name"] == "shapes-cli" and summary["model"]["version"] == "1"
    assert set(summary["validation"]) >= {"accuracy", "per_class", "confusion", "ece"}


def test_cli_tensorboard_missing_is_one_line(trained) -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        pass
    else:  # no extra installs it: only a machine with it installed by hand gets here
        pytest.skip("tensorboard is installed, so its missing-package message cannot show")
    settings = trained[0]
    out = invoke(settings, "train", "--dataset", "shapes", "--tensorboard", "/tmp/tb")
    assert out.exit_code != 0
    assert "pip install tensorboard" in out.output
