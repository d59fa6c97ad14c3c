"""Live sources: RTSP, HTTP MJPEG, a device index (or a file played as a live camera).

A live camera does not wait for us: a reader thread grabs frames as they come and keeps
only the newest, so what we publish is always current and a slow publisher drops stale
frames (counted) instead of falling behind. When the source drops, the reader reconnects
with exponential backoff, forever: a camera reboot or a network blip is not a reason to
exit. `stop()` (or Ctrl-C in the publisher) ends it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from foundation.log import get_logger
from producers.capture import is_network, open_capture, parse_target
from producers.encode import FrameEncoder
from producers.pacing import Pacer
from schemas import Frame, now_ms

log = get_logger(__name__)

_WAIT_SLICE_S = 0.2  # how often a waiting consumer looks at stop()


class CameraSource:
    """Newest-frame iterator over a live source, with reconnects and drop counting.

    Counters (read at any time): frames_read (grabbed by the reader), dropped (grabbed but
    replaced by a newer one before being taken), connects, reconnects (connects after the
    first), failures (opens that failed) and disconnects (streams that ended).
    """

    def __init__(
        self,
        url_or_index: str | int,
        max_fps: float | None = None,
        stream_id: str | None = None,
        encoding: str = "jpeg",
        jpeg_quality: int = 90,
        max_side: int | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        if max_fps is not None and max_fps <= 0:
            raise ValueError(f"max_fps must be positive, got {max_fps}")
        if backoff_s <= 0 or max_backoff_s < backoff_s:
            raise ValueError("need 0 < backoff_s <= max_backoff_s")
        self.target = parse_target(url_or_index)
        self.max_fps = max_fps
        self.stream_id = stream_id or default_stream_id(self.target)
        self.encoder = FrameEncoder(encoding, jpeg_quality, max_side)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.frames_read = 0
        self.dropped = 0
        self.connects = 0
        self.failures = 0
        self.disconnects = 0
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        """Start the reader thread (iterating starts it too)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._read_forever, name=f"camera-{self.stream_id}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def latest(self, timeout_s: float | None = None) -> tuple[np.ndarray, int] | None:
        """Take the newest (image, capture ms) not taken yet; None on timeout or stop."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._latest is None and not self._stop.is_set():
                left = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, _WAIT_SLICE_S))
            taken, self._latest = self._latest, None
            return taken

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        pacer = Pacer(self.max_fps, catch_up=False) if self.max_fps else None
        seq = 0
        while not self._stop.is_set():
            if pacer is not None:
                pacer.wait()  # frames grabbed meanwhile replace each other: counted drops
            taken = self.latest()
            if taken is None:
                continue
            image, captured_ms = taken
            yield self.encoder.frame(image, self.stream_id, seq, captured_ms)
            seq += 1

    def __enter__(self) -> CameraSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the reader thread ---------------------------------------------------------------

    def _read_forever(self) -> None:
        delay = self.backoff_s
        while not self._stop.is_set():
            capture = open_capture(self.target)
            if not capture.isOpened():
                capture.release()
                self.failures += 1
                log.warning("camera unavailable, retrying", stream_id=self.stream_id,
                            retry_in_s=delay, failures=self.failures)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.connects += 1
            if self.connects > 1:
                log.info("camera reconnected", stream_id=self.stream_id,
                         reconnects=self.reconnects)
            if self._read_until_end(capture):
                delay = self.backoff_s  # it delivered: the next outage starts the backoff anew
            if not self._stop.is_set():
                self.disconnects += 1
                log.warning("camera stream ended, reconnecting", stream_id=self.stream_id,
                            retry_in_s=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)

    def _read_until_end(self, capture: cv2.VideoCapture) -> bool:
        """Grab frames until the stream ends or stop(); True if any frame came."""
        # A file played as a camera would be read as fast as the disk allows: pace it at
        # its own rate, as a real camera would deliver it.
        pacer = None
        if isinstance(self.target, str) and not is_network(self.target):
            fps = capture.get(cv2.CAP_PROP_FPS)
            pacer = Pacer(fps if fps and fps > 0 else 30.0, catch_up=False)
        got_any = False
        try:
            while not self._stop.is_set():
                if pacer is not None:
                    pacer.wait()
                ok, image = capture.read()
                if not ok or image is None:
                    return got_any
                got_any = True
                self._put(image)
        finally:
            capture.release()
        return got_any

    def _put(self, image: np.ndarray) -> None:
        captured_ms = now_ms()
        with self._cond:
            if self._latest is not None:
                self.dropped += 1
            self._latest = (image, captured_ms)
            self.frames_read += 1
            self._cond.notify_all()


def default_stream_id(target: str | int) -> str:
    """camera-0 for a device; host and path of a URL (never its credentials); a file's stem."""
    if isinstance(target, int):
        return f"camera-{target}"
    if is_network(target):
        parts = urlsplit(target)
        text = f"{parts.hostname or ''}{f'-{parts.port}' if parts.port else ''}{parts.path}"
    else:
        text = Path(target).stem
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
    return slug or "camera"
