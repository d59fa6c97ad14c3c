"""JPEG decode on the model's device, run here on the CPU with OpenCV standing in for nvJPEG.

nvJPEG needs a GPU and torchvision, which CPU machines lack; everything around the one
decode call (where decode runs, the resize on the device, the fallbacks, the engine's
resident batches, the device stage) is the code the GPU runs, checked against the CPU
path's pixels.
"""

from __future__ import annotations

import enum
import queue
import struct
import sys
import threading
import types

import cv2
import numpy as np
import pytest
import torch

from foundation.settings import Settings, SettingsError
from framewire.bench.ceilings import device_decode_fps, device_pixel_difference
from framewire.bench.frames import FramePool
from models.architectures import SmallCNN
from models.loader import LoadedModel
from models.spec import InputSpec, ModelCard
from producers.encode import encode_image
from producers.synthetic import CLASSES, render_scene
from schemas import Frame
from workers import device_decode
from workers.batcher import DynamicBatcher
from workers.decode import FrameDecoder
from workers.device import DeviceStage, FinishedBatch, Rejected
from workers.device_decode import (
    DeviceJpegDecoder,
    awaits_device,
    choose_decode,
    select_decode,
)
from workers.engine import InferenceEngine
from workers.work import WorkItem

CPU = torch.device("cpu")
DECODER = FrameDecoder(10**7, 10**7)
# The device path's pixels within this many grey levels of the CPU path's, on average:
# measured 0.63 (64x64), 0.81 (112x112), 0.65 (letterbox 96x96) on these 320x240 frames;
# scripts/decode-pixels.py measures 640x480 ones.
MEAN_ABS_BOUND = 1.0


class Record:
    def __init__(self, frame: Frame) -> None:
        self.key, self.value, self.headers = frame.to_record()
        self.topic, self.partition, self.offset = "frames", 0, 0


def opencv_batch(data: list[bytes]) -> list[torch.Tensor]:
    """The stand-in for nvJPEG: full-size decodes, 3 x H x W RGB; raises on a bad frame."""
    images = []
    for jpeg in data:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError("cannot decode")
        images.append(torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1))
    return images


