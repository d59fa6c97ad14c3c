"""The benchmark's frames: a pool of synthetic JPEGs, encoded once, reused in every phase.

Encoding happens before any clock starts, so no figure includes the producer's encoder.
Every phase sends frames on stream ids of its own, so its results can be read from the
per-stream Redis Streams from the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from producers.encode import encode_image
from producers.synthetic import CLASSES, render_scene
from schemas import Frame, now_ms

_POOL_SIZE = 32


@dataclass(frozen=True)
class FramePool:
    jpegs: list[bytes]
    width: int
    height: int

    @classmethod
    def render(cls, width: int, height: int, size: int = _POOL_SIZE) -> FramePool:
        rng = np.random.default_rng(0)
        jpegs = [
            encode_image(render_scene(rng, CLASSES[i % len(CLASSES)], 0.0, width, height))[0]
            for i in range(size)
        ]
        return cls(jpegs, width, height)

    @property
    def mean_kb(self) -> float:
        return sum(map(len, self.jpegs)) / len(self.jpegs) / 1024

    def frame(self, i: int, streams: list[str], captured_at_ms: int | None = None) -> Frame:
        stream = streams[i % len(streams)]
        return Frame(
            stream_id=stream,
            seq=i // len(streams),
            data=self.jpegs[i % len(self.jpegs)],
            captured_at_ms=now_ms() if captured_at_ms is None else captured_at_ms,
            width=self.width,
            height=self.height,
        )

    def frames(self, n: int, streams: list[str]) -> Iterator[Frame]:
        for i in range(n):
            yield self.frame(i, streams)


def stream_ids(run: str, phase: str, count: int) -> list[str]:
    return [f"bench-{run}-{phase}-{k}" for k in range(count)]
