"""`framewire produce synthetic|video|camera|images`: publish frames to Kafka.

Each subcommand builds a source from producers/ and hands it to one Publisher; the
options every source shares come from one decorator. The run ends with one summary line
on stdout (sent, failed, dropped, fps); Ctrl-C stops it after flushing what was accepted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from foundation.log import get_logger
from foundation.settings import Settings
from producers.errors import SourceError
from producers.publisher import Publisher, PublishError
from schemas import Frame

log = get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# The keys of producers.encode.ENCODING_NAMES, spelled out: importing it would load OpenCV
# for every `framewire` command (a test keeps the two equal).
ENCODINGS = ("jpeg", "png", "webp", "raw")
# Counters some sources keep beyond the publisher's, added to the summary when present.
_SOURCE_COUNTERS = ("reconnects", "skipped")


def frame_options(command: F) -> F:
    """The options every produce subcommand takes (encoding, size, topic, limits)."""
    options = [
        click.option("--encoding", type=click.Choice(ENCODINGS), default="jpeg",
                     show_default=True, help="image encoding on the wire (raw = BGR pixels)"),
        click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90,
                     show_default=True, help="JPEG (and WebP) quality"),
        click.option("--max-side", type=click.IntRange(min=1), default=None,
                     help="shrink frames so the longer side is at most this, before encoding"),
        click.option("--topic", default=None,
                     help="topic to publish to [default: the frames topic of the prefix]"),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="stop after this many frames"),
        click.option("--acks", type=click.Choice(["all", "1", "0"]), default=None,
                     help="acknowledgements per frame [FRAMEWIRE_PRODUCER_ACKS, default all]"),
        click.option("--progress/--no-progress", default=None,
                     help="progress line [default: when stderr is a terminal]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _encoder_args(opts: dict[str, Any]) -> dict[str, Any]:
    return {
        "encoding": opts["encoding"],
        "jpeg_quality": opts["jpeg_quality"],
        "max_side": opts["max_side"],
    }


@click.group()
def produce() -> None:
    """Publish frames to Kafka: synthetic, video, camera, images."""


@produce.command()
@click.option("--streams", type=click.IntRange(min=1), default=1, show_default=True,
              help="synthetic cameras (stream ids synthetic-0 ...)")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="frames per second of each stream")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="run for this long [default: until Ctrl-C]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="same seed, same scenes and labels")
@click.option("--width", type=click.IntRange(min=16), default=320, show_default=True)
@click.option("--height", type=click.IntRange(min=16), default=240, show_default=True)
@click.option("--drift", is_flag=True, help="shifted scene distribution (palette, scale, blur)")
@click.option("--fast", is_flag=True,
              help="no pacing: as fast as possible, with the timestamps of a real-time run")
@frame_options
@click.pass_obj
def synthetic(settings: Settings, streams: int, fps: float, seconds: float | None, seed: int,
              width: int, height: int, drift: bool, fast: bool, **opts: Any) -> None:
    """Moving, labelled shapes (ground truth in fw-label); deterministic for a seed."""
    from producers.synthetic import SyntheticSource

    source = _build(lambda: SyntheticSource(
        streams=streams, fps=fps, seconds=seconds, seed=seed, width=width, height=height,
        drift=drift, realtime=not fast, **_encoder_args(opts),
    ))  # fmt: skip
    _run(settings, source, opts, streams=streams, fps=fps)


@produce.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="sample to this rate by media timestamp [default: every frame]")
@click.option("--loop", is_flag=True, help="start again at the end of the file")
@click.option("--stream-id", default=None, help="[default: the file name without extension]")
@click.option("--realtime", is_flag=True,
              help="pace at the video's own speed [default: as fast as Kafka takes them]")
@frame_options
@click.pass_obj
def video(settings: Settings, path: str, fps: float | None, loop: bool,
          stream_id: str | None, realtime: bool, **opts: Any) -> None:
    """Every frame of a video file (or --fps samples of it)."""
    from producers.video import VideoSource

    source = _build(lambda: VideoSource(
        path, fps=fps, loop=loop, stream_id=stream_id, realtime=realtime,
        **_encoder_args(opts),
    ))  # fmt: skip
    _run(settings, source, opts, path=path)


@produce.command()
@click.argument("url_or_index", metavar="URL|INDEX")
@click.option("--max-fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="publish at most this many frames per second (the newest each time)")
@click.option("--stream-id", default=None, help="[default: camera-INDEX or the URL's host/path]")
@click.option("--max-backoff", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="longest wait between reconnect attempts (seconds)")
@frame_options
@click.pass_obj
def camera(settings: Settings, url_or_index: str, max_fps: float | None,
           stream_id: str | None, max_backoff: float, **opts: Any) -> None:
    """A live source (RTSP, HTTP MJPEG, device index): newest frame, reconnects forever."""
    from producers.camera import CameraSource

    source = _build(lambda: CameraSource(
        url_or_index, max_fps=max_fps, stream_id=stream_id,
        max_backoff_s=max(max_backoff, 0.5), **_encoder_args(opts),
    ))  # fmt: skip
    _run(settings, source, opts, stream_id=source.stream_id)


@produce.command()
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("--recursive", is_flag=True, help="include every subfolder")
@click.option("--stream-id", default=None, help="[default: the folder's name]")
@frame_options
@click.pass_obj
def images(settings: Settings, directory: str, recursive: bool, stream_id: str | None,
           **opts: Any) -> None:
    """Every image of a folder; class folders (DIR/<label>/img) set fw-label."""
    from producers.images import ImageFolderSource

    source = _build(lambda: ImageFolderSource(
        directory, recursive=recursive, stream_id=stream_id, **_encoder_args(opts),
    ))  # fmt: skip
    _run(settings, source, opts, files=len(source.files), labels=source.class_folders)


def _build(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (SourceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _run(settings: Settings, source: Iterable[Frame], opts: dict[str, Any],
         **about: Any) -> None:
    if opts["acks"] is not None:
        settings = settings.replace(producer_acks=opts["acks"])
    progress = opts["progress"] if opts["progress"] is not None else sys.stderr.isatty()
    topic = opts["topic"] or settings.frames_topic
    try:
        with Publisher(settings, topic) as publisher:
            log.info("publishing frames", topic=topic, bootstrap=settings.kafka_bootstrap,
                     source=type(source).__name__, **about)
            stats = publisher.publish(source, progress=progress, limit=opts["limit"])
            publisher.close()
    except (PublishError, SourceError) as exc:
        raise click.ClickException(str(exc)) from None
    extra = ""
    for name in _SOURCE_COUNTERS:
        value = getattr(source, name, None)
        if value is not None:
            extra += f" {name}={len(value) if isinstance(value, list) else value}"
    click.echo(stats.summary() + extra)
    if stats.failed:
        for error in stats.errors[:3]:
            click.echo(f"error: {error}", err=True)
        sys.exit(1)
