"""Loading and saving a model directory: `model.json` + `weights.pt` or `model.ts`.

`weights.pt` is a state_dict for a registered architecture, read with weights_only=True
so that a model file cannot run code; `model.ts` is TorchScript (architecture
"torchscript") for models whose code is not in this package. Everything is loaded to the
CPU first: the engine moves it to its device, in the process that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.architectures import ARCHITECTURES
from models.spec import ModelCard

CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
TORCHSCRIPT_FILE = "model.ts"
TORCHSCRIPT = "torchscript"
TOP_K = 5
# numpy ufuncs let the GIL go for arrays over 500 elements (NPY_BEGIN_THREADS_THRESHOLDED).
_NUMPY_TOP_K_MAX = 500

# The committed demo model (`framewire train-demo --out models/demo` rebuilds it).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "demo"


class ModelLoadError(ValueError):
    """A model directory that cannot be served; str() says which file and why."""


@dataclass
class LoadedModel:
    card: ModelCard
    module: nn.Module

    def check_logits(self, logits: torch.Tensor) -> None:
        """Raise unless postprocess can read these outputs (N x C logits for C labels)."""
        if self.card.task != "classification":
            raise NotImplementedError(f"no postprocessing for task {self.card.task!r} yet")
        labels = self.card.labels
        if logits.ndim != 2 or logits.shape[1] != len(labels):
            raise ValueError(
                f"expected N x {len(labels)} logits for {len(labels)} labels, "
                f"got shape {tuple(logits.shape)}"
            )

    def postprocess(self, logits: torch.Tensor) -> list[list[dict]]:
        """N x C logits -> per image the top-k {"label", "score"}, best first (result/1)."""
        self.check_logits(logits)
        labels = self.card.labels
        scores, indices = _top_k(logits, min(TOP_K, len(labels)))
        return [
            [
                {"label": labels[i], "score": round(s, 6)}
                for s, i in zip(row_s, row_i, strict=True)
            ]
            for row_s, row_i in zip(scores, indices, strict=True)
        ]


def _top_k(logits: torch.Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """Per row the k best softmax scores and their classes, best first.

    Small outputs go through numpy, which keeps the GIL for arrays this size; each torch op
    lets it go, and beside a worker's busy threads winning it back took 15 ms (median) for
    30 x 6 logits where numpy took 0.04 ms. For larger outputs numpy lets it go too, once
    per op, and torch's two ops cost less (37 against 59 ms for 30 x 1,000).
    """
    if logits.numel() > _NUMPY_TOP_K_MAX or logits.dtype != torch.float32:
        scores, indices = torch.softmax(logits.float(), dim=1).topk(k, dim=1)  # sorted
        return scores.tolist(), indices.tolist()
    x = logits.numpy()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    probabilities = e / e.sum(axis=1, keepdims=True)
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(probabilities, best, axis=1).tolist(), best.tolist()


def load_model(path: str | Path) -> LoadedModel:
    """Read a model directory; ModelLoadError names the file and the problem."""
    directory = Path(path)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        raise ModelLoadError(f"{card_path} is missing: a model directory needs a {CARD_FILE}")
    try:
        card = ModelCard.from_json(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{card_path}: {exc}") from None
    if card.architecture == TORCHSCRIPT:
        module = _load_torchscript(directory / TORCHSCRIPT_FILE)
    else:
        module = _load_state_dict(card, directory / WEIGHTS_FILE)
    return LoadedModel(card, module.eval())


def save_model(module: nn.Module, card: ModelCard, path: str | Path) -> Path:
    """Write module (weights, or TorchScript when the card says so) and model.json."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    if card.architecture == TORCHSCRIPT:
        scripted = module
        if not isinstance(module, torch.jit.ScriptModule):
            scripted = torch.jit.script(module)
        torch.jit.save(scripted, str(directory / TORCHSCRIPT_FILE))
    else:
        if card.architecture not in ARCHITECTURES:
            raise ModelLoadError(_unknown_architecture(card.architecture))
        # Contiguous CPU copies: a state_dict saved from views or a GPU loads anywhere.
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)
    # The card last: a directory with a card is complete.
    (directory / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
    return directory


def resolve_model(name_or_path: str | Path | None) -> Path:
    """None -> the built-in demo model; a model directory -> itself; else ModelLoadError."""
    if name_or_path is None or str(name_or_path) == "":
        return DEFAULT_MODEL_DIR
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(f"{path} is a file; expected a model directory with {CARD_FILE}")
    raise ModelLoadError(
        f"model {str(name_or_path)!r} is not a directory; pass a directory with {CARD_FILE} "
        f"and {WEIGHTS_FILE} or {TORCHSCRIPT_FILE}, or nothing for the built-in demo model"
    )


def _load_state_dict(card: ModelCard, weights_path: Path) -> nn.Module:
    factory = ARCHITECTURES.get(card.architecture)
    if factory is None:
        raise ModelLoadError(_unknown_architecture(card.architecture))
    if not weights_path.is_file():
        raise ModelLoadError(
            f"{weights_path} is missing: architecture {card.architecture!r} needs a state_dict"
        )
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ModelLoadError(f"{weights_path} is not a readable state_dict: {exc}") from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{weights_path} holds a {type(state).__name__}, not a state_dict")
    module = factory(len(card.labels))
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        # torch lists every missing/unexpected/mis-shaped key; keep the first lines.
        detail = " ".join(str(exc).split())[:500]
        raise ModelLoadError(
            f"{weights_path} does not match architecture {card.architecture!r} with "
            f"{len(card.labels)} labels: {detail}"
        ) from None
    return module


def _load_torchscript(ts_path: Path) -> nn.Module:
    if not ts_path.is_file():
        raise ModelLoadError(f"{ts_path} is missing: architecture {TORCHSCRIPT!r} needs it")
    try:
        return torch.jit.load(str(ts_path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(f"{ts_path} is not a readable TorchScript file: {exc}") from None


def _unknown_architecture(name: str) -> str:
    known = ", ".join([*sorted(ARCHITECTURES), TORCHSCRIPT])
    return f"unknown architecture {name!r}; known: {known}"
