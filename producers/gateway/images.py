"""Cheap checks that an uploaded image will decode, before it is published.

The gateway reads the image header (format from the magic bytes, width and height) and
checks that the file is complete, with the same pure functions the worker runs before it
decodes (foundation/imageinfo.py); it does not decode the pixels. Why not cv2.imdecode:

- it would decode every image twice (here and in the worker), on the gateway's CPU, in a
  request thread: the gateway's job is to pass bytes along, the workers decode in a pool;
- it allocates the full picture first: a small PNG claiming 50,000 x 50,000 pixels would
  cost gigabytes here; the header check refuses it by the pixel limit without allocating;
- a header check takes microseconds, so a batch of 64 images is validated in well under
  a millisecond.

What it does not catch: a complete file with a valid header whose compressed data is
corrupt. The worker then answers that frame with `status: "error"`, which the gateway
passes on (422 for a single image, per item in a batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.imageinfo import ImageInfoError, check_complete, image_size
from producers.gateway.errors import ApiError

# Content types a client may declare, and the frame/1 encoding each one means.
CONTENT_TYPES = {"image/jpeg": "jpeg", "image/jpg": "jpeg", "image/png": "png",
                 "image/webp": "webp"}  # fmt: skip
# Part content types that say nothing about the format: the magic bytes decide.
GENERIC_TYPES = frozenset({"", "application/octet-stream"})


@dataclass(frozen=True)
class Upload:
    """One validated image of a request."""

    data: bytes
    encoding: str  # frame/1 name: jpeg, png or webp
    width: int
    height: int


def sniff_encoding(data: bytes) -> str | None:
    """The format from the first bytes, whatever the client declared."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_content_type(content_type: str | None, what: str) -> None:
    """415 for a declared type that is neither a supported image nor generic."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype in CONTENT_TYPES or mimetype in GENERIC_TYPES:
        return
    raise ApiError(
        415,
        "unsupported_media_type",
        f"{what}: content type {mimetype!r} is not supported; "
        f"send {', '.join(sorted(set(CONTENT_TYPES) - {'image/jpg'}))}",
    )


def validate_image(data: bytes, what: str, max_bytes: int, max_pixels: int) -> Upload:
    """An Upload, or ApiError 413 (too large) / 422 (will not decode), naming `what`."""
    if len(data) > max_bytes:
        raise ApiError(
            413, "image_too_large",
            f"{what} has {len(data)} bytes; the limit is {max_bytes} (FRAMEWIRE_MAX_FRAME_BYTES)",
        )  # fmt: skip
    if not data:
        raise ApiError(422, "undecodable_image", f"{what} is empty")
    encoding = sniff_encoding(data)
    if encoding is None:
        raise ApiError(
            422, "undecodable_image", f"{what} is not a JPEG, PNG or WebP image"
        )
    try:
        width, height = image_size(data, encoding)
        check_complete(data, encoding)
    except ImageInfoError as exc:
        raise ApiError(422, "undecodable_image", f"{what}: {exc}") from None
    if width == 0 or height == 0:
        raise ApiError(422, "undecodable_image", f"{what} is {width}x{height} pixels")
    if width * height > max_pixels:
        raise ApiError(
            413, "image_too_large",
            f"{what} is {width}x{height} pixels; the limit is {max_pixels} "
            "(FRAMEWIRE_MAX_FRAME_PIXELS)",
        )  # fmt: skip
    return Upload(data, encoding, width, height)