def scenes(count: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [render_scene(rng, CLASSES[i % len(CLASSES)], 1.0, width, height) for i in range(count)]


def jpeg_item(image: np.ndarray, spec: InputSpec) -> WorkItem:
    return DECODER.decode_or_defer(item_of(Frame("cam", 0, encode_image(image)[0])), spec)


def without_scan(jpeg: bytes) -> bytes:
    """Passes every header check, has no image data: neither nvJPEG nor OpenCV decodes it."""
    return jpeg[: jpeg.index(b"\xff\xda")] + b"\xff\xd9"


def item_of(frame: Frame) -> WorkItem:
    return WorkItem(Record(frame), generation=1, polled_at=0.0)


def gpu(decode_batch=opencv_batch) -> DeviceJpegDecoder:
    return DeviceJpegDecoder(decode_batch, DECODER, CPU)


# Where decode runs ------------------------------------------------------------------------


def test_the_setting_takes_auto_cpu_or_device():
    assert Settings.load(environ={}).decode_on == "auto"
    assert Settings.load(environ={"FRAMEWIRE_DECODE_ON": " Device"}).decode_on == "device"
    with pytest.raises(SettingsError, match="FRAMEWIRE_DECODE_ON='gpu': must be one of auto"):
        Settings.load(environ={"FRAMEWIRE_DECODE_ON": "gpu"})


@pytest.mark.parametrize("decode_on", ["auto", "cpu", "device"])
@pytest.mark.parametrize("device_type", ["cuda", "cpu"])
@pytest.mark.parametrize("available", [True, False])
def test_decode_runs_on_the_device_only_with_cuda_and_nvjpeg(decode_on, device_type, available):
    asked = []

    def missing() -> str | None:
        asked.append(True)
        return None if available else "no torchvision"

    where, reason = choose_decode(decode_on, device_type, missing)
    on_device = decode_on != "cpu" and device_type == "cuda" and available
    assert where == ("device" if on_device else "cpu")
    assert reason
    if asked and not available:
        assert "no torchvision" in reason
    # Trying the decoder (torchvision, a CUDA decode) only when it decides anything.
    assert bool(asked) == (decode_on != "cpu" and device_type == "cuda")


def test_device_asked_for_but_missing_warns_once_and_decodes_on_the_cpu(monkeypatch):
    warnings = []
    monkeypatch.setattr(device_decode.log, "warning", lambda msg, **kw: warnings.append(kw))
    monkeypatch.setitem(sys.modules, "torchvision", None)  # an ImportError, on any machine
    plan = select_decode("device", torch.device("cuda"))
    assert (plan.where, plan.decoder) == ("cpu", None)
    assert "torchvision" in plan.reason
    assert [w["reason"] for w in warnings] == [plan.reason]
    assert select_decode("auto", torch.device("cuda")).where == "cpu"
    assert select_decode("device", CPU).reason == "the model runs on cpu, not CUDA"
    assert len(warnings) == 2  # auto never warns


def fake_torchvision(monkeypatch, decode_jpeg) -> None:
    """torchvision.io with this decode_jpeg, as a CUDA machine would import it."""
    io = types.ModuleType("torchvision.io")
    io.ImageReadMode = enum.Enum("ImageReadMode", "UNCHANGED GRAY GRAY_ALPHA RGB RGB_ALPHA")
    io.decode_jpeg = decode_jpeg
    package = types.ModuleType("torchvision")
    package.io = io
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.io", io)


def test_nvjpeg_is_called_with_a_list_of_encoded_tensors_and_tried_once(monkeypatch):
    calls = []

    def decode_jpeg(encoded, mode, device):  # torchvision >= 0.19's, called by keyword
        calls.append((len(encoded), mode.name, device))
        assert all(t.dtype == torch.uint8 and t.ndim == 1 and t.device == CPU for t in encoded)
        return opencv_batch([t.numpy().tobytes() for t in encoded])

    fake_torchvision(monkeypatch, decode_jpeg)
    plan = select_decode("auto", torch.device("cuda"))
    assert plan.where == "device" and plan.decoder is not None
    assert calls == [(2, "RGB", torch.device("cuda"))]  # the trial decode
    jpeg = encode_image(scenes(1)[0])[0]
    (image,) = plan.decoder([jpeg])
    assert tuple(image.shape) == (3, 240, 320)


def test_a_torchvision_that_cannot_decode_a_list_on_a_device_is_not_used(monkeypatch):
    def decode_jpeg(encoded, mode=None):  # before 0.19: one tensor, no device
        raise TypeError("decode_jpeg() got an unexpected keyword argument 'device'")

    fake_torchvision(monkeypatch, decode_jpeg)
    plan = select_decode("auto", torch.device("cuda"))
    assert plan.where == "cpu" and "unexpected keyword argument 'device'" in plan.reason


# The decode threads ------------------------------------------------------------------------


def test_a_jpeg_is_checked_and_left_for_the_device_and_other_frames_are_decoded():
    spec = InputSpec(64, 48)
    jpeg = jpeg_item(scenes(1)[0], spec)
    assert jpeg.ok and jpeg.image is None and awaits_device(jpeg)
    assert jpeg.input_spec == spec and jpeg.decoded_at >= jpeg.decode_started > 0
    pixels = np.zeros((48, 64, 3), np.uint8)
    for frame in (Frame("cam", 1, pixels.tobytes(), "raw-bgr8", width=64, height=48),
                  Frame("cam", 1, encode_image(pixels, "png")[0], "png")):  # fmt: skip
        item = DECODER.decode_or_defer(item_of(frame), spec)
        assert item.ok and item.image is not None and not awaits_device(item)


def with_exif(jpeg: bytes) -> bytes:
    """The JPEG with an EXIF orientation tag (6: turned 90 degrees), which OpenCV applies."""
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHHI", 0x0112, 3, 1, 6, 0, 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xd8" + b"\x01" * 100, "corrupt jpeg"),
        (encode_image(np.zeros((60, 80, 3), np.uint8))[0][:300], "truncated jpeg"),
        (encode_image(np.zeros((1000, 1200, 3), np.uint8))[0], "exceeds the limit"),
    ],
)
def test_a_bad_jpeg_fails_on_the_decode_threads_as_before(data, reason):
    decoder = FrameDecoder(10**7, 1_000_000)
    item = decoder.decode_or_defer(item_of(Frame("cam", 1, data)), InputSpec(64, 48))
    assert not item.ok and item.error_stage == "decode" and reason in item.error
    before = decoder.decode(item_of(Frame("cam", 1, data)), InputSpec(64, 48))
    assert item.error == before.error


