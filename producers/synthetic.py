"""Synthetic cameras: moving, labelled shapes on varied backgrounds.

This is the demo's and the tests' camera and the classifier's training set. One large
object of a known class moves over a random background with lighting changes, noise and
small distractors; the class is the ground truth (`fw-label`). Everything follows from a
seed, so a run can be replayed frame for frame.

`drift=True` shifts the scene distribution (a muted, tinted palette, smaller objects, blur
and more noise) while keeping the classes: what the drift monitor must notice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

from producers.encode import FrameEncoder
from producers.pacing import Pacer
from schemas import Frame, now_ms

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

# Object extent (bounding diameter) as a fraction of the image's short side. Large enough
# that a small CNN at 64x64 sees the shape clearly; drifted scenes use smaller objects.
_SIZE = (0.30, 0.60)
_SIZE_DRIFT = (0.22, 0.36)
_BG_STYLES = ("solid", "gradient", "stripes", "checker", "blobs")
_SHIFT = 4  # sub-pixel bits for cv2 polygon drawing: smooth motion, no 1-pixel jitter
_SEGMENT_S = (1.0, 2.0)  # each synthetic stream switches its label every 1-2 s


def render_scene(
    rng: np.random.Generator,
    label: str,
    t: float,
    width: int,
    height: int,
    drift: bool = False,
    *,
    noise_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One BGR uint8 scene with a main object of class `label` at time t (seconds).

    The scene (background, colours, size, path, lighting) is drawn from `rng`; rendering
    the same rng state at several t gives a moving object in an otherwise stable scene.
    Per-frame sensor noise comes from `noise_rng` when given (else from `rng`), so a video
    of one scene does not carry a frozen noise pattern.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {', '.join(CLASSES)}")
    short = min(width, height)
    dark_object = bool(rng.random() < 0.5)

    background = _background(rng, width, height, dark_object, drift)
    for _ in range(int(rng.integers(0, 4))):
        _distractor(rng, background, short, dark_object)

    # Object: size, a bouncing straight path, a steady rotation.
    lo, hi = _SIZE_DRIFT if drift else _SIZE
    radius = rng.uniform(lo, hi) * short / 2
    speed = rng.uniform(0.1, 0.4) * short
    heading = rng.uniform(0, 2 * math.pi)
    cx = _bounce(rng.uniform(radius, width - radius) + speed * math.cos(heading) * t,
                 radius, width - radius)
    cy = _bounce(rng.uniform(radius, height - radius) + speed * math.sin(heading) * t,
                 radius, height - radius)
    angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-1.0, 1.0) * t
    colour = _colour(rng, dark=dark_object, drift=drift)
    _draw_shape(background, label, cx, cy, radius, angle, colour)

    # Lighting: a slow global flicker and a fixed illumination gradient.
    gain = rng.uniform(0.8, 1.15) + rng.uniform(0, 0.15) * math.sin(
        2 * math.pi * rng.uniform(0.1, 0.8) * t + rng.uniform(0, 2 * math.pi)
    )
    light = _ramp(rng, width, height)
    light *= gain * rng.uniform(0, 0.35)
    light += gain * (1 - 0.175)
    image = background.astype(np.float32)
    image *= light[..., None]

    sigma = rng.uniform(8, 16) if drift else rng.uniform(2, 9)
    blur = rng.uniform(0.8, 1.8) if drift else 0.0
    # Uniform noise of standard deviation sigma: looks like Gaussian sensor noise at this
    # level and is drawn ~4x faster, which keeps a 320x240 stream near 200 frames/s.
    noise = (noise_rng or rng).random(image.shape, dtype=np.float32)
    noise -= 0.5
    noise *= sigma * math.sqrt(12)
    image += noise
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    # convertScaleAbs saturates to 0..255 (the image is never negative enough to fold).
    return cv2.convertScaleAbs(np.maximum(image, 0, out=image))


def synthetic_dataset(
    n: int, seed: int, width: int = 64, height: int = 64, drift: bool = False
) -> tuple[np.ndarray, list[str]]:
    """N scenes (N x H x W x 3, uint8 BGR) and their labels, classes balanced, shuffled.

    Rendered directly at the requested size, each at a random time of its own scene.
    """
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i] for i in rng.permutation(np.arange(n) % len(CLASSES))]
    images = np.empty((n, height, width, 3), np.uint8)
    for i, label in enumerate(labels):
        images[i] = render_scene(rng, label, rng.uniform(0, 10), width, height, drift)
    return images, labels


class SyntheticSource:
    """K synthetic cameras, as an iterator of Frames with `fw-label` set.

    Frames go round-robin over the streams (`synthetic-0` ... `synthetic-{K-1}`), `fps`
    frames per second each, for `seconds` (None: until stopped). realtime=False yields
    as fast as possible with the timestamps a real-time run would have had. Pixels and
    labels depend only on (seed, stream, seq). `drift` may be flipped during a run.
    """

    def __init__(
        self,
        streams: int = 1,
        fps: float = 30.0,
        seconds: float | None = None,
        seed: int = 0,
        width: int = 320,
        height: int = 240,
        drift: bool = False,
        encoding: str = "jpeg",
        jpeg_quality: int = 90,
        max_side: int | None = None,
        realtime: bool = True,
    ) -> None:
        if streams < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if seconds is not None and seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        if width < 16 or height < 16:
            raise ValueError(f"scenes need at least 16x16 pixels, got {width}x{height}")
        self.streams = streams
        self.fps = fps
        self.seconds = seconds
        self.seed = seed
        self.width = width
        self.height = height
        self.drift = drift
        self.realtime = realtime
        self.encoder = FrameEncoder(encoding, jpeg_quality, max_side)
        self.dropped = 0  # a synthetic camera never drops; the publisher reads this

    @property
    def frames_per_stream(self) -> int | None:
        return None if self.seconds is None else round(self.seconds * self.fps)

    def stream_ids(self) -> list[str]:
        return [f"synthetic-{k}" for k in range(self.streams)]

    def __iter__(self) -> Iterator[Frame]:
        cameras = [_Camera(self.seed, k) for k in range(self.streams)]
        pacer = Pacer(self.fps) if self.realtime else None
        start_ms = now_ms()
        limit = self.frames_per_stream
        seq = 0
        while limit is None or seq < limit:
            if pacer is not None:
                pacer.wait()
            at_ms = now_ms() if self.realtime else start_ms + round(seq * 1000 / self.fps)
            for stream_id, camera in zip(self.stream_ids(), cameras, strict=True):
                label, image = camera.render(seq, self.fps, self.width, self.height, self.drift)
                yield self.encoder.frame(image, stream_id, seq, at_ms, label)
            seq += 1


class _Camera:
    """One synthetic stream: a sequence of scenes (segments) of 1-2 s, one label each."""

    def __init__(self, seed: int, index: int) -> None:
        self.seed = seed
        self.index = index
        self.rng = np.random.default_rng([seed, index])
        self.label: str | None = None
        self.scene_seed = 0
        self.start = 0
        self.end = 0

    def render(
        self, seq: int, fps: float, width: int, height: int, drift: bool
    ) -> tuple[str, np.ndarray]:
        if seq >= self.end:
            self._next_scene(seq, fps)
        assert self.label is not None
        scene = np.random.default_rng(self.scene_seed)
        noise = np.random.default_rng([self.seed, self.index, seq])
        t = (seq - self.start) / fps
        return self.label, render_scene(scene, self.label, t, width, height, drift,
                                        noise_rng=noise)

    def _next_scene(self, seq: int, fps: float) -> None:
        choices = [c for c in CLASSES if c != self.label]
        self.label = choices[int(self.rng.integers(len(choices)))]
        self.scene_seed = int(self.rng.integers(2**63))
        self.start = seq
        self.end = seq + max(1, round(self.rng.uniform(*_SEGMENT_S) * fps))


# --- drawing helpers -----------------------------------------------------------------


def _colour(rng: np.random.Generator, dark: bool, drift: bool) -> tuple[float, float, float]:
    """A BGR colour on the dark or the bright side, so object and background contrast.

    Drifted scenes get a muted palette with a bluish tint (a different camera, at dusk).
    """
    if drift:
        hue = rng.uniform(95, 135)  # OpenCV hue scale 0-180: blues
        sat = rng.uniform(0.05, 0.35)
    else:
        hue = rng.uniform(0, 180)
        sat = rng.uniform(0.2, 1.0)
    value = rng.uniform(0.0, 0.33) if dark else rng.uniform(0.7, 1.0)
    hsv = np.array([[[hue, sat * 255, value * 255]]], np.float32).astype(np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return float(b), float(g), float(r)


def _background(
    rng: np.random.Generator, width: int, height: int, dark_object: bool, drift: bool
) -> np.ndarray:
    """A background on the opposite luminance side of the object: solid, gradient,
    stripes, checker or blobs of two colours."""
    c1 = np.array(_colour(rng, dark=not dark_object, drift=drift), np.float32)
    c2 = np.array(_colour(rng, dark=not dark_object, drift=drift), np.float32)
    style = _BG_STYLES[int(rng.integers(len(_BG_STYLES)))]
    if style == "solid":
        mix = np.zeros((height, width), np.float32)
    elif style == "gradient":
        mix = _ramp(rng, width, height)
    elif style == "stripes":
        period = rng.uniform(0.05, 0.25) * min(width, height)
        mix = (np.sin(_ramp(rng, width, height) * max(width, height) / period * math.pi) > 0)
        mix = mix.astype(np.float32)
    elif style == "checker":
        cell = max(2, int(rng.uniform(0.06, 0.2) * min(width, height)))
        ys, xs = np.indices((height, width))
        mix = (((xs // cell) + (ys // cell)) % 2).astype(np.float32)
    else:
        coarse = rng.random((4, 4)).astype(np.float32)
        mix = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    if style == "solid":
        return np.broadcast_to(c1.astype(np.uint8), (height, width, 3)).copy()
    mix = np.clip(mix, 0, 1)[..., None]
    mixed = mix * (c2 - c1)
    mixed += c1
    return mixed.astype(np.uint8)


def _ramp(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A linear 0..1 ramp across the image in a random direction."""
    angle = rng.uniform(0, 2 * math.pi)
    xs = np.arange(width, dtype=np.float32) * math.cos(angle)
    ys = np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
    proj = xs + ys  # broadcast: one H x W array, no index grids
    proj -= proj.min()
    proj /= max(float(proj.max()), 1e-6)
    return proj


