"""A content-addressed dataset store under `<state_dir>/datasets`.

    blobs/ab/abcdef...               the bytes, named by their SHA-256, stored once
    names/<name>/<version>.json      a version's manifest
    names/<name>/history.json        the versions of a name, oldest first

A version is a manifest: items (blob, label, split, source), sorted by blob. Its id is
the first 16 hex digits of the SHA-256 of those items as canonical JSON, so the same
content is the same version, and importing the same files again creates nothing (import
is idempotent). Each version holds the items of the one before plus what was added; a
blob imported again with another label is relabelled.

The split is a function of the blob alone (split_of): a blob keeps its split in every
version and every dataset, so validation images never leak into training, whatever is
imported later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from foundation.settings import Settings

SPLITS = ("train", "validation", "test")
_TRAIN_PERCENT, _VALIDATION_PERCENT = 80, 10  # the rest is test
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LATEST = "latest"


class DatasetError(ValueError):
    """A dataset reference or operation that cannot be served; str() is one line."""


def split_of(blob: str) -> str:
    """train, validation or test (80/10/10), from the blob's hash alone."""
    bucket = int(blob[:8], 16) % 100
    if bucket < _TRAIN_PERCENT:
        return "train"
    return "validation" if bucket < _TRAIN_PERCENT + _VALIDATION_PERCENT else "test"


@dataclass(frozen=True)
class Item:
    blob: str  # SHA-256 hex of the bytes
    label: str | None
    split: str
    source: str  # where it came from: a path relative to the imported folder, or topic/p/o


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: str
    created_at: float
    parent: str | None
    items: tuple[Item, ...] = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def labels(self) -> list[str]:
        return sorted({item.label for item in self.items if item.label is not None})

    def split(self, name: str) -> list[Item]:
        if name not in SPLITS:
            raise DatasetError(f"no split {name!r}: one of {', '.join(SPLITS)}")
        return [item for item in self.items if item.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> label -> items."""
        counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        for item in self.items:
            label = item.label or "(none)"
            counts[item.split][label] = counts[item.split].get(label, 0) + 1
        return counts


class DatasetStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_settings(cls, settings: Settings) -> DatasetStore:
        return cls(settings.state_dir / "datasets")

    # Blobs ------------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        blob = hashlib.sha256(data).hexdigest()
        path = self.blob_path(blob)
        if not path.exists():
            _write_atomically(path, data)
        return blob

    def blob_path(self, blob: str) -> Path:
        return self.root / "blobs" / blob[:2] / blob

    def read_blob(self, blob: str) -> bytes:
        return self.blob_path(blob).read_bytes()

    # Versions ---------------------------------------------------------------------------

    def commit(
        self, name: str, added: Iterable[tuple[str, str | None, str]]
    ) -> tuple[DatasetVersion, bool]:
        """A version with the latest version's items plus added (blob, label, source);
        (the version, whether it is new). Nothing changes: the latest version, False."""
        _check_name(name)
        latest = self.latest(name)
        items = {item.blob: item for item in (latest.items if latest else ())}
        for blob, label, source in added:
            old = items.get(blob)
            if old is None or old.label != label:
                items[blob] = Item(blob, label, split_of(blob), old.source if old else source)
        ordered = tuple(sorted(items.values(), key=lambda item: item.blob))
        version = _version_id(ordered)
        if latest is not None and latest.version == version:
            return latest, False
        existing = self._load(name, version)
        if existing is not None:  # back to an earlier content: that version again
            self._append_history(name, version)
            return existing, False
        created = DatasetVersion(name, version, time.time(),
                                 latest.version if latest else None, ordered)  # fmt: skip
        manifest = {**{k: v for k, v in asdict(created).items() if k != "items"},
                    "items": [asdict(item) for item in ordered]}  # fmt: skip
        _write_atomically(self._manifest(name, version), _canonical(manifest))
        self._append_history(name, version)
        return created, True

    def resolve(self, ref: str) -> DatasetVersion:
        """NAME, NAME@latest, NAME@VERSION or NAME@PREFIX of a version id."""
        name, _, wanted = ref.partition("@")
        _check_name(name)
        history = self.history(name)
        if not history:
            raise DatasetError(f"no dataset named {name!r} (framewire data list)")
        if wanted in ("", LATEST):
            version = history[-1]
        else:
            matches = sorted({v for v in history if v.startswith(wanted)})
            if len(matches) != 1:
                what = "no version" if not matches else f"{len(matches)} versions"
                raise DatasetError(f"{what} of {name} starts with {wanted!r}")
            version = matches[0]
        loaded = self._load(name, version)
        if loaded is None:
            raise DatasetError(f"{name}@{version}: manifest missing from {self.root}")
        return loaded

    def latest(self, name: str) -> DatasetVersion | None:
        history = self.history(name)
        return self._load(name, history[-1]) if history else None

    def history(self, name: str) -> list[str]:
        """Version ids of a name, oldest first (a version may come back: its last place)."""
        path = self.root / "names" / name / "history.json"
        return json.loads(path.read_text()) if path.exists() else []

    def names(self) -> list[str]:
        folder = self.root / "names"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def _load(self, name: str, version: str) -> DatasetVersion | None:
        path = self._manifest(name, version)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        items = tuple(Item(**item) for item in data["items"])
        return DatasetVersion(data["name"], data["version"], data["created_at"],
                              data["parent"], items)  # fmt: skip

    def _manifest(self, name: str, version: str) -> Path:
        return self.root / "names" / name / f"{version}.json"

    def _append_history(self, name: str, version: str) -> None:
        history = [v for v in self.history(name) if v != version] + [version]
        _write_atomically(self.root / "names" / name / "history.json", json.dumps(history).encode())


def _version_id(items: tuple[Item, ...]) -> str:
    return hashlib.sha256(_canonical([asdict(item) for item in items])).hexdigest()[:16]


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise DatasetError(
            f"dataset name {name!r}: letters, digits, '.', '_' and '-', at most 64"
        )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
