"""The registry with a real MLflow store (SQLite in the test's state dir): import, list,
show, the promotion gate, --force, rollback, the worker-side fetch and its cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from framewire.worker_process import child_env
from mlops.data.importers import import_folder
from mlops.data.store import DatasetStore
from mlops.registry.store import HISTORY_TAG, Registry
from models.architectures import ARCHITECTURES
from models.loader import DEFAULT_MODEL_DIR, ModelLoadError, load_model, save_model
from models.registry import cache_dir, fetch, parse_model_uri, registry_client
from tests.cli_helpers import invoke
from tests.worker_harness import synthetic_frames
from workers.model_watch import Candidate, ModelRefused, check_candidate

NAME = "shapes"


@pytest.fixture(autouse=True)
def local_mlflow_store(monkeypatch):
    """Each test's own SQLite store under its state dir, never a server from the shell."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


# Helpers shared with tests/test_deploy_models.py ----------------------------------------


def good_model(directory: Path) -> Path:
    """A copy of the committed demo model."""
    shutil.copytree(DEFAULT_MODEL_DIR, directory)
    return directory


def worse_model(directory: Path) -> Path:
    """The demo model's card with randomly initialised weights: about chance accuracy."""
    card = load_model(DEFAULT_MODEL_DIR).card
    torch.manual_seed(1)
    return save_model(ARCHITECTURES[card.architecture](len(card.labels)), card, directory)


def shapes_dataset(settings, tmp_path: Path, frames: int = 240) -> str:
    """Labelled synthetic JPEGs in class folders, imported; its NAME@VERSION."""
    folder = tmp_path / "images"
    for frame in synthetic_frames(frames, streams=4, seed=3):
        (folder / frame.label).mkdir(parents=True, exist_ok=True)
        (folder / frame.label / f"{frame.frame_id}.jpg").write_bytes(frame.data)
    return import_folder(DatasetStore.for_settings(settings), "shapes-val", folder).version.ref


def register(settings, path: Path, dataset: str | None = None) -> str:
    args = ["registry", "import", str(path), "--name", NAME]
    result = invoke(settings, *args, *(["--dataset", dataset] if dataset else []))
    assert result.exit_code == 0, result.output
    return result.output.split(" version ")[1].split()[0]


# The gate, history and CLI ----------------------------------------------------------------


def test_gate_refuses_worse_accepts_better_force_is_recorded_rollback_walks_back(
    settings, tmp_path
):
    dataset = shapes_dataset(settings, tmp_path)
    worse = register(settings, worse_model(tmp_path / "worse"), dataset)
    good = register(settings, good_model(tmp_path / "good"), dataset)
    assert (worse, good) == ("1", "2")

    listed = invoke(settings, "registry", "list")
    assert listed.exit_code == 0 and dataset in listed.output, listed.output

    # First promotion: nothing to regress from.
    first = invoke(settings, "registry", "promote", NAME, worse)
    assert first.exit_code == 0, first.output
    assert "points nowhere yet" in first.output
    # A better candidate passes, with both evaluations side by side.
    better = invoke(settings, "registry", "promote", NAME, good)
    assert better.exit_code == 0, better.output
    assert "gate: accepted" in better.output and "recall circle" in better.output
    assert f"{NAME}@production: 1 -> 2" in better.output
    # A worse one is refused and the alias stays.
    refused = invoke(settings, "registry", "promote", NAME, worse)
    assert refused.exit_code == 1, refused.output
    assert "gate: REFUSED" in refused.output and "accuracy" in refused.output
    assert "not promoted" in refused.output.splitlines()[-1]
    reg = Registry(settings)
    assert reg.alias_version(NAME, "production") == good
    # --force overrides, and says so in the history.
    forced = invoke(settings, "registry", "promote", NAME, worse, "--force")
    assert forced.exit_code == 0, forced.output
    history = reg.history(NAME)
    assert [(h.action, h.version, h.forced) for h in history] == [
        ("promote", "1", False), ("promote", "2", False), ("promote", "1", True)
    ]
    assert history[-1].reasons and history[-1].by
    shown = invoke(settings, "registry", "show", NAME)
    assert "FORCED" in shown.output, shown.output

    # Rollback walks the promotions back: 1 (forced) -> 2 -> 1.
    back = invoke(settings, "registry", "rollback", NAME)
    assert back.exit_code == 0 and "1 -> 2 (rolled back)" in back.output, back.output
    again = invoke(settings, "registry", "rollback", NAME)
    assert again.exit_code == 0 and "2 -> 1 (rolled back)" in again.output, again.output
    nothing = invoke(settings, "registry", "rollback", NAME)
    assert nothing.exit_code == 1 and "no earlier version" in nothing.output
    raw = registry_client(settings).get_registered_model(NAME).tags[HISTORY_TAG]
    assert len(json.loads(raw)) == 5  # kept in the registry itself

    rows = [line.split() for line in invoke(settings, "registry", "list").output.splitlines()]
    assert [NAME, worse, "production"] == rows[1][:3] and rows[2][2] == "-"
    one = invoke(settings, "registry", "show", NAME, good)
    assert one.exit_code == 0 and "labels    circle" in one.output, one.output
    assert f"dataset = {dataset}" in one.output


