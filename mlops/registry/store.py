"""Registered models on the configured MLflow store: versions, aliases, tags, history.

Conventions (shared with training, mlops/train/):

- version tags: `dataset` = "NAME@VERSION", the dataset the version was validated on
  (the gate evaluates on its validation split); `accuracy` on that split; `labels_changed`
  = "true" on a version promoted with `--force` over a label change (the workers accept a
  new label set for a registered name only then, workers/model_watch.py).
- registered-model tag `framewire.history`: the promotions and rollbacks of every alias,
  a JSON list of {action, alias, version, previous, at, forced, by, reasons}, oldest
  first, capped. It lives in the registry itself, so every machine that can promote sees
  the same history, and rollback needs nothing local.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from foundation.settings import Settings
from foundation.tracking import experiment_id
from models.loader import CARD_FILE, TORCHSCRIPT, TORCHSCRIPT_FILE, ModelLoadError, load_model
from models.registry import FetchedVersion, RegistryRef, fetch, registry_client
from models.spec import ModelCard

PRODUCTION = "production"
DATASET_TAG = "dataset"
ACCURACY_TAG = "accuracy"
IMPORTED_FROM_TAG = "imported_from"
HISTORY_TAG = "framewire.history"
HISTORY_KEEP = 40  # entries kept: MLflow caps a tag value at a few thousand characters
IMPORT_EXPERIMENT = "framewire-registry-import"
MODEL_ARTIFACT = "model"


class RegistryError(ValueError):
    """A registry operation that cannot be done; str() is one line."""


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    created_at: float  # seconds since the epoch
    aliases: list[str]
    tags: dict[str, str]
    source: str
    run_id: str | None

    @property
    def dataset(self) -> str | None:
        return self.tags.get(DATASET_TAG)


@dataclass(frozen=True)
class HistoryEntry:
    action: str  # promote | rollback
    alias: str
    version: str
    previous: str | None
    at: float
    forced: bool = False
    by: str = ""
    reasons: list[str] = field(default_factory=list)  # what a forced promotion overrode


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self.client = registry_client(settings)
        except ModelLoadError as exc:
            raise RegistryError(str(exc)) from None

    # Reading ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, name: str) -> list[VersionInfo]:
        self._require(name)
        found = self.client.search_model_versions(f"name='{name}'")
        # search_model_versions leaves `aliases` empty: take them from the model.
        aliases: dict[str, list[str]] = {}
        for alias, version in (self.client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        infos = [replace(_info(v), aliases=sorted(aliases.get(str(v.version), []))) for v in found]
        return sorted(infos, key=lambda v: int(v.version))

    def version(self, name: str, version: str) -> VersionInfo:
        self._require(name)
        try:
            return _info(self.client.get_model_version(name, str(version)))
        except Exception:
            raise RegistryError(f"{name} has no version {version}") from None

    def alias_version(self, name: str, alias: str) -> str | None:
        self._require(name)
        aliases = self.client.get_registered_model(name).aliases or {}
        found = aliases.get(alias)
        return str(found) if found is not None else None

    def fetch(self, name: str, version: str) -> FetchedVersion:
        """The version's model directory in the local cache (the workers' cache format)."""
        try:
            return fetch(self.settings, self.client, RegistryRef(name, version=str(version)))
        except ModelLoadError as exc:
            raise RegistryError(str(exc)) from None

    def card(self, name: str, version: str) -> ModelCard:
        path = self.fetch(name, version).path / CARD_FILE
        return ModelCard.from_json(path.read_text(encoding="utf-8"))

    def history(self, name: str) -> list[HistoryEntry]:
        self._require(name)
        text = (self.client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
        if not text:
            return []
        return [HistoryEntry(**entry) for entry in json.loads(text)]

    # Writing ------------------------------------------------------------------------------

    def register(
        self, directory: Path, name: str, tags: dict[str, str] | None = None
    ) -> VersionInfo:
        """A new version of name from a model directory (checked by loading it first),
        its files kept as the artifacts of a run in the `framewire-registry-import`
        experiment (a version needs an artifact location; a run gives it one)."""
        try:
            card = load_model(directory).card
        except ModelLoadError as exc:
            raise RegistryError(f"not registered: {exc}") from None
        self._ensure(name)
        run = self.client.create_run(
            experiment_id(self.settings, IMPORT_EXPERIMENT),
            run_name=f"import {name}",
            tags={IMPORTED_FROM_TAG: str(directory)},
        )
        run_id = run.info.run_id
        try:
            for path in sorted(Path(directory).iterdir()):
                if path.is_file():  # the model files only: nothing a loader would not read
                    self.client.log_artifact(run_id, str(path), MODEL_ARTIFACT)
        finally:
            self.client.set_terminated(run_id)
        all_tags = {"card_name": card.name, "card_version": card.version, **(tags or {})}
        version = self.client.create_model_version(
            name, source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", run_id=run_id,
            tags=all_tags,
        )  # fmt: skip
        return _info(version)

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(name, str(version), key, value)

    def move_alias(
        self,
        name: str,
        alias: str,
        version: str,
        action: str,
        forced: bool = False,
        reasons: list[str] | None = None,
    ) -> HistoryEntry:
        """Point alias at version and append the move to the history."""
        self.version(name, version)  # exists
        previous = self.alias_version(name, alias)
        self.client.set_registered_model_alias(name, alias, str(version))
        entry = HistoryEntry(action, alias, str(version), previous, round(time.time(), 3),
                             forced, _who(), list(reasons or []))  # fmt: skip
        history = [*self.history(name), entry][-HISTORY_KEEP:]
        text = json.dumps([e.__dict__ for e in history], separators=(",", ":"))
        self.client.set_registered_model_tag(name, HISTORY_TAG, text)
        return entry

    def rollback_target(self, name: str, alias: str) -> tuple[str, str]:
        """(current, previous) for alias: the history read as a stack, a promotion pushes
        its version and a rollback pops, so rolling back twice goes two promotions back."""
        stack: list[str] = []
        for entry in self.history(name):
            if entry.alias != alias:
                continue
            if entry.action == "promote":
                stack.append(entry.version)
            elif stack:
                stack.pop()
        current = self.alias_version(name, alias)
        # Drop the tail that is the current version (promoted again, or moved outside us).
        while stack and stack[-1] == current:
            stack.pop()
        if current is None or not stack:
            raise RegistryError(f"{name}@{alias}: no earlier version in the history to roll "
                                f"back to")  # fmt: skip
        return current, stack[-1]

    def _require(self, name: str) -> None:
        try:
            self.client.get_registered_model(name)
        except Exception:
            raise RegistryError(f"no registered model named {name!r} (framewire registry "
                                f"list)") from None  # fmt: skip

    def _ensure(self, name: str) -> None:
        try:
            self.client.get_registered_model(name)
        except Exception:
            self.client.create_registered_model(name)


def model_directory_for(path: Path, card: Path | None, workdir: Path) -> Path:
    """What `registry import` registers: a model directory as it is, or a TorchScript file
    with a card (architecture "torchscript") put together in workdir."""
    path = Path(path)
    if path.is_dir():
        if card is not None:
            raise RegistryError(f"{path} is a model directory: its {CARD_FILE} is the card "
                                f"(--card is for a TorchScript file)")  # fmt: skip
        return path
    if not path.is_file():
        raise RegistryError(f"{path} does not exist")
    if card is None:
        raise RegistryError(
            f"{path} is a file: a TorchScript model needs --card model.json (name, labels, "
            f"input size, mean/std, architecture \"{TORCHSCRIPT}\")"
        )
    try:
        parsed = ModelCard.from_json(Path(card).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{card}: {exc}") from None
    if parsed.architecture != TORCHSCRIPT:
        raise RegistryError(f"{card}: architecture must be {TORCHSCRIPT!r} for a TorchScript "
                            f"file, got {parsed.architecture!r}")  # fmt: skip
    target = Path(tempfile.mkdtemp(prefix="import-", dir=workdir))
    shutil.copyfile(path, target / TORCHSCRIPT_FILE)
    (target / CARD_FILE).write_text(parsed.to_json(), encoding="utf-8")
    return target


def _info(version: Any) -> VersionInfo:
    return VersionInfo(
        name=version.name,
        version=str(version.version),
        created_at=(version.creation_timestamp or 0) / 1000,
        aliases=sorted(version.aliases or []),
        tags=dict(version.tags or {}),
        source=version.source,
        run_id=version.run_id,
    )


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
