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
from tests.worker_harness import (
    PacedPublisher,
    assert_switched_once,
    count_results,
    publish,
    synthetic_frames,
    wait_for_results,
    wait_until,
)

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
            "data_report.html", "model"} <= names  # fmt: skip
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


def test_promoted_versions_reach_a_running_worker(trained, topics: Settings, tmp_path) -> None:
    """The loop's last steps on a real worker serving models:/shapes@production.

    The trained version is promoted and served with the accuracy evaluate() measured
    offline (within one image). Then `framewire train` makes a better version (more
    epochs), the gate accepts it, and it is promoted while frames flow: every frame has
    exactly one result, and each stream changes version once, never back."""
    trained_settings, store, version, result = trained
    # The trained store (datasets, MLflow) with the session's broker, Redis and topics.
    settings = topics.replace(state_dir=str(trained_settings.state_dir), max_batch=8)
    first = invoke(settings, "registry", "promote", "shapes", result.model_version)
    assert first.exit_code == 0, first.output
    items = version.split("validation")
    offline = evaluate(load_model(result.model_dir), store, items)
    frames = [
        Frame(stream_id=f"{uuid.uuid4().hex[:8]}-val", seq=i, data=store.read_blob(item.blob),
              encoding="png", label=item.label)
        for i, item in enumerate(items)
    ]  # fmt: skip
    worker = WorkerProcess(settings.replace(model="models:/shapes@production"), tmp_path)
    try:
        worker.wait_ready()
        publish(settings, frames)
        results = wait_for_results(settings, [f.frame_id for f in frames])
        assert {r["model"]["version"] for r in results.values()} == {result.model_version}
        served = sum(results[f.frame_id]["predictions"][0]["label"] == f.label for f in frames)
        assert abs(served - round(offline.accuracy * offline.images)) <= 1
        assert offline.images == len(frames)

        better = invoke(settings, "train", "--dataset", version.ref, "--input-size", "32",
                        "--epochs", "20", "--patience", "20", "--batch-size", "32", "--lr", "0.006",
                        "--device", "cpu", "--seed", "7", "--json")  # fmt: skip
        assert better.exit_code == 0, better.output
        candidate = json.loads(better.output.strip().splitlines()[-1])["model"]["version"]
        stream = synthetic_frames(200, streams=2, seed=21)
        publisher = PacedPublisher(settings, stream, fps=40)
        publisher.start()
        wait_until(lambda: count_results(settings, [f.frame_id for f in stream]) >= 40, 60,
                   "the first results of the stream")  # fmt: skip
        promoted = invoke(settings, "registry", "promote", "shapes", candidate)
        assert promoted.exit_code == 0 and "accepted" in promoted.output, promoted.output
        publisher.join(60)
        results = wait_for_results(settings, [f.frame_id for f in stream])
        assert_switched_once(settings, results, result.model_version, candidate)
    finally:
        assert worker.stop() == 0, worker.tail()


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


def test_train_demo_makes_the_demo_model_through_the_registry(tmp_path) -> None:
    """`framewire train-demo` at a tiny scale: synthetic camera frames imported as a
    dataset version, a tracked run, a registered version, its folder copied out."""
    import mlflow

    from foundation.tracking import tracking_uri
    from framewire.demo_model import NAME, TRAINING_FILE, make_demo_model
    from producers.synthetic import CLASSES as DEMO_CLASSES

    settings = Settings.load(environ={}, state_dir=str(tmp_path / "state"))
    out = tmp_path / "demo"
    result = make_demo_model(settings, out, samples=60, epochs=1)
    dataset = DatasetStore.for_settings(settings).resolve(f"{NAME}@latest")
    assert result.dataset == dataset.ref and len(dataset.items) == 60
    assert {item.label for item in dataset.items} == set(DEMO_CLASSES)
    model = load_model(out)
    assert (model.card.name, model.card.version) == (NAME, result.model_version)
    assert model.card.labels == sorted(DEMO_CLASSES) and model.card.input.width == 64
    training = json.loads((out / TRAINING_FILE).read_text())
    assert training["run_id"] == result.run_id and training["dataset"] == dataset.ref
    assert training["validation"]["accuracy"] == result.evaluation.accuracy
    client = mlflow.MlflowClient(tracking_uri(settings), registry_uri=tracking_uri(settings))
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert client.get_model_version(NAME, result.model_version).run_id == result.run_id
