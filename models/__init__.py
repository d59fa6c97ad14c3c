"""The model format, shared by whoever trains models and the workers that serve them:
what a model expects (the card's input spec), how it is built (architectures, plain
torch), and how a model directory is saved and loaded. At the foundation layer, so that
serving (workers/) and training never import each other.

The names below are loaded on first use (PEP 562): importing a submodule that needs no
torch (models.spec, models.decode) must not import torch, so that `framewire --help` and
the CLI stay light and `framewire worker` can set the environment torch reads when it
loads (workers/process_env.py).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DEFAULT_MODEL_DIR": "models.loader",
    "LoadedModel": "models.loader",
    "ModelLoadError": "models.loader",
    "load_model": "models.loader",
    "resolve_model": "models.loader",
    "save_model": "models.loader",
    "InputSpec": "models.spec",
    "ModelCard": "models.spec",
    "prepare": "models.spec",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
