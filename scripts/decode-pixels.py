"""How far JPEG decode on the device is from the CPU path, in pixels and in the demo model's
accuracy (docs/ARCHITECTURE.md, "Decode").

    .venv/bin/python scripts/decode-pixels.py [--frames 600]

The CPU path decodes a JPEG at reduced scale and resizes it with OpenCV (models/decode.py,
`prepare`); the device path decodes it at full size and prepares it with torch
(workers/device_decode.py). Without a GPU and nvJPEG, OpenCV's full decode stands in for
nvJPEG, so the figures are those of the preparation alone; on a CUDA machine with
torchvision they include nvJPEG's own decode (printed as `decoder`).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from models import load_model
from models.loader import DEFAULT_MODEL_DIR
from models.spec import InputSpec
from producers.encode import encode_image
from producers.synthetic import synthetic_dataset
from schemas import Frame
from workers.decode import FrameDecoder
from workers.device_decode import BatchDecoder, DeviceJpegDecoder, select_decode
from workers.engine import InferenceEngine
from workers.work import WorkItem

SEED = 7  # not the demo model's training seed (0)
BATCH = 32


class Record:
    def __init__(self, data: bytes) -> None:
        self.key, self.value, self.headers = Frame("s", 0, data).to_record()
        self.topic, self.partition, self.offset = "s", 0, 0


def opencv_batch(data: list[bytes]) -> list[torch.Tensor]:
    images = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for jpeg in data]
    return [torch.from_numpy(cv2.cvtColor(i, cv2.COLOR_BGR2RGB)).permute(2, 0, 1) for i in images]


def decoder_for(device: torch.device) -> tuple[BatchDecoder, str]:
    plan = select_decode("auto", device)
    if plan.decoder is not None:
        return plan.decoder, "nvJPEG"
    return opencv_batch, "OpenCV full decode (standing in for nvJPEG)"


def both_ways(
    jpegs: list[bytes], spec: InputSpec, gpu: DeviceJpegDecoder
) -> tuple[np.ndarray, torch.Tensor]:
    """The frames prepared by the CPU path (N x H x W x 3) and by the device path."""
    cpu = FrameDecoder(10**8, 10**9)
    on_cpu = np.stack([cpu.decode(WorkItem(Record(j), 0, 0.0), spec).image for j in jpegs])
    parts = []
    for start in range(0, len(jpegs), BATCH):
        items = [cpu.decode_or_defer(WorkItem(Record(j), 0, 0.0), spec)
                 for j in jpegs[start : start + BATCH]]  # fmt: skip
        batch = gpu.prepare(items, spec)
        assert batch is not None and len(batch) == len(items)
        parts.append(batch)
    return on_cpu, torch.cat(parts)


def pixels(jpegs: list[bytes], size: int, gpu: DeviceJpegDecoder) -> str:
    on_cpu, on_device = both_ways(jpegs, InputSpec(size, size), gpu)
    diff = np.abs(on_device.cpu().numpy().astype(np.int16) - on_cpu)
    per_frame = diff.reshape(len(jpegs), -1).mean(axis=1)
    return (f"mean |diff| {diff.mean():.2f} grey levels, worst frame {per_frame.max():.2f}, "
            f"{(diff > 8).mean():.2%} of values off by more than 8")  # fmt: skip


def accuracy(jpegs: list[bytes], labels: list[str], engine: InferenceEngine,
             gpu: DeviceJpegDecoder) -> str:  # fmt: skip
    on_cpu, on_device = both_ways(jpegs, engine.card.input, gpu)
    cpu_labels = [p[0]["label"] for p in engine.predict(on_cpu)]
    device_labels = []
    for start in range(0, len(jpegs), engine.max_batch):
        batch = on_device[start : start + engine.max_batch].to(engine.device)
        device_labels += [p[0]["label"] for p in engine.submit_resident(batch).result()]
    right = np.array(labels)
    cpu_ok, device_ok = np.array(cpu_labels) == right, np.array(device_labels) == right
    agree = np.mean(np.array(cpu_labels) == np.array(device_labels))
    return (f"accuracy {cpu_ok.mean():.1%} (CPU path) vs {device_ok.mean():.1%} (device path), "
            f"same answer on {agree:.1%} of frames")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    decode, name = decoder_for(device)
    gpu = DeviceJpegDecoder(decode, FrameDecoder(10**8, 10**9), device)
    print(f"decoder: {name}, on {device}")
    engine = InferenceEngine(load_model(DEFAULT_MODEL_DIR), str(device), max_batch=BATCH)
    for width, height in ((640, 480), (320, 240)):  # 320x240: what the demo was trained on
        images, labels = synthetic_dataset(args.frames, SEED, width=width, height=height)
        jpegs = [encode_image(image)[0] for image in images]  # JPEG q90, as the producers
        print(f"{width}x{height} JPEG frames:")
        for size in (64, 224):
            print(f"  -> {size}x{size}: {pixels(jpegs, size, gpu)}")
        print(f"  demo model: {accuracy(jpegs, labels, engine, gpu)}")


if __name__ == "__main__":
    main()