def test_import_refuses_what_a_worker_could_not_serve_in_one_line(settings, tmp_path):
    broken = good_model(tmp_path / "broken")
    (broken / "weights.pt").write_bytes(b"not a state dict")
    for args in (
        [str(broken)],
        [str(tmp_path / "missing")],
        [str(broken / "weights.pt")],  # a file needs --card
        [str(DEFAULT_MODEL_DIR), "--dataset", "nope@1"],
    ):
        result = invoke(settings, "registry", "import", *args, "--name", NAME)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output


def test_a_torchscript_file_with_a_card(settings, tmp_path):
    card = load_model(DEFAULT_MODEL_DIR).card
    scripted = torch.jit.script(load_model(DEFAULT_MODEL_DIR).module.eval())
    torch.jit.save(scripted, str(tmp_path / "shapes.ts"))
    card_path = tmp_path / "card.json"
    card_path.write_text(json.dumps({**card.to_dict(), "architecture": "torchscript"}))
    result = invoke(settings, "registry", "import", str(tmp_path / "shapes.ts"),
                    "--name", NAME, "--card", str(card_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    fetched = fetch(settings, registry_client(settings), parse_model_uri(f"models:/{NAME}/1"))
    assert load_model(fetched.path).card.architecture == "torchscript"


# The worker side: models/registry.py and the card check -------------------------------------


def test_fetch_caches_and_the_served_card_carries_the_registry_version(settings, tmp_path):
    register(settings, good_model(tmp_path / "a"))
    register(settings, good_model(tmp_path / "b"))
    Registry(settings).move_alias(NAME, "production", "2", "promote")
    client = registry_client(settings)
    fetched = fetch(settings, client, parse_model_uri(f"models:/{NAME}@production"))
    assert fetched.version == "2" and fetched.path == cache_dir(settings, NAME, "2")
    card = load_model(fetched.path).card
    assert (card.name, card.version) == (NAME, "2")  # the demo card said demo-shapes:1
    marker = fetched.path / "marker"
    marker.write_text("x")
    assert fetch(settings, client, parse_model_uri(f"models:/{NAME}/2")).path == fetched.path
    assert marker.exists()  # reused, not downloaded again
    assert not [p for p in fetched.path.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(ModelLoadError, match="models:/shapes@staging"):
        fetch(settings, client, parse_model_uri(f"models:/{NAME}@staging"))
    # The local store stays local: not exported to the environment workers inherit.
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.parametrize("text", ["models:/", "models:/a", "models:/a/b", "models:/a@", "x"])
def test_bad_registry_uris_are_refused(text):
    with pytest.raises(ModelLoadError):
        parse_model_uri(text)


def test_a_label_change_needs_the_tag():
    serving = load_model(DEFAULT_MODEL_DIR)
    card = serving.card
    other = type(card)(card.name, "2", card.architecture, card.task,
                       [*card.labels[:-1], "hexagon"], card.input)  # fmt: skip
    candidate = Candidate(type(serving)(other, serving.module), "models:/x@production", {})
    with pytest.raises(ModelRefused, match="labels differ"):
        check_candidate(candidate, card)
    tagged = Candidate(candidate.model, candidate.source, {"labels_changed": "true"})
    check_candidate(tagged, card)


def test_a_worker_without_mlflow_says_which_extra(settings, tmp_path):
    blocker = tmp_path / "blocker" / "mlflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    env = child_env(settings, PYTHONPATH=str(tmp_path / "blocker"))
    done = subprocess.run(
        [sys.executable, "-m", "framewire", "worker", "--model", "models:/shapes@production"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "framewire[registry]" in done.stderr
