"""The inference engine: a uint8 image batch in, result/1 predictions out, on CPU or CUDA.

The decode threads hand over N x H x W x 3 uint8 images already sized and ordered for the
model (`prepare`); with JPEG decode on the GPU, the device thread hands over such a batch
already there (`submit_resident`, workers/device_decode.py). Everything after that happens
here, and on the device where there is one: uint8 crosses the bus (4x fewer bytes than
float), then permute, float conversion and normalisation run on the GPU. On CUDA `submit`
only enqueues work on the engine's stream and returns, so the caller can gather the next
batch while this one computes; the CPU path is synchronous behind the same interface.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.device import resolve_device
from models.loader import LoadedModel
from models.normalise import normalisation, to_model_input
from models.observe import embedding_hook
from models.spec import ModelCard, prepare
from workers.optimize import for_inference, frozen

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_WARM_UP_ROUNDS = 2
_PINNED_SLOTS = 2  # batch N+1 is staged while batch N's upload may still be in flight


class PendingBatch:
    """A launched batch. On CUDA its outputs arrive in pinned host memory asynchronously."""

    def __init__(
        self,
        model: LoadedModel,
        logits: torch.Tensor | None,
        event: torch.cuda.Event | None = None,
        embeddings: torch.Tensor | None = None,
    ) -> None:
        self._model = model
        self._logits = logits  # host tensor; on CUDA valid only once the event completed
        self._event = event
        self._embeddings = embeddings  # host tensor, for an observed batch
        self._result: list[list[dict]] | None = None

    def embeddings(self) -> np.ndarray | None:
        """N x D: the input of the model's final Linear, when the batch was observed (call
        after result())."""
        return None if self._embeddings is None else self._embeddings.numpy()

    def done(self) -> bool:
        """True when wait() and result() will not wait for the device."""
        return self._event is None or self._event.query()

    def wait(self) -> None:
        """Wait for the device and check the outputs, raising what result() would raise.
        result() then only builds the predictions (the top-k), which the worker leaves to
        its writer thread (workers/device.py, FinishedBatch)."""
        self._synchronize()
        if self._logits is not None:
            self._model.check_logits(self._logits)

    def _synchronize(self) -> None:
        if self._event is not None:
            self._event.synchronize()
            self._event = None

    def result(self) -> list[list[dict]]:
        """Wait for the device, then per image the predictions, best first."""
        if self._result is None:
            self._synchronize()  # postprocess checks the outputs itself
            logits = self._logits
            self._result = [] if logits is None else self._model.postprocess(logits)
            self._logits = None
        return self._result


@dataclass
class _PinnedSlot:
    buffer: torch.Tensor  # max_batch x H x W x 3 uint8, page-locked
    uploaded: torch.cuda.Event | None = None  # recorded after the copy that reads `buffer`


class InferenceEngine:
    def __init__(
        self,
        model: LoadedModel,
        device: str = "cpu",
        max_batch: int = 32,
        precision: str = "auto",
        warm_up: bool = True,
        cpu_threads: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model = model
        self.device = torch.device(resolve_device(device))
        if self.device.type == "cuda" and self.device.index is None:
            # A concrete index, so that streams, events and memory queries agree.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.max_batch = max_batch
        self.is_cuda = self.device.type == "cuda"
        self.autocast_dtype = self._autocast_dtype(precision)
        if not self.is_cuda and cpu_threads:
            # Process-wide: the worker's decode threads share these cores, and torch's
            # default (one thread per core, spinning between ops) would fight them.
            torch.set_num_threads(cpu_threads)
        spec = model.card.input
        self._shape = (spec.height, spec.width, 3)

        module = for_inference(model.module).to(self.device)
        if self.is_cuda:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        # Embeddings for drift monitoring come from the served forward pass itself: a hook
        # on the final Linear keeps its input for the batches a worker observes.
        self._observing = False
        self._embeddings: torch.Tensor | None = None
        self._embedding_hook = _embedding_hook(module, self._keep_embeddings)
        # Normalisation folded into one multiply-add on the device (models/normalise.py,
        # shared with training and evaluation so both see the same numbers).
        self._scale, self._shift = normalisation(spec, self.device)
        # On the CPU, batches run as one frozen graph that holds no GIL (workers/optimize.py),
        # observed ones too: the graph returns the embeddings beside the logits. In bf16 the
        # graph holds a bf16 copy of the weights (a CPU's AMX units run it).
        self._frozen = None
        if not self.is_cuda and self.autocast_dtype in (None, torch.bfloat16):
            self._frozen = frozen(module, self._scale, self._shift, self._shape, max_batch,
                                  embeddings=self._embedding_hook is not None,
                                  dtype=self.autocast_dtype or torch.float32)  # fmt: skip

        self._stream: torch.cuda.Stream | None = None
        self._slots: list[_PinnedSlot] = []
        self._next_slot = 0
        if self.is_cuda:
            self._stream = torch.cuda.Stream(self.device)
            # The weights and constants were copied on the current stream; the engine's
            # own stream must not read them before those copies finish.
            self._stream.wait_stream(torch.cuda.current_stream(self.device))
            self._slots = [
                _PinnedSlot(torch.empty((max_batch, *self._shape), dtype=torch.uint8,
                                        pin_memory=True))
                for _ in range(_PINNED_SLOTS)
            ]
        if warm_up:
            self.warm_up()

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def preprocess_host(self, image_bgr: np.ndarray) -> np.ndarray:
        """A decoded BGR image -> the uint8 input this engine's model expects."""
        return prepare(image_bgr, self.card.input)

    def submit(self, images: np.ndarray, observe: bool = False) -> PendingBatch:
        """Launch a batch of up to max_batch prepared images; returns at once on CUDA.
        observe: also keep the embeddings (the final Linear's input) of this batch."""
        n = self._check(images)
        if n == 0:
            return PendingBatch(self.model, None)
        with self._observed(observe), torch.inference_mode():
            if not self.is_cuda:
                # from_numpy shares memory; a read-only array (np.frombuffer) is copied.
                array = np.ascontiguousarray(images)
                if not array.flags.writeable:
                    array = array.copy()
                return self._run_cpu(torch.from_numpy(array))
            return self._submit_cuda(images, n)

    def submit_resident(self, batch: torch.Tensor, observe: bool = False) -> PendingBatch:
        """Launch a uint8 N x H x W x 3 batch already on this engine's device (decoded there:
        workers/device_decode.py) as `submit` does, without the upload. Work queued on the
        caller's current stream (the decode that made the batch) runs first."""
        n = self._check_resident(batch)
        if n == 0:
            return PendingBatch(self.model, None)
        with self._observed(observe), torch.inference_mode():
            if not self.is_cuda:
                return self._run_cpu(batch.contiguous())
            assert self._stream is not None
            self._stream.wait_stream(torch.cuda.current_stream(self.device))
            # Allocated on another stream: its memory must not be reused before this
            # stream has read it.
            batch.record_stream(self._stream)
            with torch.cuda.stream(self._stream):
                return self._launch_cuda(batch)

    def predict(self, images: np.ndarray) -> list[list[dict]]:
        """Predictions for any number of images, max_batch at a time."""
        self._check(images, any_size=True)
        results: list[list[dict]] = []
        for start in range(0, len(images), self.max_batch):
            results += self.submit(images[start : start + self.max_batch]).result()
        return results

    def forward_resident(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits for a uint8 N x H x W x 3 tensor already on this engine's device, launched
        on the engine's stream without waiting: the model alone, no copy, no postprocessing
        (the benchmark's ceiling). On CUDA, call synchronize() before reading a clock."""
        stream = torch.cuda.stream(self._stream) if self._stream is not None else None
        with torch.inference_mode(), stream or contextlib.nullcontext():
            return self._forward(batch)

    def synchronize(self) -> None:
        """Wait for everything launched on this engine's device (a no-op on the CPU)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def warm_up(self) -> None:
        """Run a few batches at sizes 1 and max_batch: the first calls allocate memory
        and pick kernels, which must not land on the first real frames' latency."""
        for size in sorted({1, self.max_batch}):
            images = np.zeros((size, *self._shape), np.uint8)
            for _ in range(_WARM_UP_ROUNDS):
                self.submit(images).result()

    def device_memory_bytes(self) -> int | None:
        """Device memory this process holds (CUDA caching allocator); None on the CPU."""
        if not self.is_cuda:
            return None
        return int(torch.cuda.memory_reserved(self.device))

    def _submit_cuda(self, images: np.ndarray, n: int) -> PendingBatch:
        assert self._stream is not None
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        if slot.uploaded is not None:
            slot.uploaded.synchronize()  # its previous upload must have read the buffer
        host = slot.buffer[:n]
        host.numpy()[...] = images  # one memcpy into page-locked memory
        with torch.cuda.stream(self._stream):
            batch = host.to(self.device, non_blocking=True)
            slot.uploaded = torch.cuda.Event()
            slot.uploaded.record(self._stream)
            return self._launch_cuda(batch)

    def _launch_cuda(self, batch: torch.Tensor) -> PendingBatch:
        """The batch's forward pass and the copies of its outputs to pinned host memory,
        queued on the engine's stream (the caller's current stream)."""
        assert self._stream is not None
        logits = self._forward(batch).float()
        out = torch.empty(logits.shape, dtype=torch.float32, pin_memory=True)
        out.copy_(logits, non_blocking=True)
        embeddings = self._take_embeddings()
        if embeddings is not None:
            host = torch.empty(embeddings.shape, dtype=torch.float32, pin_memory=True)
            embeddings = host.copy_(embeddings.float(), non_blocking=True)
        done = torch.cuda.Event()
        done.record(self._stream)
        return PendingBatch(self.model, out, done, embeddings)

    @contextlib.contextmanager
    def _observed(self, observe: bool) -> Iterator[None]:
        self._observing = observe and self._embedding_hook is not None
        try:
            yield
        finally:
            self._observing = False

    def _run_cpu(self, batch: torch.Tensor) -> PendingBatch:
        logits = self._forward(batch)
        if logits.dtype != torch.float32:  # a torch call lets the GIL go; skip the no-op
            logits = logits.float()
        return PendingBatch(self.model, logits, embeddings=self._take_embeddings())

    def _keep_embeddings(self, embeddings: torch.Tensor) -> None:
        if self._observing:  # the hook runs on every forward; only observed ones are kept
            self._embeddings = embeddings

    def _take_embeddings(self) -> torch.Tensor | None:
        embeddings, self._embeddings = self._embeddings, None
        if embeddings is None or self.is_cuda:
            return embeddings
        return embeddings.float()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC (on the device) -> logits: layout, normalisation and model on-device."""
        if self._frozen is not None:
            out = self._frozen(batch)
            if not isinstance(out, tuple):
                return out
            logits, embeddings = out
            self._keep_embeddings(embeddings)
            return logits
        x = to_model_input(batch, self._scale, self._shift, channels_last=self.is_cuda)
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            return self.module(x)

    def _autocast_dtype(self, precision: str) -> torch.dtype | None:
        if precision == "fp32" or (precision == "auto" and not self.is_cuda):
            # On a CPU, bf16 is slower than fp32 without AMX and faster with it (the demo
            # model 3.6x at batch 32 on this project's Xeon): asked for, never assumed.
            return None
        if precision == "auto":
            # Emulated bf16 (pre-Ampere) is slower than fp16, so ask for native support.
            with torch.cuda.device(self.device):
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            return torch.bfloat16 if native else torch.float16
        return _DTYPES[precision]

    def _check(self, images: np.ndarray, any_size: bool = False) -> int:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise ValueError("expected a uint8 numpy array of prepared images")
        return self._check_batch(tuple(images.shape), any_size)

    def _check_resident(self, batch: torch.Tensor) -> int:
        if not isinstance(batch, torch.Tensor) or batch.dtype != torch.uint8:
            raise ValueError("expected a uint8 tensor of prepared images")
        if batch.device != self.device:
            raise ValueError(f"expected a batch on {self.device}, got one on {batch.device}")
        return self._check_batch(tuple(batch.shape))

    def _check_batch(self, shape: tuple[int, ...], any_size: bool = False) -> int:
        """The batch size of an N x H x W x 3 batch of this model's input size."""
        if len(shape) != 4 or shape[1:] != self._shape:
            h, w, _ = self._shape
            raise ValueError(
                f"expected N x {h} x {w} x 3 images (model {self.card.name} input), "
                f"got shape {shape}"
            )
        if not any_size and shape[0] > self.max_batch:
            raise ValueError(f"batch of {shape[0]} exceeds max_batch {self.max_batch}")
        return shape[0]


def _embedding_hook(module: torch.nn.Module, sink: Any) -> Any:
    """The hook's handle, or None for a model without a final Linear (or TorchScript,
    whose modules take no Python hooks): such a model is served without embeddings."""
    try:
        return embedding_hook(module, sink)
    except (ValueError, RuntimeError, AttributeError):
        return None
