"""Measure the publisher: frames/s of 640x480 JPEG frames under several producer settings.

    python -m producers.bench [--bootstrap HOST:PORT] [--frames N] [--partitions P]

Without --bootstrap it starts the embedded broker on a free port (and stops it after).
Frames are encoded once beforehand and cycled, so the figures are the publisher's and the
broker's, not the encoder's. The figures in producers/publisher.py come from this script.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from foundation.kafka import create_topics
from foundation.settings import Settings
from producers.encode import encode_image
from producers.publisher import Publisher
from producers.synthetic import CLASSES, render_scene
from schemas import Frame

# name -> librdkafka settings over the publisher's (whose acks, linger and batch size are
# librdkafka's defaults but for 1 MiB against 1,000,000 bytes).
VARIANTS: dict[str, dict[str, Any]] = {
    "chosen (settings defaults)": {},
    "chosen, acks=1": {"acks": 1},
    "chosen, linger 0": {"linger.ms": 0},
    "chosen, linger 20": {"linger.ms": 20},
    "chosen, batch 256 KB": {"batch.size": 262_144},
    "chosen, batch 4 MB": {"batch.size": 4_194_304},
    "chosen, lz4": {"compression.type": "lz4"},
}  # fmt: skip


def jpeg_pool(count: int = 32, width: int = 640, height: int = 480) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [
        encode_image(render_scene(rng, CLASSES[i % len(CLASSES)], 0.0, width, height))[0]
        for i in range(count)
    ]


def frames(pool: list[bytes], n: int, streams: int = 4) -> Iterator[Frame]:
    for i in range(n):
        yield Frame(stream_id=f"bench-{i % streams}", seq=i // streams,
                    data=pool[i % len(pool)], width=640, height=480)


def run(settings: Settings, pool: list[bytes], n: int, overrides: dict[str, Any],
        tag: str) -> tuple[float, float]:
    settings = settings.replace(topic_prefix=f"bench-{tag}.")
    create_topics(settings)
    with Publisher(settings, config=overrides) as publisher:
        # Connect and fetch metadata outside the timed part.
        publisher.send(next(frames(pool, 1)))
        publisher.flush()
        started = time.monotonic()
        stats = publisher.publish(frames(pool, n))
        elapsed = time.monotonic() - started
        if stats.failed:
            print(f"  ({tag}: {stats.failed} failed: {stats.errors[0]})")
    return (stats.sent - 1) / elapsed, stats.bytes_sent / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (best kept)")
    parser.add_argument("--only", help="run only variants whose name contains this")
    args = parser.parse_args()

    server = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from foundation.servers import EmbeddedKafka, free_port

        server = EmbeddedKafka(free_port(), Path(tempfile.mkdtemp(prefix="fw-bench-")))
        server.start()
        bootstrap = server.address
    try:
        settings = Settings.load(kafka_bootstrap=bootstrap, partitions=args.partitions)
        pool = jpeg_pool()
        mean_kb = sum(map(len, pool)) / len(pool) / 1024
        print(f"{args.frames} frames of 640x480 JPEG (mean {mean_kb:.1f} KB), "
              f"{args.partitions} partitions, best of {args.repeat}")
        chosen = {n: o for n, o in VARIANTS.items() if not args.only or args.only in n}
        best: dict[str, tuple[float, float]] = {}
        # Rounds interleave the variants so a slow moment of the machine hits them all.
        for r in range(args.repeat):
            for i, (name, overrides) in enumerate(chosen.items()):
                result = run(settings, pool, args.frames, overrides, f"{i}-{r}")
                best[name] = max(best.get(name, result), result)
        for name, (fps, mbps) in best.items():
            print(f"  {name:32s} {fps:8.0f} frames/s {mbps:7.1f} MB/s", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