def test_a_jpeg_with_exif_is_decoded_on_the_cpu_which_applies_its_orientation():
    data = with_exif(encode_image(np.zeros((40, 80, 3), np.uint8))[0])
    item = DECODER.decode_or_defer(item_of(Frame("cam", 1, data)), InputSpec(32, 32))
    assert item.ok and item.image is not None and not awaits_device(item)


# The device-side preparation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        InputSpec(64, 64),  # 320x240 averaged by 4 to 80x60, then enlarged in height
        InputSpec(64, 64, channel_order="bgr"),
        InputSpec(112, 112),  # averaged by 2, then shrunk
        InputSpec(96, 96, resize="letterbox"),
        InputSpec(96, 96, channel_order="bgr", resize="letterbox"),
    ],
)
def test_the_device_prepares_pixels_like_the_cpu_path(spec):
    images = scenes(4)
    batch = gpu().prepare([jpeg_item(image, spec) for image in images], spec)
    assert batch is not None and batch.dtype == torch.uint8
    assert tuple(batch.shape) == (4, spec.height, spec.width, 3)
    cpu = np.stack([DECODER.decode(item_of(Frame("cam", 0, encode_image(image)[0])), spec).image
                    for image in images])  # fmt: skip
    difference = np.abs(batch.numpy().astype(np.int16) - cpu).mean()
    assert difference < MEAN_ABS_BOUND, difference
    if spec.resize == "letterbox":  # the bars: 320x240 in 96x96 is 96x72, 12 rows each side
        assert (batch[:, :12] == 114).all() and (batch[:, -12:] == 114).all()


def test_frames_of_different_sizes_share_a_batch():
    spec = InputSpec(64, 64)
    items = [jpeg_item(scenes(1, 320, 240)[0], spec), jpeg_item(scenes(1, 200, 300)[0], spec)]
    batch = gpu().prepare(items, spec)
    assert batch is not None and tuple(batch.shape) == (2, 64, 64, 3)


def test_a_frame_the_device_cannot_decode_fails_alone():
    spec = InputSpec(64, 64)
    images = scenes(3)
    items = [jpeg_item(image, spec) for image in images]
    corrupt = without_scan(encode_image(images[1])[0])
    items[1] = DECODER.decode_or_defer(item_of(Frame("cam", 1, corrupt)), spec)
    assert awaits_device(items[1])
    calls = []

    def counting(data: list[bytes]) -> list[torch.Tensor]:
        calls.append(len(data))
        return opencv_batch(data)

    batch = gpu(counting).prepare(items, spec)
    assert calls == [3, 1, 1, 1]  # the batch, then one at a time to find the bad one
    assert not items[1].ok and items[1].error_stage == "decode"
    assert "cannot decode jpeg image" in items[1].error
    assert items[0].ok and items[2].ok
    assert batch is not None and len(batch) == 2


def test_a_frame_only_the_cpu_can_decode_is_decoded_there():
    spec = InputSpec(64, 64)
    images = scenes(2)
    items = [jpeg_item(image, spec) for image in images]
    refused = items[1].frame.data

    def picky(data: list[bytes]) -> list[torch.Tensor]:  # as nvJPEG with, say, CMYK
        if refused in data:
            raise RuntimeError("nvjpeg: unsupported")
        return opencv_batch(data)

    batch = gpu(picky).prepare(items, spec)
    assert all(item.ok for item in items) and batch is not None and len(batch) == 2
    assert items[1].image is not None  # the CPU path's pixels, as they are
    assert torch.equal(batch[1], torch.from_numpy(items[1].image))


def test_raw_frames_bypass_the_device_decoder():
    spec = InputSpec(64, 48)
    raw = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    raw_item = DECODER.decode_or_defer(
        item_of(Frame("cam", 1, raw.tobytes(), "raw-bgr8", width=64, height=48)), spec
    )
    sent = []

    def recording(data: list[bytes]) -> list[torch.Tensor]:
        sent.append(data)
        return opencv_batch(data)

    assert gpu(recording).prepare([raw_item], spec) is None  # nothing for the device: stack
    assert sent == []
    jpeg = jpeg_item(scenes(1)[0], spec)
    batch = gpu(recording).prepare([raw_item, jpeg], spec)
    assert sent == [[jpeg.frame.data]]
    assert batch is not None and torch.equal(batch[0], torch.from_numpy(raw_item.image))


