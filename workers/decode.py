"""The decode stage: record -> validated Frame -> image prepared for the model.

Runs in a thread pool: OpenCV releases the GIL while decoding and resizing, so N threads
decode N frames at once. A record that breaks the contract or the limits is marked failed
with the reason (it goes to the dead-letter topic); nothing here raises.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from schemas import Frame, SchemaError
from workers.imageinfo import ImageInfoError, check_complete, image_size
from workers.models.spec import InputSpec, prepare
from workers.work import WorkItem

# Decoded straight to BGR, the order OpenCV and `prepare` work in.
_RAW_CHANNELS = {"raw-bgr8": None, "raw-rgb8": cv2.COLOR_RGB2BGR}


class DecodeError(ValueError):
    pass


class FrameDecoder:
    def __init__(self, max_bytes: int, max_pixels: int) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def decode(self, item: WorkItem, spec: InputSpec) -> WorkItem:
        """Fill item.frame and item.image, or mark the item failed with the reason."""
        item.decode_started = time.time()
        record = item.record
        try:
            item.frame = Frame.from_record(
                record.key, record.value, record.headers, max_bytes=self.max_bytes
            )
            item.image = prepare(self.to_bgr(item.frame), spec)
            item.input_spec = spec
        except SchemaError as exc:
            item.fail("schema", str(exc))
        except (DecodeError, ImageInfoError, cv2.error) as exc:
            item.fail("decode", str(exc).strip().splitlines()[0][:200])
        item.decoded_at = time.time()
        return item

    def to_bgr(self, frame: Frame) -> np.ndarray:
        if frame.encoding in _RAW_CHANNELS:
            width, height = frame.width or 0, frame.height or 0
            self._check_pixels(width, height)
            image = np.frombuffer(frame.data, np.uint8).reshape(height, width, 3)
            conversion = _RAW_CHANNELS[frame.encoding]
            return cv2.cvtColor(image, conversion) if conversion is not None else image
        self._check_pixels(*image_size(frame.data, frame.encoding))
        check_complete(frame.data, frame.encoding)
        image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise DecodeError(f"cannot decode {frame.encoding} image")
        return image

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise DecodeError(
                f"image of {width}x{height} pixels exceeds the limit of {self.max_pixels}"
            )
        if width == 0 or height == 0:
            raise DecodeError(f"image of {width}x{height} pixels is empty")
