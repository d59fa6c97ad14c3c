"""Models: what they expect (spec), how they are built (architectures), loaded and saved."""

from workers.models.loader import (
    DEFAULT_MODEL_DIR,
    LoadedModel,
    ModelLoadError,
    load_model,
    resolve_model,
    save_model,
)
from workers.models.spec import InputSpec, ModelCard, prepare

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
