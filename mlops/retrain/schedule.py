"""Retraining on a schedule: every FRAMEWIRE_RETRAIN_EVERY_S, queue a retrain of each
registered model whose production version was trained on a dataset that has a newer
version since (feedback collected, images imported). A model whose data has not changed is
left alone: a retrain on the same data would only spend the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from foundation.settings import Settings
from mlops.data.store import DatasetError, DatasetStore
from mlops.registry.store import Registry
from mlops.retrain.retrain import RetrainRequest

ALIAS = "production"


def retrain_grown(settings: Settings,
                  request: Callable[[RetrainRequest], str]) -> list[dict[str, Any]]:  # fmt: skip
    """One entry per model with a production version: queued (and its task id) or why not."""
    registry, datasets = Registry(settings), DatasetStore.for_settings(settings)
    outcomes = []
    for name in registry.names():
        production = registry.alias_version(name, ALIAS)
        if production is None:
            continue
        trained_on = registry.version(name, production).dataset or ""
        dataset, _, version = trained_on.partition("@")
        outcome: dict[str, Any] = {"model": name, "production": production,
                                   "dataset": trained_on, "queued": False}  # fmt: skip
        try:
            latest = datasets.latest(dataset) if dataset else None
        except DatasetError:
            latest = None
        if latest is None:
            outcome["detail"] = "its dataset is not in this store"
        elif latest.version == version:
            outcome["detail"] = "no newer dataset version"
        else:
            reason = f"schedule: {dataset}@{latest.version[:12]} is newer than @{version[:12]}"
            outcome.update(queued=True, detail=reason,
                           task=request(RetrainRequest(name, reason)))  # fmt: skip
        outcomes.append(outcome)
    return outcomes
