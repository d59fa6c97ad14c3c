"""`framewire demo`: embedded stack, one worker, synthetic cameras, live figures."""

from __future__ import annotations

import click

from foundation.settings import Settings
from framewire.demo import DemoOptions, format_summary, run_demo


@click.command()
@click.option("--seconds", type=click.FloatRange(1), default=30.0, show_default=True)
@click.option("--streams", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--fps", type=click.FloatRange(0.1, 240), default=15.0, show_default=True,
              help="frames per second per stream")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda|cuda:N")
@click.option("--json", "as_json", is_flag=True, help="end with one JSON summary line")
@click.pass_obj
def demo(
    settings: Settings, seconds: float, streams: int, fps: float, device: str, as_json: bool
) -> None:
    """Run the end-to-end demo and print frames/s, latency, batch size and accuracy."""
    options = DemoOptions(seconds=seconds, streams=streams, fps=fps, device=device)
    summary = run_demo(settings, options, click.echo)
    click.echo(
        f"done: {summary['frames_produced']} frames, {summary['results']} results "
        f"({summary['lost']} missing), {summary['fps']} fps, p50 {summary['p50_ms']} ms, "
        f"p99 {summary['p99_ms']} ms, mean batch {summary['mean_batch']}, "
        f"accuracy {summary['accuracy']}, dlq {summary['dlq']}"
    )
    if as_json:
        click.echo(format_summary(summary))
    if summary["lost"]:
        raise click.exceptions.Exit(1)
