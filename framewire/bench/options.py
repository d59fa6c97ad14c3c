"""What one `framewire bench` run measures: its options, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_LOADS = (0.1, 0.5, 0.8)  # offered load, as fractions of the measured saturation
# The model that costs nothing, on raw frames of its input size: the framework's own
# ceiling against a bare consumer's (framewire/bench/model.py, bare.py).
NULL_MODEL = "null"


class BenchOptionError(ValueError):
    """An option value that cannot be used; str() is one line naming the option."""


@dataclass(frozen=True)
class BenchOptions:
    device: str = "auto"
    model: str = "demo"  # "demo", "null", an architecture name (random weights), a directory
    input_size: int = 224  # square model input for architecture names
    frame_width: int = 640
    frame_height: int = 480
    frames: int = 2000  # pre-published for the saturation run and the naive baseline
    max_batch: int | None = None  # None: the settings' max_batch
    loads: tuple[float, ...] = DEFAULT_LOADS
    rates: tuple[float, ...] = ()  # offered frames/s instead of `loads` (--rates)
    load_seconds: float = 6.0  # how long each offered load is sent
    naive_seconds: float = 10.0  # the naive baseline stops after this long (it is slow)
    streams: int = 8  # synthetic cameras the frames are spread over (keys -> partitions)
    batch_curve: bool = False  # model-only throughput at 1, 2, 4, ... max_batch (for --plot)
    profile: Path | None = None  # py-spy output for the worker during saturation

    def __post_init__(self) -> None:
        if self.frames < 10:
            raise BenchOptionError(f"--frames must be at least 10, got {self.frames}")
        if self.input_size < 16:
            raise BenchOptionError(f"--input-size must be at least 16, got {self.input_size}")
        if self.frame_width < 16 or self.frame_height < 16:
            raise BenchOptionError(
                f"--frame-size must be at least 16x16, got {self.frame_width}x{self.frame_height}"
            )
        if self.max_batch is not None and self.max_batch < 1:
            raise BenchOptionError(f"--max-batch must be at least 1, got {self.max_batch}")
        if not self.loads or not all(0 < f <= 1 for f in self.loads):
            raise BenchOptionError(f"loads must be fractions in (0, 1], got {self.loads}")
        if not all(rate > 0 for rate in self.rates):
            raise BenchOptionError(f"--rates must be positive frames/s, got {self.rates}")
        if self.null_model and self.batch_curve:
            raise BenchOptionError("--plot draws the decode ceiling, which --model null skips")

    def offered(self, saturation_fps: float) -> list[tuple[float, float]]:
        """(load as a fraction of saturation, frames/s) for each offered-load phase: the
        given rates (an operator's own camera count x fps, which may pass saturation),
        else the default fractions of the measured saturation."""
        if self.rates:
            return [(rate / saturation_fps, rate) for rate in self.rates]
        return [(load, load * saturation_fps) for load in self.loads]

    @property
    def null_model(self) -> bool:
        """The framework's own ceiling: no decode ceiling or naive baseline, a bare
        consumer instead."""
        return self.model == NULL_MODEL


def parse_frame_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); anything else is a BenchOptionError."""
    width, sep, height = text.strip().lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise BenchOptionError(f"--frame-size must look like WIDTHxHEIGHT (e.g. 640x480), "
                               f"got {text!r}")  # fmt: skip
    return int(width), int(height)