# The engine and the device stage ---------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    torch.manual_seed(0)
    card = ModelCard("t", "1", "small-cnn", "classification", list(CLASSES), InputSpec(64, 64))
    return InferenceEngine(LoadedModel(card, SmallCNN(len(CLASSES)).eval()), "cpu", max_batch=4,
                           warm_up=False)  # fmt: skip


def test_a_batch_already_on_the_device_runs_as_an_uploaded_one(engine):
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), np.uint8)
    uploaded = engine.submit(images).result()
    resident = engine.submit_resident(torch.from_numpy(images)).result()
    assert [p[0]["label"] for p in resident] == [p[0]["label"] for p in uploaded]
    for a, b in zip(resident, uploaded, strict=True):
        assert a[0]["score"] == pytest.approx(b[0]["score"], abs=1e-5)
    with pytest.raises(ValueError, match="N x 64 x 64 x 3"):
        engine.submit_resident(torch.zeros((1, 32, 32, 3), dtype=torch.uint8))


def test_the_device_stage_decodes_a_batch_on_the_device_and_rejects_the_bad_frame(engine):
    spec = engine.card.input
    items = [jpeg_item(image, spec) for image in scenes(3)]
    corrupt = without_scan(items[1].frame.data)
    items[1] = DECODER.decode_or_defer(item_of(Frame("cam", 1, corrupt)), spec)
    assert awaits_device(items[1])  # it fails on the device thread, not before
    finished: queue.Queue = queue.Queue()
    stage = DeviceStage(DynamicBatcher(queue.Queue(), 4, 0), lambda: engine, finished,
                        prepare_again=lambda item, e: item, on_model_loaded=lambda e: None,
                        observe_every=1)  # fmt: skip
    stage.engine = engine
    stage.device_decode = gpu()
    launched = stage._launch(items)
    assert launched is not None
    stage._collect(launched)
    rejected, done = finished.get_nowait(), finished.get_nowait()
    assert isinstance(rejected, Rejected) and rejected.items == [items[1]]
    assert rejected.items[0].error_stage == "decode"
    assert isinstance(done, FinishedBatch) and done.items == [items[0], items[2]]
    assert done.observed is not None and done.observed.images.shape == (2, 64, 64, 3)
    cpu = np.stack([DECODER.decode(item_of(item.frame), spec).image for item in done.items])
    expected = engine.submit(cpu).result()
    assert [p[0]["label"] for p in done.predictions] == [p[0]["label"] for p in expected]


def test_the_bench_measures_the_device_decode_ceiling_and_its_pixel_difference(engine):
    pool = FramePool.render(160, 120, size=4)
    assert device_decode_fps(gpu(), engine, pool, 4, min_frames=4, min_seconds=0.01) > 0
    assert 0 < device_pixel_difference(gpu(), engine, pool) < MEAN_ABS_BOUND


def test_a_gpu_decode_that_hangs_is_watched_by_the_inference_deadline(engine):
    """The deadline watch sees a batch from the start of its decode, not from its launch:
    a hung nvJPEG call names its frames and ends the worker like a hung model."""
    spec = engine.card.input
    items = [jpeg_item(image, spec) for image in scenes(2)]
    entered, release = threading.Event(), threading.Event()

    def hanging(data: list[bytes]) -> list[torch.Tensor]:
        entered.set()
        release.wait(10)
        return opencv_batch(data)

    stage = DeviceStage(DynamicBatcher(queue.Queue(), 4, 0), lambda: engine, queue.Queue(),
                        prepare_again=lambda item, e: item, on_model_loaded=lambda e: None)
    stage.engine = engine
    stage.device_decode = gpu(hanging)
    launching = threading.Thread(target=lambda: stage._collect(stage._launch(items)))
    launching.start()
    assert entered.wait(10)
    running = stage.running_since()
    release.set()
    launching.join(10)
    assert running is not None and running[1] == items
    assert stage.running_since() is None
