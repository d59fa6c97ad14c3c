"""The decode stage and the image header checks, on real encoded images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from foundation.imageinfo import ImageInfoError, check_complete, image_size
from models.spec import InputSpec
from schemas import Frame
from workers.decode import FrameDecoder
from workers.work import WorkItem

SPEC = InputSpec(width=64, height=48)


class Record:
    def __init__(self, frame: Frame) -> None:
        self.key, self.value, self.headers = frame.to_record()
        self.topic, self.partition, self.offset = "frames", 0, 0


def encoded(extension: str, width: int = 80, height: int = 60, **params: int) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    flags = [v for kv in params.items() for v in (getattr(cv2, kv[0]), kv[1])]
    return cv2.imencode(extension, image, flags)[1].tobytes()


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("jpeg", encoded(".jpg")),
        ("png", encoded(".png")),
        ("webp", encoded(".webp", IMWRITE_WEBP_QUALITY=80)),
        ("webp", encoded(".webp", IMWRITE_WEBP_QUALITY=101)),  # lossless VP8L
    ],
)
def test_image_size_from_headers(encoding, data):
    assert image_size(data, encoding) == (80, 60)
    check_complete(data, encoding)


@pytest.mark.parametrize(
    ("encoding", "data", "reason"),
    [
        ("jpeg", b"GIF89a" + b"\0" * 40, "not a jpeg"),
        ("png", b"\x89PNG" + b"\0" * 40, "not a png"),
        ("webp", b"RIFF\0\0\0\0WAVE" + b"\0" * 20, "not a webp"),
        ("jpeg", b"\xff\xd8\xff", "no frame header"),
        ("jpeg", b"\xff\xd8\xff\xc0\x00\x11", "not a valid jpeg header"),
    ],
)
def test_bad_headers_are_named(encoding, data, reason):
    with pytest.raises(ImageInfoError, match=reason):
        image_size(data, encoding)


def test_truncated_files_are_caught_before_decoding():
    jpeg, png = encoded(".jpg"), encoded(".png")
    with pytest.raises(ImageInfoError, match="truncated jpeg"):
        check_complete(jpeg[:-100], "jpeg")
    with pytest.raises(ImageInfoError, match="truncated png"):
        check_complete(png[:-20], "png")


def decode(frame: Frame, max_bytes: int = 10**7, max_pixels: int = 10**7) -> WorkItem:
    item = WorkItem(Record(frame), generation=1, polled_at=0.0)
    return FrameDecoder(max_bytes, max_pixels).decode(item, SPEC)


def test_jpeg_frame_is_prepared_for_the_model():
    item = decode(Frame("cam", 1, encoded(".jpg")))
    assert item.ok, item.error
    assert item.image.shape == (48, 64, 3) and item.image.dtype == np.uint8
    assert item.input_spec == SPEC
    assert item.decoded_at >= item.decode_started > 0


def test_raw_rgb_frame_is_converted_from_rgb():
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[..., 0] = 255  # pure red in RGB order
    item = decode(Frame("cam", 1, pixels.tobytes(), "raw-rgb8", width=64, height=48))
    assert item.ok, item.error
    # The model takes RGB: red must still be in channel 0 after the BGR round trip.
    assert item.image[..., 0].min() == 255 and item.image[..., 2].max() == 0


@pytest.mark.parametrize(
    ("frame", "stage", "reason"),
    [
        (Frame("cam", 1, b"\xff\xd8" + b"\x01" * 100), "decode", "corrupt jpeg"),
        (Frame("cam", 1, encoded(".jpg")[:300]), "decode", "truncated jpeg"),
        (Frame("cam", 1, encoded(".png", 2000, 1000), "png"), "decode", "exceeds the limit"),
        (Frame("cam", 1, b"x" * 2000), "schema", "2000"),
    ],
)
def test_bad_frames_fail_with_a_reason(frame, stage, reason):
    item = decode(frame, max_bytes=1500 if len(frame.data) == 2000 else 10**7,
                  max_pixels=1_000_000)  # fmt: skip
    assert not item.ok
    assert item.error_stage == stage
    assert reason in item.error
    assert item.image is None


@pytest.mark.parametrize(
    ("size", "spec", "scale"),
    [
        ((640, 480), InputSpec(64, 64), 8),  # 80x60: enlarged by under 10% in height
        ((640, 480), InputSpec(100, 100), 4),  # 80x60 would need 1.67x
        ((640, 480), InputSpec(224, 224), 2),  # 320x240
        ((1920, 1080), InputSpec(224, 224), 4),  # 480x270
        ((640, 480), InputSpec(640, 480), 1),  # no smaller decode is big enough
        ((640, 480), InputSpec(224, 224, resize="letterbox"), 2),  # target 224x168
    ],
)
def test_jpeg_is_decoded_at_the_smallest_scale_that_is_nearly_big_enough(size, spec, scale):
    width, height = size
    rng = np.random.default_rng(0)
    ok, data = cv2.imencode(".jpg", rng.integers(0, 256, (height, width, 3), np.uint8))
    assert ok
    image = FrameDecoder(10**8, 10**9).to_bgr(Frame("s", 0, data.tobytes()), spec)
    assert image.shape[:2] == (-(-height // scale), -(-width // scale))
