"""The model alone on the CPU: ms per frame of the frozen graph the worker runs, against two
variants it does not (torch.jit.optimize_for_inference, channels_last), for the demo model
and resnet18 at 112x112, at batch 1, 16 and 32. Run it with and without
OMP_WAIT_POLICY=PASSIVE to see what passive OpenMP threads cost a model alone on idle cores.

    .venv/bin/python scripts/cpu-model-variants.py [THREADS]
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from framewire.bench.model import model_directory
from models.loader import load_model
from models.normalise import normalisation
from workers.optimize import _Served, for_inference


def ms_per_frame(forward: Callable, x: torch.Tensor, reps: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            forward(x)
        start = time.perf_counter()
        for _ in range(reps):
            forward(x)
    return (time.perf_counter() - start) / reps / len(x) * 1000


def traced(module: torch.nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, x, check_trace=False)


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    for name, size in (("demo", 64), ("resnet18", 112)):
        loaded = load_model(model_directory(name, size, Path(tempfile.mkdtemp())))
        spec = loaded.card.input
        module = for_inference(loaded.module)
        scale, shift = normalisation(spec, torch.device("cpu"))
        # As the worker builds it: the embeddings (for drift) as a second output.
        served = _Served(module, scale, shift, embeddings=True, dtype=torch.float32).eval()
        for batch in (1, 16, 32):
            x = torch.randint(0, 256, (batch, spec.height, spec.width, 3), dtype=torch.uint8)
            reps = max(3, (200 if name == "demo" else 40) // batch)
            with torch.inference_mode():
                variants = {
                    "frozen (served)": torch.jit.freeze(traced(served, x)),
                    "optimize_for_inference": torch.jit.optimize_for_inference(traced(served, x)),
                }
                module.to(memory_format=torch.channels_last)
                variants["frozen, channels_last"] = torch.jit.freeze(traced(served, x))
                module.to(memory_format=torch.contiguous_format)
            figures = ", ".join(f"{label} {ms_per_frame(forward, x, reps):.3f}"
                                for label, forward in variants.items())  # fmt: skip
            print(f"{name} {size}x{size}, {threads} thread(s), batch {batch}: ms per frame: "
                  f"{figures}", flush=True)


if __name__ == "__main__":
    main()
