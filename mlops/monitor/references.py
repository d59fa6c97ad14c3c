"""The reference statistics of a served model version (`reference.json`, taken at training:
mlops/train/reference.py), found by the `NAME:VERSION` that results and observations carry.

    the built-in demo model       models/demo/reference.json
    a registered version          its folder in the registry, downloaded once into the
                                  local model cache (models/registry.py)
    --reference NAME:VERSION=PATH a file given by hand (a model trained elsewhere)

A version without a reference cannot be monitored; the monitor says which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foundation.log import get_logger
from foundation.settings import Settings
from models.loader import CARD_FILE, DEFAULT_MODEL_DIR, ModelLoadError
from models.spec import ModelCard

log = get_logger(__name__)

REFERENCE_FILE = "reference.json"


class References:
    def __init__(self, settings: Settings, given: dict[str, Path] | None = None) -> None:
        self.settings = settings
        self.given = dict(given or {})
        self._found: dict[str, dict[str, Any] | None] = {}

    def __call__(self, model: str) -> dict[str, Any] | None:
        if model not in self._found:
            self._found[model] = self._find(model)
        return self._found[model]

    def _find(self, model: str) -> dict[str, Any] | None:
        if model in self.given:
            return _read(self.given[model])
        name, _, version = model.rpartition(":")
        builtin = DEFAULT_MODEL_DIR / REFERENCE_FILE
        if builtin.is_file():
            card = ModelCard.from_json((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
            if (card.name, card.version) == (name, version):
                return _read(builtin)
        return self._registered(name, version)

    def _registered(self, name: str, version: str) -> dict[str, Any] | None:
        try:
            from models.registry import fetch, parse_model_uri, registry_client

            fetched = fetch(self.settings, registry_client(self.settings),
                            parse_model_uri(f"models:/{name}/{version}"))  # fmt: skip
        except (ModelLoadError, ImportError) as exc:
            log.warning("no reference for a served version", model=f"{name}:{version}",
                        reason=str(exc).splitlines()[0])  # fmt: skip
            return None
        path = fetched.path / REFERENCE_FILE
        return _read(path) if path.is_file() else None


def _read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