def _distractor(
    rng: np.random.Generator, image: np.ndarray, short: int, dark_object: bool
) -> None:
    """A small ellipse or line (at most ~8% of the short side): clutter, never a class."""
    height, width = image.shape[:2]
    colour = _colour(rng, dark=bool(rng.random() < 0.5), drift=False)
    centre = (int(rng.integers(width)), int(rng.integers(height)))
    size = max(1, int(rng.uniform(0.02, 0.08) * short))
    if rng.random() < 0.5:
        axes = (size, max(1, int(size * rng.uniform(0.3, 1.0))))
        cv2.ellipse(image, centre, axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
    else:
        end = (centre[0] + int(rng.integers(-size, size + 1)),
               centre[1] + int(rng.integers(-size, size + 1)))
        cv2.line(image, centre, end, colour, max(1, size // 4), cv2.LINE_AA)


def _bounce(x: float, lo: float, hi: float) -> float:
    """x folded into [lo, hi] as if reflected at the walls."""
    span = hi - lo
    if span <= 0:
        return lo
    u = (x - lo) % (2 * span)
    return lo + (span - abs(u - span))


def _star(points: int, inner: float) -> list[tuple[float, float]]:
    return [
        (math.cos(a) * r, math.sin(a) * r)
        for i in range(2 * points)
        for a, r in [(-math.pi / 2 + i * math.pi / points, 1.0 if i % 2 == 0 else inner)]
    ]


def _regular(sides: int, start: float) -> list[tuple[float, float]]:
    return [(math.cos(start + i * 2 * math.pi / sides), math.sin(start + i * 2 * math.pi / sides))
            for i in range(sides)]


_ARM = 0.32  # half-width of the cross's arms, relative to its radius
# Outlines on the unit circle (radius 1), rotated and scaled when drawn.
_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "square": _regular(4, math.pi / 4),
    "triangle": _regular(3, -math.pi / 2),
    "star": _star(5, 0.42),
    "cross": [
        (-_ARM, -1), (_ARM, -1), (_ARM, -_ARM), (1, -_ARM), (1, _ARM), (_ARM, _ARM),
        (_ARM, 1), (-_ARM, 1), (-_ARM, _ARM), (-1, _ARM), (-1, -_ARM), (-_ARM, -_ARM),
    ],
}  # fmt: skip


def _draw_shape(
    image: np.ndarray,
    label: str,
    cx: float,
    cy: float,
    radius: float,
    angle: float,
    colour: tuple[float, float, float],
) -> None:
    scale = 1 << _SHIFT
    centre = (round(cx * scale), round(cy * scale))
    if label == "circle":
        cv2.circle(image, centre, round(radius * scale), colour, -1, cv2.LINE_AA, _SHIFT)
        return
    if label == "ring":
        # Hole of ~55% of the radius: the background shows through, unlike a circle.
        thickness = max(2, round(radius * 0.45))
        cv2.circle(image, centre, round((radius - thickness / 2) * scale), colour, thickness,
                   cv2.LINE_AA, _SHIFT)
        return
    cos, sin = math.cos(angle), math.sin(angle)
    # The square's corners reach the radius but its sides only 0.71 of it: scale it up a
    # little so every class covers a similar area.
    r = radius * (1.1 if label == "square" else 1.0)
    pts = np.array(
        [[(cx + r * (x * cos - y * sin)) * scale, (cy + r * (x * sin + y * cos)) * scale]
         for x, y in _OUTLINES[label]],
        np.int32,
    )
    cv2.fillPoly(image, [pts], colour, cv2.LINE_AA, _SHIFT)
