"""What one image file is: readable or not, its size, brightness, contrast, sharpness and
perceptual hash, measured once for the data report (mlops/data/report.py).

Figures are measured on the image scaled down to at most WORK_SIDE pixels on its long
side, so that they compare across image sizes and a few thousand photos stay quick.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from foundation.imageinfo import ImageInfoError, check_complete, image_size
from models.observe import grey_measures

WORK_SIDE = 256
# Decoding a larger image is refused (a PNG can claim 50,000 x 50,000 pixels in 200 KB);
# the same limit as the workers' default FRAMEWIRE_MAX_FRAME_PIXELS.
MAX_PIXELS = 40_000_000
# A 9x8 grey image whose values span fewer levels than this has no gradient to hash: the
# signs of its differences are noise, and every flat image would match every other.
_FLAT_SPREAD = 8
_THUMB_QUALITY = 80


@dataclass(frozen=True)
class ImageStats:
    format: str  # jpeg, png, webp, bmp or unknown (from the first bytes, not the name)
    size_bytes: int
    problem: str | None  # None when it decodes; else why not (truncated, does not decode)
    width: int | None = None
    height: int | None = None
    brightness: float | None = None  # mean grey, 0-255
    contrast: float | None = None  # grey standard deviation
    sharpness: float | None = None  # variance of the Laplacian of the grey image
    dhash: int | None = None  # 64-bit difference hash; None when unreadable or flat
    pixels: str | None = None  # SHA-256 of the decoded pixels: same picture, other bytes


def sniff_format(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    return "unknown"


def measure(data: bytes, thumbnail_side: int = 0) -> tuple[ImageStats, bytes | None]:
    """The image's stats, and a JPEG thumbnail of at most thumbnail_side pixels (when > 0
    and the image decodes)."""
    kind = sniff_format(data)
    if not data:
        return ImageStats(kind, 0, "empty file"), None
    width = height = None
    if kind in ("jpeg", "png", "webp"):
        try:
            width, height = image_size(data, kind)
            check_complete(data, kind)
        except ImageInfoError as exc:
            return ImageStats(kind, len(data), str(exc), width, height), None
    if width and height and width * height > MAX_PIXELS:
        return ImageStats(kind, len(data), f"{width}x{height}: too many pixels to decode",
                          width, height), None  # fmt: skip
    image = _decode(data, kind, width, height)
    if image is None:
        why = "does not decode" if kind != "unknown" else "not a JPEG, PNG, WebP or BMP image"
        return ImageStats(kind, len(data), why, width, height), None
    height, width = (height, width) if width and height else image.shape[:2]
    work = _fit(image, WORK_SIDE)
    grey = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
    stats = ImageStats(
        kind, len(data), None, width, height,
        **grey_measures(grey),
        dhash=dhash(grey),
        pixels=hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest(),
    )  # fmt: skip
    return stats, _thumbnail(image, thumbnail_side) if thumbnail_side > 0 else None


def dhash(grey: np.ndarray) -> int | None:
    """The difference hash: the grey image at 9x8, one bit per horizontal neighbour pair
    (left brighter than right). Robust to re-encoding, scaling and small colour changes."""
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    if int(small.max()) - int(small.min()) < _FLAT_SPREAD:
        return None
    bits = (small[:, :-1] > small[:, 1:]).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _decode(data: bytes, kind: str, width: int | None, height: int | None) -> np.ndarray | None:
    buffer = np.frombuffer(data, np.uint8)
    flag = cv2.IMREAD_COLOR
    if kind == "jpeg" and width and height:
        # libjpeg's reduced decode (1/2, 1/4, 1/8) is several times cheaper for photos far
        # above WORK_SIDE; the figures are taken at WORK_SIDE anyway.
        flag = _reduced_flag(max(width, height))
    try:
        return cv2.imdecode(buffer, flag)
    except cv2.error:
        return None


def _reduced_flag(side: int) -> int:
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):  # fmt: skip
        if side // factor >= WORK_SIDE:
            return flag
    return cv2.IMREAD_COLOR


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _thumbnail(image: np.ndarray, side: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", _fit(image, side), [cv2.IMWRITE_JPEG_QUALITY, _THUMB_QUALITY])
    return jpeg.tobytes() if ok else b""
