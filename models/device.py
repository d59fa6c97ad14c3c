"""Which torch device a name means, for every place that runs a model: the workers, the
bench, training and evaluation (so "auto" means the same everywhere)."""

from __future__ import annotations

import torch


def resolve_device(name: str | None) -> str:
    """None/"auto" -> "cuda" when available else "cpu"; validate "cpu", "cuda", "cuda:N"."""
    text = (name or "auto").strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} requested but CUDA is not available (a CPU-only torch build or "
            "no visible GPU); use device 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise ValueError(f"device {name!r} requested but only {count} CUDA device(s) are visible")
    return text
