"""Where MLflow keeps runs and registered models.

`MLFLOW_TRACKING_URI` (and `MLFLOW_REGISTRY_URI`) point everything at a real MLflow
server; otherwise a local store under the state directory: SQLite for runs and the
registry, a folder for artifacts. MLflow itself is imported only by the functions that
use it, so a worker serving a model directory never imports it (extras `mlops`, `registry`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from foundation.settings import Settings

ENV_URI = "MLFLOW_TRACKING_URI"


def local_store(settings: Settings) -> Path:
    return settings.state_dir / "mlflow"


def tracking_uri(settings: Settings) -> str:
    if os.environ.get(ENV_URI):
        return os.environ[ENV_URI]
    return f"sqlite:///{local_store(settings) / 'mlflow.db'}"


def artifact_root(settings: Settings) -> str | None:
    """Artifacts of new experiments in the local store; None (the server's) otherwise."""
    return None if os.environ.get(ENV_URI) else (local_store(settings) / "artifacts").as_uri()


def mlflow_client(settings: Settings) -> Any:
    """An MlflowClient for the configured store (created on first use)."""
    mlflow = import_mlflow()
    local_store(settings).mkdir(parents=True, exist_ok=True)
    # mlflow.set_*_uri also export MLFLOW_*_URI into os.environ (for subprocesses): that
    # would make every later call here take the local store for a server's (artifact_root
    # None: artifacts in ./mlruns) and hand it to every worker started from this process.
    saved = {name: os.environ.get(name) for name in (ENV_URI, "MLFLOW_REGISTRY_URI")}
    try:
        mlflow.set_tracking_uri(tracking_uri(settings))
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"] or tracking_uri(settings))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return mlflow.MlflowClient()


def experiment_id(settings: Settings, name: str) -> str:
    """The experiment's id, created (with artifacts in the local store) when missing."""
    client = mlflow_client(settings)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(settings))


class MlflowMissing(RuntimeError):
    pass


def import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MlflowMissing(
            "MLflow is not installed: pip install 'framewire[mlops]'"
        ) from None
    return mlflow
