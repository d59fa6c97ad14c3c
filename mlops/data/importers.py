"""Bringing images into the dataset store from a folder (labelled frames from Kafka are in
mlops/data/topic_import.py)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from foundation.imageinfo import IMAGE_SUFFIXES
from mlops.data.store import DatasetError, DatasetStore, DatasetVersion

# Largest image file imported. A 50-megapixel camera JPEG is about 25 MB; a larger file
# is more likely a mistake (a renamed video, a scan) than a training image, and each file
# is read whole into memory once.
MAX_IMAGE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Imported:
    version: DatasetVersion
    created: bool  # False: the store already held exactly this (import is idempotent)
    files: int  # image files (or topic records) read
    skipped: tuple[str, ...] = ()  # one line each: what was not imported, and why
    left_out: dict[str, int] = field(default_factory=dict)  # topic: reason -> frames


def import_folder(
    store: DatasetStore,
    name: str,
    folder: Path,
    labels_csv: Path | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> Imported:
    """Every image file under folder. With class folders (folder/LABEL/...), the folder is
    the label; with labels_csv (columns `file`, `label`; file relative to folder) it says;
    otherwise there is none. Unreadable images are imported as they are: the data report
    names them, and training skips them. Files above max_bytes are skipped and named."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise DatasetError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    labels = _read_labels(labels_csv) if labels_csv else None
    added, skipped = [], []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        if size > max_bytes:
            skipped.append(f"{relative}: {size:,} bytes, above the {max_bytes:,} byte limit")
            continue
        if labels is not None:
            label = labels.get(relative)
        else:
            label = relative.split("/")[0] if "/" in relative else None
        added.append((store.put_blob(path.read_bytes()), label, relative))
    if not added:
        raise DatasetError(f"{folder}: every image file is above the size limit")
    version, created = store.commit(name, added)
    return Imported(version, created, len(files), tuple(skipped))


def _read_labels(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DatasetError(f"{path}: {exc.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc})") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected a CSV with the columns file and label")
    return {row["file"]: row["label"] for row in rows if row["label"]}
