"""`framewire bench`: the pipeline against the model's own ceiling, and the naive design.

With --gateway it runs the HTTP gateway benchmark instead (framewire.bench_gateway).
Heavy imports (torch, the benchmark) happen inside the command so that `framewire --help`
stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import click

from foundation.settings import Settings
from framewire.services import ensure_services

T = TypeVar("T")


@click.command()
@click.option("--device", help="auto|cpu|cuda|cuda:N  [default: auto; cpu with --soak]")
@click.option("--model", default="demo", show_default=True,
              help="demo, an architecture name (resnet18, resnet50: random weights), "
                   "a model directory, or null: a model that costs nothing on 8x8 raw "
                   "frames, against a bare consumer (the framework's own ceiling)")  # fmt: skip
@click.option("--input-size", type=int, default=224, show_default=True,
              help="square input size for an architecture name")  # fmt: skip
@click.option("--frame-size", default="640x480", show_default=True,
              help="JPEG frame size WIDTHxHEIGHT")  # fmt: skip
@click.option("--frames", type=int, default=2000, show_default=True,
              help="frames for the saturation run, the naive baseline and the ceilings "
                   "(with --gateway: requests per concurrency level)")  # fmt: skip
@click.option("--max-batch", type=int, help="the worker's max batch [FRAMEWIRE_MAX_BATCH, 32]")
@click.option("--load-seconds", type=float, default=6.0, show_default=True,
              help="how long each offered load (10%, 50%, 80% of saturation) is sent")  # fmt: skip
@click.option("--rates", metavar="FPS,...", help="offer these frames/s (for example your "
              "cameras x fps) instead of 10%, 50% and 80% of the measured saturation")
@click.option("--naive-seconds", type=float, default=10.0, show_default=True,
              help="the naive baseline stops after this long")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="end with one JSON summary line")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="draw latency vs load and throughput vs batch size to this PNG")  # fmt: skip
@click.option("--profile", type=click.Path(dir_okay=False, path_type=Path),
              help="py-spy the worker while saturated: .svg flame graph, .json speedscope, "
                   "else raw collapsed stacks (needs the bench extra)")  # fmt: skip
@click.option("--gateway", is_flag=True,
              help="benchmark the HTTP gateway against a naive Flask endpoint instead")  # fmt: skip
@click.option("--concurrency", default="1,8,32", show_default=True,
              help="with --gateway: comma-separated concurrency levels")  # fmt: skip
@click.option("--soak", "soak_minutes", type=click.FloatRange(min=0, min_open=True),
              metavar="MINUTES",
              help="soak run instead: live synthetic cameras into one worker for MINUTES, "
                   "sampled every interval; ends with whether every frame was answered and "
                   "the worker's memory stayed flat")  # fmt: skip
@click.option("--soak-streams", type=click.IntRange(min=1), default=2, show_default=True,
              help="with --soak: live cameras")  # fmt: skip
@click.option("--soak-fps", type=click.FloatRange(min=0, min_open=True), default=15.0,
              show_default=True, help="with --soak: frames per second of each camera")  # fmt: skip
@click.option("--soak-interval-s", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="with --soak: seconds between samples")  # fmt: skip
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="with --soak: write the samples to this CSV file")  # fmt: skip
@click.option("--backfill", "backfill_fps", type=click.FloatRange(min=0, min_open=True),
              default=None, metavar="LIVE_FPS", help="live latency at LIVE_FPS alone and "
              "while a backfill runs on the same worker (--load-seconds each)")  # fmt: skip
@click.pass_obj
def bench(settings: Settings, device: str | None, model: str, input_size: int, frame_size: str,
          frames: int, max_batch: int | None, load_seconds: float, rates: str | None,
          naive_seconds: float, as_json: bool, plot: Path | None, profile: Path | None,
          gateway: bool, concurrency: str, soak_minutes: float | None, soak_streams: int,
          soak_fps: float,
          soak_interval_s: float, csv_path: Path | None, backfill_fps: float | None,
          ) -> None:  # fmt: skip
    """Measure model-only and decode ceilings, pipeline saturation, latency at 10/50/80%
    load (or at --rates) and the naive one-frame-at-a-time baseline, on one device and
    model.

    With --model null: the framework's own ceiling, the pipeline against a bare consumer
    reading the same records (docs/PERFORMANCE.md).

    With --soak MINUTES: a long run of live cameras instead (docs/PERFORMANCE.md, Soak)."""
    if soak_minutes is not None:
        if gateway:
            raise click.ClickException("--soak and --gateway are separate runs: pick one")
        _soak(settings, soak_minutes, soak_streams, soak_fps, soak_interval_s, device or "cpu",
              frame_size, as_json, plot, csv_path)  # fmt: skip
        return
    if csv_path is not None:
        raise click.ClickException("--csv goes with --soak")
    if backfill_fps is not None:
        _backfill(settings, backfill_fps, load_seconds, device or "auto", frame_size, as_json)
        return
    device = device or "auto"
    if gateway:
        _gateway(settings, _concurrencies(concurrency), frames, device, as_json, model,
                 input_size)  # fmt: skip
        return
    from framewire.bench import (
        BenchOptionError,
        BenchOptions,
        format_json,
        format_table,
        parse_frame_size,
        run_bench,
    )

    try:
        width, height = parse_frame_size(frame_size)
        if load_seconds <= 0 or naive_seconds <= 0:
            raise BenchOptionError("--load-seconds and --naive-seconds must be positive")
        options = BenchOptions(
            device=device, model=model, input_size=input_size, frame_width=width,
            frame_height=height, frames=frames, max_batch=max_batch,
            load_seconds=load_seconds, rates=_rates(rates), naive_seconds=naive_seconds,
            batch_curve=plot is not None, profile=profile,
        )  # fmt: skip
        summary = run_bench(settings, options, click.echo)
    except (BenchOptionError, ValueError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    click.echo("")
    click.echo(format_table(summary))
    if plot is not None:
        from framewire.bench.plot import draw

        _draw(draw, summary, plot)
    if as_json:
        click.echo(format_json(summary))


def _backfill(settings: Settings, live_fps: float, seconds: float, device: str,
              frame_size: str, as_json: bool) -> None:  # fmt: skip
    from framewire.bench.backfill import run_backfill_bench
    from framewire.bench.options import BenchOptionError, parse_frame_size
    from framewire.worker_process import WorkerExited
    from models.device import resolve_device

    try:
        size = parse_frame_size(frame_size)
        device = resolve_device(None if device == "auto" else device)
        summary = run_backfill_bench(settings, live_fps, seconds, device, size, click.echo)
    except (BenchOptionError, ValueError, RuntimeError, WorkerExited) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))


def _soak(settings: Settings, minutes: float, streams: int, fps: float, interval_s: float,
          device: str, frame_size: str, as_json: bool, plot: Path | None,
          csv_path: Path | None) -> None:  # fmt: skip
    from framewire.bench.options import BenchOptionError, parse_frame_size
    from framewire.bench.soak import SoakOptions, draw, format_summary, run_soak, write_csv
    from framewire.worker_process import WorkerExited

    try:
        width, height = parse_frame_size(frame_size)
        options = SoakOptions(minutes=minutes, streams=streams, fps=fps, interval_s=interval_s,
                              device=device, frame_width=width, frame_height=height)  # fmt: skip
        summary = run_soak(settings, options, click.echo)
    except (BenchOptionError, ValueError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    except WorkerExited as exc:  # before the cameras start; the log path was printed above
        raise click.ClickException(f"{str(exc).splitlines()[0]} (see the worker log)") from None
    click.echo("")
    click.echo(format_summary(summary))
    if csv_path is not None:
        click.echo(f"csv: {write_csv(summary, csv_path)}")
    if plot is not None:
        _draw(draw, summary, plot)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))


def _draw(draw: Any, summary: dict[str, Any], plot: Path) -> None:
    """Draw a summary's plot, or end with the one-line reason it cannot be drawn."""
    from framewire.bench.plot import PlotUnavailable

    try:
        click.echo(f"plot: {draw(summary, plot)}")
    except PlotUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _rates(text: str | None) -> tuple[float, ...]:
    return () if text is None else tuple(_listed(text, float, "--rates", "frames/s"))


