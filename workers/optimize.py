"""Inference-time rewrites of a model: what the engine runs instead of the module it loaded.

A model trained with BatchNorm keeps it as a separate op after every convolution. At
inference the normalisation is a fixed per-channel affine map, so it can be folded into
the convolution's weights and bias: the same outputs to float rounding, one op and one
pass over the activations less per block. On the demo model this is 1.1-1.4x the model's
CPU throughput (one thread, batch 1 to 32; `framewire bench` shows the model-only figure);
on CUDA it saves a kernel launch per block.

On a CPU device the whole forward (normalisation and model) is also traced and frozen into
one TorchScript graph (`frozen`). Eager PyTorch returns to Python between ops and must take
the GIL back after each one; in a worker whose poll, decode and writer threads want the
GIL too, every op boundary can wait up to a switch interval. Measured on 2 cores (demo
model, batch 12, one torch thread, scripts/gil-contention.py): 4.4 ms alone, 105 ms eager
beside one busy Python thread, 15 ms frozen (docs/PERFORMANCE.md, "Latency under load").
The graph runs in C++ with the GIL released for the whole call.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import structlog
import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from models.normalise import to_model_input
from models.observe import embedding_hook

log = structlog.get_logger(__name__)

# How close the graph's outputs must be to the eager module's: bfloat16 keeps 8 bits of
# mantissa, and freezing may fold ops in another order.
_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 5e-2}


def for_inference(module: nn.Module) -> nn.Module:
    """An eval-mode copy of module with BatchNorm folded into the convolutions before it.

    The loaded module is left as it was (training and export use it). A module that
    torch.fx cannot trace (data-dependent control flow) and TorchScript are returned as
    they are: folding is an optimisation, never a reason not to serve a model.
    """
    module.eval()
    if isinstance(module, torch.jit.ScriptModule) or not _has_batch_norm(module):
        return module
    try:
        return fuse(module, inplace=False)
    except Exception as exc:  # fx raises many types for code it cannot trace
        log.warning("batch norm not folded: the model cannot be traced",
                    error=f"{type(exc).__name__}: {exc}"[:200])  # fmt: skip
        return module


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class _Served(nn.Module):
    """uint8 N x H x W x 3 -> logits, or (logits, embeddings): what the engine runs for a
    batch, as one module. The embeddings (the final Linear's input, models/observe.py) are
    taken by a hook while tracing, so the graph returns them as a second output and an
    observed batch runs frozen like every other."""

    def __init__(self, module: nn.Module, scale: torch.Tensor, shift: torch.Tensor,
                 embeddings: bool, dtype: torch.dtype) -> None:  # fmt: skip
        super().__init__()
        self.module = module
        self.dtype = dtype
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self._taken: torch.Tensor | None = None
        self.hook = embedding_hook(module, self._take) if embeddings else None

    def _take(self, embeddings: torch.Tensor) -> None:
        self._taken = embeddings

    def forward(self, batch: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = to_model_input(batch, self.scale, self.shift)
        logits = self.module(x if self.dtype == torch.float32 else x.to(self.dtype)).float()
        if self.hook is None:
            return logits
        embeddings, self._taken = self._taken, None
        assert embeddings is not None
        return logits, embeddings.float()


def frozen(
    module: nn.Module, scale: torch.Tensor, shift: torch.Tensor, shape: tuple[int, int, int],
    max_batch: int, embeddings: bool = False, dtype: torch.dtype = torch.float32,
) -> torch.jit.ScriptModule | None:  # fmt: skip
    """The forward from uint8 pixels to logits as one frozen TorchScript graph, or None when
    the module cannot be traced or the graph does not give the eager outputs at batch 1,
    an odd size and max_batch (a trace bakes in whatever Python decided at trace time).
    embeddings: the graph returns (logits, embeddings), for a module with a final Linear.
    dtype: the model's weights and activations in the graph (a copy of the module is cast;
    outputs are float32 either way): bfloat16 runs on a CPU's AMX units."""
    if dtype != torch.float32:
        module = copy.deepcopy(module).to(dtype)
    served = _Served(module, scale, shift, embeddings, dtype).eval()
    sizes = sorted({1, min(3, max_batch), max_batch})
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator)
              for n in sizes]  # fmt: skip
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trace and freeze warn about what they check
            graph = torch.jit.freeze(torch.jit.trace(served, inputs[-1], check_trace=False))
            for x in inputs:
                if not _same(graph(x), served(x), _TOLERANCE[dtype]):
                    raise ValueError(f"outputs differ from eager at batch {len(x)}")
    except Exception as exc:  # tracing raises many types; eager serves the model all the same
        log.warning("model not frozen: eager on the CPU",
                    error=f"{type(exc).__name__}: {exc}"[:200])  # fmt: skip
        return None
    finally:
        if served.hook is not None:
            served.hook.remove()  # the graph has the embeddings; the eager module keeps none
    return graph


def _same(graph_out: Any, eager_out: Any, tolerance: float) -> bool:
    pairs = zip(graph_out, eager_out, strict=True) if isinstance(eager_out, tuple) else [
        (graph_out, eager_out)]  # fmt: skip
    return all(torch.allclose(g, e, rtol=tolerance, atol=tolerance) for g, e in pairs)
