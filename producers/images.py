"""An image folder as a source: every image, in name order, once.

Class-folder layout (ROOT/cat/1.jpg, ROOT/dog/2.png, no images directly in ROOT, as
torchvision's ImageFolder expects) is recognised by itself: the first-level folder name
becomes `fw-label`. A flat folder gives frames without labels. Files that do not decode
are logged, counted and listed in `skipped`, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from foundation.imageinfo import IMAGE_SUFFIXES
from foundation.log import get_logger
from producers.encode import FrameEncoder
from producers.errors import SourceError
from schemas import Frame, now_ms

log = get_logger(__name__)

# File bytes that already are what we would send: pass them through undecoded-and-reencoded,
# which keeps their quality and spares the CPU (they are still decoded once, to check them).
_PASS_THROUGH = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}


class ImageFolderSource:
    """Frames of the images under `path`; `recursive` descends into every subfolder."""

    def __init__(
        self,
        path: str | Path,
        recursive: bool = False,
        stream_id: str | None = None,
        encoding: str = "jpeg",
        jpeg_quality: int = 90,
        max_side: int | None = None,
    ) -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise SourceError(f"image folder not found: {self.root}")
        self.recursive = recursive
        self.stream_id = stream_id or self.root.resolve().name or "images"
        self.encoder = FrameEncoder(encoding, jpeg_quality, max_side)
        self.class_folders = _is_class_layout(self.root)
        self.files = self._list()
        if not self.files:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.root}"
                              + ("" if recursive else " (try --recursive)"))
        self.skipped: list[tuple[Path, str]] = []
        self.dropped = 0

    def label_of(self, file: Path) -> str | None:
        if not self.class_folders:
            return None
        return file.relative_to(self.root).parts[0]

    def __iter__(self) -> Iterator[Frame]:
        seq = 0
        for file in self.files:
            try:
                frame = self._frame(file, seq)
            except (OSError, ValueError) as exc:
                self.skipped.append((file, str(exc)))
                log.warning("skipping unreadable image", path=str(file), error=str(exc))
                continue
            yield frame
            seq += 1

    def _list(self) -> list[Path]:
        if self.recursive:
            candidates = self.root.rglob("*")
        elif self.class_folders:
            candidates = (f for d in self.root.iterdir() if d.is_dir() for f in d.iterdir())
        else:
            candidates = self.root.iterdir()
        return sorted(
            f for f in candidates
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not _hidden(f, self.root)
        )  # fmt: skip

    def _frame(self, file: Path, seq: int) -> Frame:
        data = file.read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("not a decodable image")
        label = self.label_of(file)
        encoder = self.encoder
        if (_PASS_THROUGH.get(file.suffix.lower()) == encoder.wire_encoding
                and encoder.max_side is None):
            height, width = image.shape[:2]
            return Frame(stream_id=self.stream_id, seq=seq, data=data,
                         encoding=encoder.wire_encoding, width=width, height=height,
                         captured_at_ms=now_ms(), label=label)
        return encoder.frame(image, self.stream_id, seq, label=label)


def _is_class_layout(root: Path) -> bool:
    """Images only one level down, none at the top: ROOT/<class>/<image>."""
    top_images = any(
        f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() for f in root.iterdir()
    )
    if top_images:
        return False
    return any(
        f.suffix.lower() in IMAGE_SUFFIXES
        for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
        for f in d.iterdir()
    )  # fmt: skip


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)
