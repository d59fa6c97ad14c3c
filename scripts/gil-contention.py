"""How long the demo model's forward takes beside busy Python threads, eager and as the
frozen TorchScript graph the CPU engine serves (docs/PERFORMANCE.md, "Latency under load"),
and the device thread's host steps around it: stacking a batch's images, and turning
logits into predictions.

    .venv/bin/python scripts/gil-contention.py [--busy 1] [--switch-interval 0.005]

Eager PyTorch takes the GIL back after every op; a busy Python thread (the worker's poll or
writer) makes each of those waits up to a switch interval. The frozen graph runs in C++ and
takes it once per call. The same holds for any call that lets the GIL go: numpy's copies
(np.stack releases it once per image) and every torch op (softmax, top-k).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np
import torch

from models import load_model
from models.loader import DEFAULT_MODEL_DIR
from models.normalise import normalisation
from workers.host_batch import stack_images
from workers.optimize import for_inference, frozen

BATCH = 12


def median_and_p95_ms(forward, x: object, rounds: int = 60) -> tuple[float, float]:
    times = []
    with torch.inference_mode():
        for _ in range(rounds):
            started = time.perf_counter()
            forward(x)
            times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="busy Python threads beside it")
    parser.add_argument("--switch-interval", type=float, default=sys.getswitchinterval())
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    torch.set_num_threads(1)  # the worker's default on 2 cores

    model = load_model(DEFAULT_MODEL_DIR)
    spec = model.card.input
    eager_module = for_inference(model.module)
    scale, shift = normalisation(spec, torch.device("cpu"))
    graph = frozen(eager_module, scale, shift, (spec.height, spec.width, 3), 32)
    pixels = torch.randint(0, 256, (BATCH, spec.height, spec.width, 3), dtype=torch.uint8)

    def eager(batch: torch.Tensor) -> torch.Tensor:
        return eager_module(batch.permute(0, 3, 1, 2).float().mul_(scale).add_(shift))

    images = [pixels[0].numpy().copy() for _ in range(30)]
    logits = graph(pixels)
    candidates = {
        "eager": (eager, pixels),
        "frozen": (graph, pixels),
        "np.stack, 30 images": (np.stack, images),
        "stack_images, 30 images": (stack_images, images),
        "postprocess": (model.postprocess, logits),
    }
    for name, (forward, x) in candidates.items():
        print(f"{name:24s} alone: median %.2f ms, p95 %.2f ms" % median_and_p95_ms(forward, x))
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(200))

    for _ in range(args.busy):
        threading.Thread(target=busy, daemon=True).start()
    for name, (forward, x) in candidates.items():
        print(f"{name:24s} beside {args.busy} busy thread(s), switch interval "
              f"{args.switch_interval * 1000:g} ms: median %.2f ms, p95 %.2f ms"
              % median_and_p95_ms(forward, x))  # fmt: skip
    stop.set()


if __name__ == "__main__":
    main()
