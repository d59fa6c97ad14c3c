"""Versioned datasets: a content-addressed store, importers, reports (docs/MLOPS.md)."""

from mlops.data.store import DatasetError, DatasetStore, DatasetVersion, Item, split_of

__all__ = ["DatasetError", "DatasetStore", "DatasetVersion", "Item", "split_of"]
