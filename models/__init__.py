"""The model format, shared by whoever trains models and the workers that serve them:
what a model expects (the card's input spec), how it is built (architectures, plain
torch), and how a model directory is saved and loaded. At the foundation layer, so that
serving (workers/) and training never import each other."""

from models.loader import (
    DEFAULT_MODEL_DIR,
    LoadedModel,
    ModelLoadError,
    load_model,
    resolve_model,
    save_model,
)
from models.spec import InputSpec, ModelCard, prepare

__all__ = [
    "DEFAULT_MODEL_DIR",
    "InputSpec",
    "LoadedModel",
    "ModelCard",
    "ModelLoadError",
    "load_model",
    "prepare",
    "resolve_model",
    "save_model",
]
