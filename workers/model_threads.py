"""The model's intra-op threads on a CPU device, decided from what the stream costs.

On a CPU worker the decode threads and the model share the cores, and which of them should
have the cores depends on which costs more per frame. Measured on 2 cores: the demo model
(decode 0.72 ms, model 0.48 ms of CPU per 640x480 JPEG frame) ran fastest with one model
thread beside the two decode threads, while resnet18 at 112x112 (model 9 ms, decode of a
320x240 JPEG 0.3 ms) served 1.14-1.16x the requests with two (docs/GATEWAY.md).

So, with FRAMEWIRE_CPU_THREADS=0, a model starts with the cores the decode threads leave
and, once it has served SAMPLE_FRAMES frames, takes every core if its CPU per frame (its
batches' time x its threads) exceeded the decode threads' (decode time per frame). Decided
once per model: the two costs differ several-fold in both cases measured, and a choice that
flapped with load would cost more than it saved.

torch.set_num_threads is per thread under OpenMP (the calling thread's team), so only the
device thread, which runs the model, may apply it (workers/device.py).
"""

from __future__ import annotations

import torch

SAMPLE_FRAMES = 256


class ModelThreads:
    def __init__(self, cores: int, decode_threads: int) -> None:
        self.cores = max(1, cores)
        self.shared = max(1, self.cores - decode_threads)  # the cores decode leaves
        self.threads = self.shared
        self.restart()

    def restart(self) -> None:
        """A new model: back to the cores decode leaves, and measure again."""
        self.threads = self.shared
        self.decided = self.shared >= self.cores  # nothing to decide: it has every core
        self.frames = 0
        self.decode_s = 0.0
        self.model_s = 0.0

    def observe(self, frames: int, decode_s: float, batch_s: float) -> int | None:
        """Count one batch: its frames, their decode time (summed over frames) and the
        batch's time in the model. The new thread count when the decision moves it."""
        if self.decided:
            return None
        self.frames += frames
        self.decode_s += decode_s
        self.model_s += batch_s * self.threads
        if self.frames < SAMPLE_FRAMES:
            return None
        self.decided = True
        if self.model_s <= self.decode_s:
            return None
        self.threads = self.cores
        return self.threads

    def apply(self) -> None:
        """Set this thread's torch intra-op threads to the current count."""
        torch.set_num_threads(self.threads)
