"""Bringing images into the dataset store: from a folder, or labelled frames from Kafka."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mlops.data.store import DatasetError, DatasetStore, DatasetVersion

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


@dataclass(frozen=True)
class Imported:
    version: DatasetVersion
    created: bool  # False: the store already held exactly this (import is idempotent)
    files: int  # image files read


def import_folder(
    store: DatasetStore, name: str, folder: Path, labels_csv: Path | None = None
) -> Imported:
    """Every image file under folder. With class folders (folder/LABEL/...), the folder is
    the label; with labels_csv (columns `file`, `label`; file relative to folder) it says;
    otherwise there is none. Unreadable images are imported as they are: the data report
    names them, and training skips them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    labels = _read_labels(labels_csv) if labels_csv else None
    added = []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        if labels is not None:
            label = labels.get(relative)
        else:
            label = relative.split("/")[0] if "/" in relative else None
        added.append((store.put_blob(path.read_bytes()), label, relative))
    version, created = store.commit(name, added)
    return Imported(version, created, len(files))


def _read_labels(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DatasetError(f"{path}: {exc.strerror}") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected a CSV with the columns file and label")
    return {row["file"]: row["label"] for row in rows if row["label"]}