def _concurrencies(text: str) -> list[int]:
    levels = _listed(text, int, "--concurrency", "positive integers")
    if min(levels) < 1:
        raise _not_listed("--concurrency", "positive integers", text)
    return levels


def _listed(text: str, convert: Callable[[str], T], flag: str, what: str) -> list[T]:
    """A comma-separated flag's values, or one line saying what it takes."""
    try:
        values = [convert(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise _not_listed(flag, what, text)
    return values


def _not_listed(flag: str, what: str, text: str) -> click.ClickException:
    return click.ClickException(f"{flag} must be comma-separated {what}, got {text!r}")


def _gateway(settings: Settings, levels: list[int], requests: int, device: str,
             as_json: bool, model: str, input_size: int) -> None:  # fmt: skip
    """Both systems serve --model: the demo's, or an architecture with random weights at
    --input-size (a heavier model, where the worker's batching has something to win)."""
    import tempfile

    from framewire.bench.model import DEMO, model_directory
    from framewire.bench_gateway import run_gateway_bench

    with ExitStack() as cleanup:
        if model != DEMO:
            tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fw-gw-")))
            settings = settings.replace(model=str(model_directory(model, input_size, tmp)))
        settings = ensure_services(settings, settings.state_dir / "bench", cleanup, click.echo,
                                   label="bench")  # fmt: skip
        result = run_gateway_bench(settings, levels, requests, device=device)
    click.echo(_table(result))
    if as_json:
        click.echo(json.dumps(result, sort_keys=True, default=str))


def _table(result: dict[str, Any]) -> str:
    """Scalars as `key: value` lines; each list of dicts (e.g. one per level) as a table."""
    lines = [f"{k}: {v}" for k, v in result.items() if not isinstance(v, (list, dict))]
    for key, value in result.items():
        rows = _flatten(value) if isinstance(value, list) else None
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            rows = [{"": k, **v} for k, v in value.items()]
        if not rows or not all(isinstance(r, dict) for r in rows):
            if isinstance(value, (list, dict)):
                lines.append(f"{key}: {json.dumps(value, default=str)}")
            continue
        columns = list(dict.fromkeys(c for r in rows for c in r))
        cells = [[_cell(r.get(c)) for c in columns] for r in rows]
        widths = [max(len(str(c)), *(len(row[i]) for row in cells))
                  for i, c in enumerate(columns)]  # fmt: skip
        lines += ["", f"{key}:", _row([str(c) for c in columns], widths)]
        lines += [_row(row, widths) for row in cells]
    return "\n".join(lines)


def _flatten(rows: list[Any]) -> list[Any]:
    """A row holding dicts (e.g. {"concurrency": 8, "framewire": {...}, "naive": {...}})
    becomes one row per dict: {"concurrency": 8, "system": "framewire", ...}."""
    flat: list[Any] = []
    for row in rows:
        if not isinstance(row, dict):
            flat.append(row)
            continue
        nested = {k: v for k, v in row.items() if isinstance(v, dict)}
        if not nested:
            flat.append(row)
            continue
        plain = {k: v for k, v in row.items() if k not in nested}
        flat += [{**plain, "system": name, **values} for name, values in nested.items()]
    return flat


def _row(cells: list[str], widths: list[int]) -> str:
    return "  " + "  ".join(v.rjust(w) for v, w in zip(cells, widths, strict=True))


def _cell(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else str(value)
