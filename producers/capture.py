"""Opening OpenCV captures: video files, device indexes, RTSP and HTTP streams."""

from __future__ import annotations

import cv2

# Network sources: without these, FFmpeg may wait for a dead camera for 30 s or more,
# and a reconnect loop cannot notice the drop.
OPEN_TIMEOUT_MS = 5_000
READ_TIMEOUT_MS = 5_000


def parse_target(target: str | int) -> str | int:
    """A device index (an int, or a string of digits) or a path/URL, as OpenCV wants it."""
    if isinstance(target, int):
        return target
    text = str(target).strip()
    return int(text) if text.isdigit() else text


def is_network(target: str | int) -> bool:
    return isinstance(target, str) and "://" in target


def open_capture(target: str | int) -> cv2.VideoCapture:
    """An opened or unopened capture (check isOpened()); never raises for a bad target."""
    if is_network(target):
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS,
        ]  # fmt: skip
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target)
