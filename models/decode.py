"""Encoded image bytes -> BGR pixels at the scale a model's input needs.

The worker (workers/decode.py) and everything that prepares images offline (evaluation,
training, reference statistics: mlops/) decode the same way, so a model is trained,
validated and monitored on the pixels it is served: a JPEG is decoded at 1/2, 1/4 or 1/8
scale (libjpeg's reduced decode, most of the inverse DCT skipped) when the model's input
is that much smaller. That is not the same picture as a full decode resized: its
sharpness differs measurably, which a drift monitor would report as drift. A worker that
decodes on the GPU (workers/device_decode.py) comes within ~0.3-0.5 grey levels of these
pixels on average, not exactly to them.
"""

from __future__ import annotations

import cv2
import numpy as np

from foundation.imageinfo import ImageInfoError, image_size
from models.spec import InputSpec

_REDUCED_JPEG = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 2: cv2.IMREAD_REDUCED_COLOR_2, 1: cv2.IMREAD_COLOR}  # fmt: skip

# A scaled decode may come out up to this factor smaller than the model's input in a
# dimension, for `prepare` to enlarge: 640x480 at 1/8 is 80x60 for a 64x64 input. Measured
# on the demo: 1/8 instead of 1/4 costs 0.9 instead of 1.3 ms of CPU per 61 KB frame,
# moves the prepared pixels by 1.1 grey levels on average from a full decode (1/4: 0.4),
# and leaves the demo model's accuracy unchanged (98.9% on 1,500 frames either way).
_MAX_UPSCALE = 1.1


def decode_for(data: bytes, spec: InputSpec | None = None) -> np.ndarray | None:
    """BGR uint8 pixels of an encoded image (a JPEG decoded at the scale spec needs), or
    None when OpenCV cannot read it."""
    buffer = np.frombuffer(data, np.uint8)
    flag = cv2.IMREAD_COLOR
    if spec is not None and data[:3] == b"\xff\xd8\xff":
        try:
            width, height = image_size(data, "jpeg")
            flag = reduced_jpeg_flag(width, height, spec)
        except ImageInfoError:
            pass  # no readable size: a full decode says whether OpenCV can read it
    try:
        return cv2.imdecode(buffer, flag)
    except cv2.error:
        return None


def reduced_jpeg_flag(width: int, height: int, spec: InputSpec) -> int:
    """The imdecode flag of the most reduced JPEG decode that `prepare` shrinks, or
    enlarges by no more than _MAX_UPSCALE."""
    return _REDUCED_JPEG[reduced_jpeg_factor(width, height, spec)]


def reduced_jpeg_factor(width: int, height: int, spec: InputSpec) -> int:
    """8, 4, 2 or 1: the scale divisor of that decode. A decode on the GPU (full size)
    averages by the same factor first, to see the pixels the CPU path sees
    (workers/device_decode.py)."""
    if spec.resize == "letterbox":
        scale = min(spec.width / width, spec.height / height)
        target_w, target_h = round(width * scale), round(height * scale)
    else:
        target_w, target_h = spec.width, spec.height
    for factor in (8, 4, 2):
        # libjpeg rounds a scaled size up.
        scaled_w, scaled_h = -(-width // factor), -(-height // factor)
        if scaled_w * _MAX_UPSCALE >= target_w and scaled_h * _MAX_UPSCALE >= target_h:
            return factor
    return 1
