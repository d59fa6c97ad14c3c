"""The decode stage: record -> validated Frame -> image prepared for the model.

Runs in a thread pool: OpenCV releases the GIL while decoding and resizing, so N threads
decode N frames at once. A record that breaks the contract or the limits is marked failed
with the reason (it goes to the dead-letter topic); nothing here raises. When JPEGs are
decoded on the GPU (workers/device_decode.py), a JPEG is only checked here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from foundation.imageinfo import ImageInfoError, check_complete, image_size, jpeg_has_exif
from models.decode import reduced_jpeg_flag
from models.spec import InputSpec, prepare
from schemas import Frame, SchemaError
from workers import faults
from workers.work import WorkItem

# Decoded straight to BGR, the order OpenCV and `prepare` work in.
_RAW_CHANNELS = {"raw-bgr8": None, "raw-rgb8": cv2.COLOR_RGB2BGR}

_Step = Callable[[WorkItem, InputSpec], WorkItem]


class DecodeError(ValueError):
    pass


class FrameDecoder:
    def __init__(self, max_bytes: int, max_pixels: int) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def parse(self, item: WorkItem) -> WorkItem:
        """Fill item.frame from its record, or mark the item failed (stage `schema`)."""
        record = item.record
        try:
            item.frame = Frame.from_record(
                record.key, record.value, record.headers, max_bytes=self.max_bytes
            )
        except SchemaError as exc:
            item.fail("schema", str(exc))
        except Exception as exc:  # a hostile record must not stop the worker either
            item.fail("decode", f"{type(exc).__name__}: {exc}"[:200])
        return item

    def decode(self, item: WorkItem, spec: InputSpec) -> WorkItem:
        """Fill item.frame and item.image, or mark the item failed with the reason."""
        return self._decode(item, spec, self.decode_image)

    def decode_or_defer(self, item: WorkItem, spec: InputSpec) -> WorkItem:
        """As decode, but a JPEG is only checked (header, pixel limit, completeness) and
        left without an image, for the device thread to decode on the GPU with the rest of
        its batch (workers/device_decode.py). One with EXIF is decoded here: its orientation
        tag may turn the picture, which OpenCV applies and nvJPEG does not."""
        return self._decode(item, spec, self._check_or_decode)

    def decode_image(self, item: WorkItem, spec: InputSpec) -> WorkItem:
        """Fill item.image from the parsed item.frame, or mark the item failed (`decode`)."""
        assert item.frame is not None
        try:
            item.image = prepare(self.to_bgr(item.frame, spec), spec)
            item.input_spec = spec
        except Exception as exc:  # whatever a hostile image triggers, the worker goes on
            item.fail("decode", _failure(exc))
        return item

    def _decode(self, item: WorkItem, spec: InputSpec, step: _Step) -> WorkItem:
        item.decode_started = time.time()
        if self.parse(item).ok:
            assert item.frame is not None
            faults.crash_in_decode(item.frame.frame_id)
            step(item, spec)
        item.decoded_at = time.time()
        return item

    def _check_or_decode(self, item: WorkItem, spec: InputSpec) -> WorkItem:
        frame = item.frame
        assert frame is not None
        if frame.encoding != "jpeg":
            return self.decode_image(item, spec)
        try:
            self._checked_size(frame)
            exif = jpeg_has_exif(frame.data)
        except Exception as exc:  # whatever a hostile header triggers, the worker goes on
            item.fail("decode", _failure(exc))
            return item
        if exif:
            return self.decode_image(item, spec)
        item.input_spec = spec  # and no image: device_decode.awaits_device(item)
        return item

    def to_bgr(self, frame: Frame, spec: InputSpec | None = None) -> np.ndarray:
        """The frame's pixels in BGR. Given the model's spec, a JPEG is decoded at the
        smallest of 1/2, 1/4, 1/8 scale that is still (nearly) no smaller than what
        `prepare` will resize it to: libjpeg then skips most of the inverse DCT, and the
        resize has far fewer pixels to average (3.7x less CPU for 640x480 -> 64x64 at 1/8,
        2x for 640x480 -> 224x224 at 1/2)."""
        if frame.encoding in _RAW_CHANNELS:
            width, height = frame.width or 0, frame.height or 0
            self._check_pixels(width, height)
            image = np.frombuffer(frame.data, np.uint8).reshape(height, width, 3)
            conversion = _RAW_CHANNELS[frame.encoding]
            return cv2.cvtColor(image, conversion) if conversion is not None else image
        width, height = self._checked_size(frame)
        flag = cv2.IMREAD_COLOR
        if frame.encoding == "jpeg" and spec is not None:
            flag = reduced_jpeg_flag(width, height, spec)
        image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), flag)
        if image is None:
            raise DecodeError(f"cannot decode {frame.encoding} image")
        return image

    def _checked_size(self, frame: Frame) -> tuple[int, int]:
        """An encoded frame's size from its header, once it is within the pixel limit and
        complete: what is checked before decoding, on the CPU or (JPEG) on the GPU."""
        width, height = image_size(frame.data, frame.encoding)
        self._check_pixels(width, height)
        check_complete(frame.data, frame.encoding)
        return width, height

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise DecodeError(
                f"image of {width}x{height} pixels exceeds the limit of {self.max_pixels}"
            )
        if width == 0 or height == 0:
            raise DecodeError(f"image of {width}x{height} pixels is empty")


def _failure(exc: Exception) -> str:
    """Why a frame failed to decode: an expected error's first line, else its type too."""
    if isinstance(exc, (DecodeError, ImageInfoError, cv2.error)):
        return str(exc).strip().splitlines()[0][:200]
    return f"{type(exc).__name__}: {exc}"[:200]
