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

One item per blob: identical bytes imported from two places are one item (the first
place, in import order, gives its label and source). The other places are kept beside
the items, in the manifest's `also` (blob -> [[source, label], ...]), so the data report
can name every copy. `also` is provenance, not content: it is left out of the version id
(the same items are the same version, whatever other copies were seen), and a commit that
changes no item but finds new copies adds them to that version's `also` in place. Folding
them into Item would have made a second copy of a file a new version with nothing new to
train on.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from foundation.settings import Settings

SPLITS = ("train", "validation", "test")
_TRAIN_PERCENT, _VALIDATION_PERCENT = 80, 10  # the rest is test
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LATEST = "latest"
_BLOB = re.compile(r"^[0-9a-f]{64}$")
# Copies kept per blob in `also`: enough to name them in a report, bounded for a camera
# that sends the same bytes all day.
MAX_COPIES = 100

Copy = tuple[str, "str | None"]  # (source, label) of another place the same bytes came from


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
    # blob -> other (source, label) of the same bytes; not part of the version id.
    also: dict[str, tuple[Copy, ...]] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )

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
        if not _BLOB.match(blob):  # never a path out of the store, whatever a manifest says
            raise DatasetError(f"not a blob id (64 hex digits): {blob[:80]!r}")
        return self.root / "blobs" / blob[:2] / blob

    def read_blob(self, blob: str) -> bytes:
        return self.blob_path(blob).read_bytes()

    # Versions ---------------------------------------------------------------------------

    def commit(
        self, name: str, added: Iterable[tuple[str, str | None, str]]
    ) -> tuple[DatasetVersion, bool]:
        """A version with the latest version's items plus added (blob, label, source);
        (the version, whether it is new). Nothing changes: the latest version, False.

        A blob already in the latest version with another label is relabelled, and its
        source becomes the one that gave the new label. A blob met again within one commit
        is recorded in `also`, not relabelled: the first place decides.
        """
        check_name(name)
        with self._locked(name):
            latest = self.latest(name)
            items, also = _merge(latest, added)
            ordered = tuple(sorted(items.values(), key=lambda item: item.blob))
            version = _version_id(ordered)
            existing = self._load(name, version)
            if existing is not None:  # the same content: that version again, maybe new copies
                if existing.also != also:
                    existing = replace(existing, also=also)
                    self._write_manifest(existing)
                if latest is None or latest.version != version:
                    self._append_history(name, version)
                return existing, False
            created = DatasetVersion(name, version, time.time(),
                                     latest.version if latest else None, ordered, also)  # fmt: skip
            self._write_manifest(created)
            self._append_history(name, version)
            return created, True

    def resolve(self, ref: str) -> DatasetVersion:
        """NAME, NAME@latest, NAME@VERSION or NAME@PREFIX of a version id."""
        name, _, wanted = ref.partition("@")
        check_name(name)
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
        if not folder.exists():
            return []
        # A folder without history holds no version yet (a first commit in progress).
        return sorted(p.name for p in folder.iterdir() if (p / "history.json").exists())

    def _load(self, name: str, version: str) -> DatasetVersion | None:
        path = self._manifest(name, version)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        items = tuple(Item(**item) for item in data["items"])
        also = {blob: tuple((source, label) for source, label in copies)
                for blob, copies in data.get("also", {}).items()}  # fmt: skip
        return DatasetVersion(data["name"], data["version"], data["created_at"],
                              data["parent"], items, also)  # fmt: skip

    def _write_manifest(self, version: DatasetVersion) -> None:
        manifest = {
            "name": version.name,
            "version": version.version,
            "created_at": version.created_at,
            "parent": version.parent,
            "items": [asdict(item) for item in version.items],
            "also": {blob: [list(copy) for copy in copies]
                     for blob, copies in version.also.items()},
        }  # fmt: skip
        _write_atomically(self._manifest(version.name, version.version), _canonical(manifest))

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """One commit of a name at a time (two imports at once would lose a history entry)."""
        folder = self.root / "names" / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _manifest(self, name: str, version: str) -> Path:
        return self.root / "names" / name / f"{version}.json"

    def _append_history(self, name: str, version: str) -> None:
        history = [v for v in self.history(name) if v != version] + [version]
        _write_atomically(self.root / "names" / name / "history.json", json.dumps(history).encode())


def _merge(
    latest: DatasetVersion | None, added: Iterable[tuple[str, str | None, str]]
) -> tuple[dict[str, Item], dict[str, tuple[Copy, ...]]]:
    """The items and copies of the next version: latest's plus added."""
    items = {item.blob: item for item in (latest.items if latest else ())}
    also = {blob: list(copies) for blob, copies in (latest.also if latest else {}).items()}
    seen: set[str] = set()  # blobs met in this commit
    for blob, label, source in added:
        old = items.get(blob)
        if blob in seen or (old is not None and old.label == label and old.source != source):
            copies = also.setdefault(blob, [])
            if (source, label) not in copies and len(copies) < MAX_COPIES and (
                old is None or old.source != source
            ):
                copies.append((source, label))
        elif old is None or old.label != label:
            items[blob] = Item(blob, label, split_of(blob), source)
        seen.add(blob)
    for blob, copies in also.items():  # the item's own place is not another copy
        copies[:] = [c for c in copies if c[0] != items[blob].source]
    return items, {blob: tuple(sorted(c, key=_copy_key)) for blob, c in also.items() if c}


def _copy_key(copy: Copy) -> tuple[str, str]:
    return copy[0], copy[1] or ""


def _version_id(items: tuple[Item, ...]) -> str:
    return hashlib.sha256(_canonical([asdict(item) for item in items])).hexdigest()[:16]


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise DatasetError(
            f"dataset name {name!r}: letters, digits, '.', '_' and '-', at most 64"
        )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
