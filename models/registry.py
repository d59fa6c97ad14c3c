"""Registered models, as a worker sees them: `models:/NAME@ALIAS` and `models:/NAME/VERSION`.

A worker only reads the registry: it resolves an alias to a version, and downloads that
version's model directory into `<state_dir>/model-cache/NAME/VERSION`, once (download to
a temporary folder, then rename, so a half-downloaded version is never served and a
version already there is reused). MLflow is imported only here and only for registry
URIs: a worker serving a model directory needs none of it (extra `registry`).

The cached card says who the model is in the registry: its name and version are
rewritten to the registered name and version (the card's own may say anything, e.g.
"1" for every training run), so result/1's `model` names the version that produced it and
`registry promote` / `rollback` speak of the same numbers the results show.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from foundation.settings import Settings
from foundation.tracking import MlflowMissing, import_mlflow, mlflow_client
from models.loader import CARD_FILE, ModelLoadError
from models.spec import ModelCard

SCHEME = "models:/"
EXTRA = "framewire[registry]"
# Version tag that lets a version change the label set of its registered model: the
# workers refuse a label change without it (workers/model_watch.py); `framewire registry
# promote --force` sets it when it deploys one (mlops/registry/).
LABELS_CHANGED_TAG = "labels_changed"
# Registered model names as MLflow allows them, less what would break a path or a URI.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")


@dataclass(frozen=True)
class RegistryRef:
    """A parsed `models:/` URI: exactly one of alias and version is set."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{SCHEME}{self.name}@{self.alias}" if self.alias else (
            f"{SCHEME}{self.name}/{self.version}"
        )


@dataclass(frozen=True)
class FetchedVersion:
    """A registry version in the local cache."""

    name: str
    version: str
    path: Path
    tags: dict[str, str]


def is_registry_uri(text: str | None) -> bool:
    return bool(text) and str(text).startswith(SCHEME)


def parse_model_uri(text: str) -> RegistryRef:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION`; ModelLoadError says what is wrong."""
    if not is_registry_uri(text):
        raise ModelLoadError(f"{text!r} is not a models:/ URI")
    rest = text[len(SCHEME):]
    if "@" in rest:
        name, _, alias = rest.partition("@")
        ref = RegistryRef(name, alias=alias)
        valid = _ALIAS.match(alias) is not None
    else:
        name, _, version = rest.partition("/")
        ref = RegistryRef(name, version=version)
        valid = version.isdigit() and int(version) > 0
    if not _NAME.match(name) or not valid:
        raise ModelLoadError(
            f"{text!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION (VERSION a number)"
        )
    return ref


def registry_client(settings: Settings) -> Any:
    """An MlflowClient; without MLflow installed, ModelLoadError naming the extra."""
    try:
        return mlflow_client(settings)
    except MlflowMissing:
        raise ModelLoadError(
            f"the model registry needs the MLflow client: pip install '{EXTRA}' on a worker, "
            "'framewire[mlops]' to train and promote"
        ) from None


def check_available() -> None:
    """ModelLoadError (one line, naming the extra) when MLflow cannot be imported."""
    try:
        import_mlflow()
    except MlflowMissing:
        raise ModelLoadError(
            f"serving models:/ URIs needs the MLflow registry client: pip install '{EXTRA}'"
        ) from None


def resolve(client: Any, ref: RegistryRef) -> tuple[str, dict[str, str]]:
    """The version an alias points to (or the version itself) and its tags."""
    try:
        if ref.alias:
            found = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            found = client.get_model_version(ref.name, ref.version)
    except Exception as exc:  # MlflowException for "no such model/alias/version"
        raise ModelLoadError(f"{ref}: {_one_line(exc)}") from None
    return str(found.version), dict(found.tags or {})


def cache_dir(settings: Settings, name: str, version: str) -> Path:
    return settings.state_dir / "model-cache" / name / str(version)


def fetch(settings: Settings, client: Any, ref: RegistryRef) -> FetchedVersion:
    """Resolve ref and make its model directory present in the local cache."""
    version, tags = resolve(client, ref)
    target = cache_dir(settings, ref.name, version)
    if not (target / CARD_FILE).is_file():
        _download(client, ref.name, version, target)
    return FetchedVersion(ref.name, version, target, tags)


def _download(client: Any, name: str, version: str, target: Path) -> None:
    mlflow = import_mlflow()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        try:
            uri = client.get_model_version_download_uri(name, version)
            # A folder URI lands as a subfolder of dst_path: use the path it returns.
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                             dst_path=str(staging)))
        except Exception as exc:
            raise ModelLoadError(
                f"models:/{name}/{version}: download failed: {_one_line(exc)}"
            ) from None
        _stamp_card(local / CARD_FILE, name, version)
        try:
            local.rename(target)
        except OSError:
            if not (target / CARD_FILE).is_file():  # not another process's complete copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stamp_card(path: Path, name: str, version: str) -> None:
    """The registered name and version into the cached card (see the module docstring)."""
    if not path.is_file():
        raise ModelLoadError(f"models:/{name}/{version} has no {CARD_FILE}: not a model directory")
    try:
        card = ModelCard.from_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"models:/{name}/{version}: {CARD_FILE}: {exc}") from None
    path.write_text(replace(card, name=name, version=str(version)).to_json(), encoding="utf-8")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
