"""What a training run records in MLflow, and the registration of its model.

Everything goes through an MlflowClient on the configured store (foundation.tracking:
the local SQLite store, or MLFLOW_TRACKING_URI), never MLflow's global state, so two
trainings in one process (tests, a retraining task) cannot log into each other. That is
also why this module builds its own client instead of foundation.tracking.mlflow_client:
mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ (MLflow 3), after
which every Settings in the process, and every child process, would use that store and
artifact_root() would return None (artifacts in ./mlruns).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from foundation.settings import Settings
from foundation.tracking import artifact_root, import_mlflow, local_store, tracking_uri

EXPERIMENT = "framewire-train"
MODEL_ARTIFACT = "model"
# Tags: MLflow's own names where it has one (the UI shows them), framewire.* otherwise.
GIT_COMMIT_TAG = "mlflow.source.git.commit"
DATASET_TAG = "framewire.dataset"
DATASET_VERSION_TAG = "framewire.dataset_version"
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def code_version() -> dict[str, str]:
    """The git commit of the code that trains (and whether it had local changes)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(_SOURCE_ROOT), *args], capture_output=True,
                                  text=True, timeout=10, check=True)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {GIT_COMMIT_TAG: "unknown (not a git checkout)"}
    # Read-only: --porcelain lists changed tracked files (untracked ones do not count).
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {GIT_COMMIT_TAG: commit, "framewire.git_dirty": str(dirty).lower()}


def environment(device: str) -> dict[str, str]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "device": device,
    }
    if torch.device(device).type == "cuda":
        info["cuda"] = str(torch.version.cuda)
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        from importlib.metadata import version

        info["framewire"] = version("framewire")
        info["mlflow"] = version("mlflow-skinny") if _has("mlflow-skinny") else version("mlflow")
    except Exception:  # metadata is informative only
        pass
    info["argv"] = " ".join(sys.argv[:1])
    return info


def _has(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def metric_name(text: str) -> str:
    """A label as part of an MLflow metric name (which allows few characters)."""
    return _METRIC_NAME.sub("_", text)


class Tracker:
    """One MLflow run: start, log, register."""

    def __init__(self, settings: Settings, run_name: str, experiment: str = EXPERIMENT) -> None:
        uri = tracking_uri(settings)
        local_store(settings).mkdir(parents=True, exist_ok=True)
        self.client = import_mlflow().MlflowClient(
            tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri
        )
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None else
                         self.client.create_experiment(experiment,
                                                       artifact_location=artifact_root(settings)))
        run = self.client.create_run(experiment_id, run_name=run_name)
        self.run_id: str = run.info.run_id
        self.artifact_uri: str = run.info.artifact_uri

    def params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            self.client.log_param(self.run_id, key, value)

    def tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(metric_name(k), float(v), now, step or 0) for k, v in metrics.items()
        ])  # fmt: skip

    def artifact(self, path: Path, folder: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        else:
            self.client.log_artifact(self.run_id, str(path), folder)

    def register(self, name: str, tags: dict[str, str]) -> str:
        """A new version of registered model name, from this run's model folder."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        version = self.client.create_model_version(
            name, source=f"{self.artifact_uri}/{MODEL_ARTIFACT}", run_id=self.run_id, tags=tags
        )
        return str(version.version)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def tensorboard_writer(folder: Path) -> Any:
    """A torch SummaryWriter, or RuntimeError naming the package to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter(log_dir=str(folder))
