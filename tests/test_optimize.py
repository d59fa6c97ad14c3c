"""Inference-time rewrites: BatchNorm folded into convolutions, outputs unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.architectures import ARCHITECTURES
from models.observe import embedding_hook
from workers.optimize import for_inference, frozen


def _with_statistics(module: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so folding really changes
    the convolution weights."""
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return module.eval()


def _batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("architecture", ["small-cnn", "resnet18"])
def test_batch_norm_is_folded_and_outputs_are_unchanged(architecture: str) -> None:
    module = _with_statistics(ARCHITECTURES[architecture](6))
    x = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        expected = module(x)
        folded = for_inference(module)
        got = folded(x)
    assert _batch_norms(module) > 0
    assert _batch_norms(folded) == 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert _batch_norms(module) > 0, "the loaded module must be left as it was"


class _Untraceable(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.bn(self.conv(x))
        return self.conv(x)


def test_a_model_that_cannot_be_traced_is_served_as_it_is() -> None:
    module = _Untraceable().eval()
    assert for_inference(module) is module


def test_a_model_without_batch_norm_is_served_as_it_is() -> None:
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    assert for_inference(module) is module


SHAPE = (32, 32, 3)
SCALE, SHIFT = torch.full((1, 3, 1, 1), 1 / 255), torch.zeros(1, 3, 1, 1)


@pytest.mark.parametrize("architecture", ["small-cnn", "resnet18"])
def test_the_frozen_graph_gives_the_eager_outputs_at_any_batch_size(architecture: str) -> None:
    module = for_inference(_with_statistics(ARCHITECTURES[architecture](6)))
    graph = frozen(module, SCALE, SHIFT, SHAPE, max_batch=8)
    assert graph is not None
    batch = torch.randint(0, 256, (5, *SHAPE), dtype=torch.uint8)  # a size it was not traced at
    with torch.inference_mode():
        expected = module(batch.permute(0, 3, 1, 2).float() / 255)
        torch.testing.assert_close(graph(batch), expected, rtol=1e-4, atol=1e-4)


def test_the_frozen_graph_returns_the_final_linears_input_as_embeddings() -> None:
    module = for_inference(_with_statistics(ARCHITECTURES["small-cnn"](6)))
    graph = frozen(module, SCALE, SHIFT, SHAPE, max_batch=8, embeddings=True)
    assert graph is not None
    assert not any(m._forward_hooks for m in module.modules())  # the trace's hook is gone
    batch = torch.randint(0, 256, (5, *SHAPE), dtype=torch.uint8)
    taken: list[torch.Tensor] = []
    handle = embedding_hook(module, taken.append)
    with torch.inference_mode():
        logits, embeddings = graph(batch)
        assert not taken  # the graph runs no Python hook
        expected = module(batch.permute(0, 3, 1, 2).float() / 255)
    handle.remove()
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(embeddings, taken[0], rtol=1e-4, atol=1e-4)


class _SizeDependent(nn.Module):
    """A decision on the batch size, which a trace bakes in at the size it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((2, 3))
        return y if x.shape[0] > 1 else -y


def test_a_graph_that_differs_from_eager_is_not_served() -> None:
    assert frozen(_SizeDependent().eval(), SCALE, SHIFT, SHAPE, max_batch=8) is None


def test_a_bf16_graph_runs_a_bf16_copy_and_answers_as_fp32_does() -> None:
    module = for_inference(_with_statistics(ARCHITECTURES["small-cnn"](6)))
    graph = frozen(module, SCALE, SHIFT, SHAPE, max_batch=8, embeddings=True,
                   dtype=torch.bfloat16)  # fmt: skip
    assert graph is not None
    assert next(module.parameters()).dtype == torch.float32  # the module itself is untouched
    batch = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8)
    with torch.inference_mode():
        logits, embeddings = graph(batch)
        expected = module(batch.permute(0, 3, 1, 2).float() / 255)
    assert logits.dtype == embeddings.dtype == torch.float32
    torch.testing.assert_close(logits, expected, rtol=0.05, atol=0.05)
