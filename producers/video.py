"""A video file as a source: every frame by default, or sampled to a frame rate.

Files are read as fast as the publisher takes frames (a file is a backlog, not a live
camera); `realtime=True` paces them at their own speed instead. Timestamps are the start
time of the run plus the frame's position in the media, so the gaps between frames in
Kafka are the video's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from foundation.log import get_logger
from producers.capture import open_capture
from producers.encode import FrameEncoder
from producers.errors import SourceError
from schemas import Frame, now_ms

log = get_logger(__name__)

_FALLBACK_FPS = 30.0  # when a container declares no frame rate


class VideoSource:
    """Frames of one video file; `fps` samples by media timestamp, `loop` restarts at EOF."""

    def __init__(
        self,
        path: str | Path,
        fps: float | None = None,
        loop: bool = False,
        stream_id: str | None = None,
        encoding: str = "jpeg",
        jpeg_quality: int = 90,
        max_side: int | None = None,
        realtime: bool = False,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.loop = loop
        self.stream_id = stream_id or self.path.stem or "video"
        self.realtime = realtime
        self.encoder = FrameEncoder(encoding, jpeg_quality, max_side)
        self.dropped = 0
        # Probe now, so a missing or broken file fails before anything connects to Kafka.
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        capture = open_capture(str(self.path))
        try:
            ok = capture.isOpened() and capture.read()[0]
            declared = capture.get(cv2.CAP_PROP_FPS)
            self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        finally:
            capture.release()
        if not ok:
            raise SourceError(f"cannot decode video {self.path} (not a video, or a codec "
                              "OpenCV lacks)")
        self.native_fps = declared if declared and math.isfinite(declared) else _FALLBACK_FPS

    def __iter__(self) -> Iterator[Frame]:
        start_ms = now_ms()
        start = time.monotonic()
        seq = 0
        offset_ms = 0.0  # media time of the previous loops
        last_slot = -1
        while True:
            played_ms, yielded = 0.0, 0
            for media_ms, image in self._decode():
                played_ms = media_ms
                at_ms = offset_ms + media_ms
                if self.fps is not None:
                    # The frame opens a new sampling slot? Epsilon: 3 * (1000/30) ms must land
                    # in slot 1 at 10 fps, not at 0.9999.
                    slot = math.floor(at_ms * self.fps / 1000 + 1e-6)
                    if slot <= last_slot:
                        continue
                    last_slot = slot
                if self.realtime:
                    delay = start + at_ms / 1000 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield self.encoder.frame(image, self.stream_id, seq, start_ms + round(at_ms))
                seq += 1
                yielded += 1
            if not self.loop:
                return
            if yielded == 0 and played_ms == 0.0:
                log.warning("video yields no frames; not looping", path=str(self.path))
                return
            offset_ms += played_ms + 1000 / self.native_fps

    def _decode(self) -> Iterator[tuple[float, np.ndarray]]:
        """(media time in ms, BGR image) of every decodable frame, in order."""
        capture = open_capture(str(self.path))
        if not capture.isOpened():
            raise SourceError(f"cannot open video {self.path}")
        try:
            index = 0
            previous = -1.0
            while True:
                ok, image = capture.read()
                if not ok:
                    # OpenCV does not tell EOF from a corrupt tail; both end the file.
                    return
                media_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
                # Some containers give no timestamps: fall back to the declared rate.
                if index > 0 and not media_ms > previous:
                    media_ms = index * 1000 / self.native_fps
                previous = media_ms
                index += 1
                yield media_ms, image
        finally:
            capture.release()
