"""Image size and completeness from the encoded bytes, before decoding.

The pixel limit must hold before OpenCV allocates the decoded image: a 200 KB PNG can
claim 50,000 x 50,000 pixels (a decompression bomb). The completeness check catches
truncated files that libjpeg would otherwise decode into a half-grey picture.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Image files framewire reads from folders (producers, dataset imports, backfill jobs):
# what OpenCV decodes, by suffix, lower case.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


class ImageInfoError(ValueError):
    pass


def image_size(data: bytes, encoding: str) -> tuple[int, int]:
    """(width, height) read from the header of a jpeg, png or webp image."""
    readers = {"jpeg": _jpeg_size, "png": _png_size, "webp": _webp_size}
    try:
        return readers[encoding](data)
    except (IndexError, struct.error):
        raise ImageInfoError(f"not a valid {encoding} header") from None


def check_complete(data: bytes, encoding: str) -> None:
    """Raise when the file visibly ends early (no JPEG EOI, no PNG IEND, short RIFF)."""
    if encoding == "jpeg" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise ImageInfoError("truncated jpeg: no end-of-image marker")
    if encoding == "png" and not data.endswith(b"IEND\xaeB`\x82"):
        raise ImageInfoError("truncated png: no IEND chunk")
    if encoding == "webp" and len(data) < 8 + struct.unpack_from("<I", data, 4)[0]:
        raise ImageInfoError("truncated webp: shorter than its RIFF size")


def jpeg_has_exif(data: bytes) -> bool:
    """True when a JPEG carries EXIF (an APP1 "Exif" segment before its frame header).

    Its orientation tag may turn the picture, which OpenCV applies and nvJPEG does not: a
    worker decoding on the GPU decodes such a frame on the CPU (workers/device_decode.py).
    """
    return any(
        marker == 0xE1 and data[pos + 4 : pos + 8] == b"Exif" for marker, pos in _jpeg_headers(data)
    )


def _jpeg_size(data: bytes) -> tuple[int, int]:
    for marker, pos in _jpeg_headers(data):
        if marker in _SOF_MARKERS:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
    raise ImageInfoError("corrupt jpeg: no frame header")


def _jpeg_headers(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, position) of each segment from the start of the image up to its frame header."""
    if data[:2] != b"\xff\xd8":
        raise ImageInfoError("not a jpeg: no start-of-image marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageInfoError("corrupt jpeg: marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        yield marker, pos
        if marker in _SOF_MARKERS:
            return
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]


def _png_size(data: bytes) -> tuple[int, int]:
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ImageInfoError("not a png: bad signature")
    return struct.unpack_from(">II", data, 16)


def _webp_size(data: bytes) -> tuple[int, int]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ImageInfoError("not a webp: bad RIFF header")
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit sizes minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one, packed
        bits = struct.unpack_from("<I", data, 21)[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the start code
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    raise ImageInfoError(f"not a webp: unknown chunk {chunk!r}")
