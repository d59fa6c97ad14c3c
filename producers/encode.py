"""Turning a BGR image into the bytes of a frame/1 record.

Every source decodes or renders to a BGR uint8 array and hands it to `FrameEncoder`, so
resize-before-encode, the encoding names of frame/1 and the JPEG quality are decided in
one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas import Frame, now_ms

# CLI names -> frame/1 encoding names. "raw" is BGR because that is what OpenCV hands us;
# sending it as-is spares a colour conversion on both ends.
ENCODING_NAMES = {"jpeg": "jpeg", "png": "png", "webp": "webp", "raw": "raw-bgr8"}

# PNG level 1: a 640x480 frame compresses within a few percent of level 9 at a fraction of
# the CPU, and producers are usually CPU-bound before Kafka is.
_PNG_COMPRESSION = 1


def encode_image(
    image_bgr: np.ndarray,
    encoding: str = "jpeg",
    jpeg_quality: int = 90,
    max_side: int | None = None,
) -> tuple[bytes, str, int, int]:
    """(data, frame/1 encoding name, width, height) of a BGR uint8 image.

    `max_side` shrinks the image (never enlarges it) so that its longer side is at most
    that many pixels, before encoding: the cheapest place to cut bytes on the wire.
    """
    name = ENCODING_NAMES.get(encoding, encoding)
    if name not in ENCODING_NAMES.values():
        choices = ", ".join(ENCODING_NAMES)
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {choices}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be between 1 and 100, got {jpeg_quality}")
    image = _to_bgr8(image_bgr)
    if max_side is not None:
        image = resize_max_side(image, max_side)
    height, width = image.shape[:2]
    if name == "raw-bgr8":
        return np.ascontiguousarray(image).tobytes(), name, width, height
    if name == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif name == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION]
    ok, buffer = cv2.imencode("." + name, image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {width}x{height} image as {name}")
    return buffer.tobytes(), name, width, height


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image shrunk so its longer side is at most max_side; unchanged if already smaller."""
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # INTER_AREA: the only OpenCV filter that does not alias when shrinking.
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")


@dataclass(frozen=True)
class FrameEncoder:
    """The encoding options every source shares, and the step from image to Frame."""

    encoding: str = "jpeg"
    jpeg_quality: int = 90
    max_side: int | None = None

    def __post_init__(self) -> None:
        # Fail at construction (CLI start), not on the first frame.
        encode_image(np.zeros((2, 2, 3), np.uint8), self.encoding, self.jpeg_quality,
                     self.max_side)

    @property
    def wire_encoding(self) -> str:
        return ENCODING_NAMES.get(self.encoding, self.encoding)

    def frame(
        self,
        image_bgr: np.ndarray,
        stream_id: str,
        seq: int,
        captured_at_ms: int | None = None,
        label: str | None = None,
    ) -> Frame:
        data, encoding, width, height = encode_image(
            image_bgr, self.encoding, self.jpeg_quality, self.max_side
        )
        return Frame(
            stream_id=stream_id,
            seq=seq,
            data=data,
            encoding=encoding,
            captured_at_ms=now_ms() if captured_at_ms is None else captured_at_ms,
            # Sizes go along for every encoding: free, and a consumer can size buffers early.
            width=width,
            height=height,
            label=label,
        )
