"""JPEG frames decoded on the model's GPU, a batch at a time (nvJPEG), and prepared there.

With the model on CUDA and FRAMEWIRE_DECODE_ON auto or device, the decode threads only
check a JPEG frame (FrameDecoder.decode_or_defer: schema, limits, completeness, as ever)
and the device thread decodes the JPEGs of a batch in one nvJPEG call, sizes and orders
them on the GPU as `prepare` does on the CPU, and hands the engine a batch that is
already there (InferenceEngine.submit_resident): no inverse DCT or resize on the CPU, and
the encoded bytes cross the bus instead of the pixels. Raw and PNG frames, JPEGs with
EXIF, and any frame nvJPEG refuses are decoded on the CPU as before and join the batch.

The CPU path decodes a JPEG at reduced scale (models/decode.py), which is not the same
picture as a full decode resized; averaging the full decode by the same factor first
brings the GPU's pixels within ~0.3-0.5 grey levels of the CPU's on average
(scripts/decode-pixels.py, docs/ARCHITECTURE.md). A model sees slightly different pixels
either way, which the drift monitor may notice when a fleet switches.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from foundation.log import get_logger
from models.decode import reduced_jpeg_factor
from models.spec import LETTERBOX_FILL, InputSpec, letterbox_placement
from workers.decode import FrameDecoder
from workers.host_batch import stack_images
from workers.work import WorkItem

log = get_logger(__name__)

# list of encoded JPEGs -> 3 x H x W uint8 RGB tensors on the device, one per JPEG; raises
# when any of them cannot be decoded (torchvision returns no partial results).
BatchDecoder = Callable[[list[bytes]], list[torch.Tensor]]

# Images resized together at most: each is a float copy of a full decode (128 frames of
# 1920x1080 would take 3.2 GB at once).
_CHUNK = 32
_TINY_JPEG = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()


class DecoderUnavailable(RuntimeError):
    """The GPU cannot decode JPEGs here; str() says why."""


@dataclass(frozen=True)
class DecodePlan:
    where: str  # "device" or "cpu"
    reason: str
    decoder: BatchDecoder | None = None  # set when where == "device"


def choose_decode(
    decode_on: str, device_type: str, decoder_missing: Callable[[], str | None]
) -> tuple[str, str]:
    """("device" or "cpu", why), from FRAMEWIRE_DECODE_ON, the engine's device type and why
    the GPU decoder is missing (None: it is available), asked only when it matters: trying
    it imports torchvision and runs a decode on the GPU."""
    if decode_on == "cpu":
        return "cpu", "FRAMEWIRE_DECODE_ON=cpu"
    if device_type != "cuda":
        return "cpu", f"the model runs on {device_type}, not CUDA"
    missing = decoder_missing()
    if missing is not None:
        return "cpu", f"nvJPEG is not available: {missing}"
    if decode_on == "device":
        return "device", "FRAMEWIRE_DECODE_ON=device: nvJPEG on the model's GPU"
    return "device", "the model runs on CUDA and nvJPEG is available"


def select_decode(decode_on: str, device: torch.device) -> DecodePlan:
    """Where this worker decodes JPEGs; warns when `device` was asked for and cannot be
    had (the worker still starts, decoding on the CPU). Call it in the thread that runs
    the model: trying the decoder initialises CUDA."""
    found: list[BatchDecoder] = []

    def missing() -> str | None:
        try:
            found.append(nvjpeg_decoder(device))
        except DecoderUnavailable as exc:
            return str(exc)
        return None

    where, reason = choose_decode(decode_on, device.type, missing)
    if decode_on == "device" and where == "cpu":
        log.warning("JPEG frames are decoded on the CPU, not the device", reason=reason)
    return DecodePlan(where, reason, found[0] if where == "device" else None)


def nvjpeg_decoder(device: torch.device) -> BatchDecoder:
    """torchvision's batched nvJPEG decode on `device`, tried once on two tiny JPEGs;
    raises DecoderUnavailable saying why it cannot be used."""
    try:  # not a dependency: CUDA machines have it, CPU ones need not
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise DecoderUnavailable(f"torchvision: {type(exc).__name__}: {exc}") from None

    def decode(data: list[bytes]) -> list[torch.Tensor]:
        # A writable copy: torch warns about tensors over read-only memory.
        encoded = [torch.frombuffer(bytearray(jpeg), dtype=torch.uint8) for jpeg in data]
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)

    # A list: torchvision before 0.19 decodes one JPEG per call (or none on a device).
    try:
        decode([_TINY_JPEG, _TINY_JPEG])
    except Exception as exc:
        raise DecoderUnavailable(f"decode_jpeg on {device}: {type(exc).__name__}: {exc}") from None
    return decode


def awaits_device(item: WorkItem) -> bool:
    """Checked by a decode thread and left for the GPU to decode (decode_or_defer)."""
    return item.ok and item.frame is not None and item.image is None


class DeviceJpegDecoder:
    """Prepares a batch on the device: the waiting JPEGs decoded there, the rest uploaded."""

    def __init__(self, decode_batch: BatchDecoder, cpu: FrameDecoder, device: torch.device) -> None:
        self.decode_batch = decode_batch
        self.cpu = cpu  # for the frames the GPU cannot decode
        self.device = device

    def prepare(self, items: list[WorkItem], spec: InputSpec) -> torch.Tensor | None:
        """The images of the items still ok afterwards, in order, as one N x H x W x 3 uint8
        batch on the device; None when no item waits for the GPU (the caller stacks
        item.image as on the CPU path). A JPEG the GPU cannot decode is decoded on the CPU,
        and failed (stage `decode`, to the DLQ) when the CPU cannot either."""
        waiting = [item for item in items if awaits_device(item)]
        if not waiting:
            return None
        with torch.inference_mode():
            decoded = self._decode(waiting, spec)
            return self._assemble([item for item in items if item.ok], decoded, spec)

    def _decode(self, waiting: list[WorkItem], spec: InputSpec) -> dict[WorkItem, torch.Tensor]:
        """Each item's decoded RGB image; one the GPU refuses is decoded on the CPU instead
        (item.image) or failed, and is not in the result."""
        try:
            images = self.decode_batch([_data(item) for item in waiting])
            return dict(zip(waiting, images, strict=True))
        except Exception:
            pass  # one bad frame fails the whole call: find it one frame at a time
        decoded = {}
        for item in waiting:
            try:
                decoded[item] = self.decode_batch([_data(item)])[0]
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:200]
                log.debug("GPU decode refused a frame; decoding it on the CPU", reason=reason,
                          **item.log_ids())  # fmt: skip
                self.cpu.decode_image(item, spec)
        return decoded

    def _assemble(
        self, items: list[WorkItem], decoded: dict[WorkItem, torch.Tensor], spec: InputSpec
    ) -> torch.Tensor:
        rows: dict[int, torch.Tensor] = {}  # each item's prepared image, by its place
        on_cpu = [i for i, item in enumerate(items) if item not in decoded]
        if on_cpu:  # raw, PNG, EXIF or refused frames: rare, so one plain upload
            images = stack_images([items[i].image for i in on_cpu])
            rows.update(zip(on_cpu, torch.from_numpy(images).to(self.device), strict=True))
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            if item in decoded:
                by_size[tuple(decoded[item].shape)].append(i)
        for indices in by_size.values():  # one camera fleet: usually a single size
            for start in range(0, len(indices), _CHUNK):
                chunk = indices[start : start + _CHUNK]
                images = torch.stack([decoded[items[i]] for i in chunk])
                rows.update(zip(chunk, _prepare(images, spec), strict=True))
        if not rows:
            return torch.empty((0, spec.height, spec.width, 3), dtype=torch.uint8,
                               device=self.device)  # fmt: skip
        return torch.stack([rows[i] for i in range(len(items))])


def _prepare(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """k x 3 x h x w RGB uint8 images -> k x H x W x 3 uint8, as `prepare` makes them."""
    x = images.float()
    factor = reduced_jpeg_factor(x.shape[-1], x.shape[-2], spec)
    if factor > 1:
        # Nearly what the CPU path's reduced decode does in the DCT domain (libjpeg rounds
        # the scaled size up, as ceil_mode does); a scaled inverse DCT was further off.
        x = F.avg_pool2d(x, factor, ceil_mode=True)
    height, width = x.shape[-2:]
    if spec.resize == "letterbox":
        left, top, new_w, new_h = letterbox_placement(width, height, spec.width, spec.height)
    else:
        left, top, new_w, new_h = 0, 0, spec.width, spec.height
    x = _resize(x, new_w, new_h).round_().clamp_(0, 255).to(torch.uint8)
    if spec.channel_order == "bgr":
        x = x.flip(1)
    x = x.permute(0, 2, 3, 1)
    if (new_w, new_h) == (spec.width, spec.height):
        return x
    out = torch.full((len(x), spec.height, spec.width, 3), LETTERBOX_FILL, dtype=torch.uint8,
                     device=x.device)  # fmt: skip
    out[:, top : top + new_h, left : left + new_w] = x
    return out


def _resize(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """models/spec.py's _resize on the device: OpenCV's INTER_AREA to shrink, to within
    rounding (torch's antialiased and area modes were 0.2-0.4 grey levels further off),
    and bilinear, which is INTER_LINEAR, to enlarge."""
    h, w = x.shape[-2:]
    if (w, h) == (width, height):
        return x
    if width <= w and height <= h:
        return _area_weights(h, height, x.device) @ x @ _area_weights(w, width, x.device).T
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


@functools.cache
def _area_weights(old: int, new: int, device: torch.device) -> torch.Tensor:
    """new x old: how much of each old pixel each new one covers, as a share of its area
    (INTER_AREA's weights, one axis at a time)."""
    scale = old / new
    starts = torch.arange(new, dtype=torch.float64)[:, None] * scale
    pixels = torch.arange(old, dtype=torch.float64)[None, :]
    overlap = torch.minimum(starts + scale, pixels + 1) - torch.maximum(starts, pixels)
    return (overlap.clamp(min=0) / scale).float().to(device)


def _data(item: WorkItem) -> bytes:
    assert item.frame is not None
    return item.frame.data
