"""The demo model's batch of one, back to back and with idle gaps between calls: what a
frame at low load pays for a core that idled since the last one (docs/PERFORMANCE.md).

    .venv/bin/python scripts/idle-model.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from models.loader import load_model, resolve_model
from workers.engine import InferenceEngine

CALLS = 200


def main() -> None:
    torch.set_num_threads(1)  # the worker's model thread on 2 cores
    engine = InferenceEngine(load_model(resolve_model(None)), "cpu", max_batch=32)
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), np.uint8)
    for gap_s in (0.0, 0.002, 0.01, 0.02):
        times_ms = []
        for _ in range(CALLS):
            time.sleep(gap_s)
            start = time.perf_counter()
            engine.submit(image).result()
            times_ms.append((time.perf_counter() - start) * 1000)
        print(f"{gap_s * 1000:.0f} ms idle between calls: median {np.median(times_ms):.2f} ms, "
              f"p90 {np.percentile(times_ms, 90):.2f} ms per batch of one")


if __name__ == "__main__":
    main()
