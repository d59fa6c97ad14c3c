"""The benchmark's frames: a pool of synthetic images, encoded once, reused in every phase.

JPEGs by default; raw BGR pixels at the model's input size for the null model, so that
decode is a reshape and the figure is the framework's alone. Encoding happens before any
clock starts, so no figure includes the producer's encoder. Every phase sends frames on
stream ids of its own, so its results can be read from the per-stream Redis Streams from
the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from producers.encode import encode_image
from producers.synthetic import CLASSES, render_scene
from schemas import Frame, now_ms

_POOL_SIZE = 32
RAW = "raw-bgr8"


@dataclass(frozen=True)
class FramePool:
    payloads: list[bytes]  # the encoded frames: raw pixel buffers when encoding is raw
    width: int
    height: int
    encoding: str = "jpeg"

    @classmethod
    def render(cls, width: int, height: int, size: int = _POOL_SIZE) -> FramePool:
        payloads = [encode_image(scene)[0] for scene in _scenes(width, height, size)]
        return cls(payloads, width, height)

    @classmethod
    def raw(cls, width: int, height: int, size: int = _POOL_SIZE) -> FramePool:
        """Uncompressed BGR frames: width x height x 3 bytes each."""
        return cls([scene.tobytes() for scene in _scenes(width, height, size)], width, height,
                   RAW)  # fmt: skip

    @property
    def mean_kb(self) -> float:
        return sum(map(len, self.payloads)) / len(self.payloads) / 1024

    def frame(self, i: int, streams: list[str], captured_at_ms: int | None = None) -> Frame:
        stream = streams[i % len(streams)]
        return Frame(
            stream_id=stream,
            seq=i // len(streams),
            data=self.payloads[i % len(self.payloads)],
            encoding=self.encoding,
            captured_at_ms=now_ms() if captured_at_ms is None else captured_at_ms,
            width=self.width,
            height=self.height,
        )

    def frames(self, n: int, streams: list[str]) -> Iterator[Frame]:
        for i in range(n):
            yield self.frame(i, streams)


def _scenes(width: int, height: int, size: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    for i in range(size):
        yield render_scene(rng, CLASSES[i % len(CLASSES)], 0.0, width, height)


def stream_ids(run: str, phase: str, count: int) -> list[str]:
    return [f"bench-{run}-{phase}-{k}" for k in range(count)]
