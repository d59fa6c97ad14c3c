"""`framewire demo`: embedded stack, one worker, synthetic cameras, live figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings


@click.command()
@click.option("--seconds", type=click.FloatRange(1), default=30.0, show_default=True)
@click.option("--streams", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--fps", type=click.FloatRange(0.1, 240), default=15.0, show_default=True,
              help="frames per second per stream")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda|cuda:N")
@click.option("--promote-after", type=click.FloatRange(1), metavar="SECONDS",
              help="serve a registered model and promote a second version after SECONDS: the "
              "worker swaps it in live (needs the mlops extra)")  # fmt: skip
@click.option("--drift", is_flag=True, help="the MLOps loop instead: the scenes drift, the "
              "monitor sees it, feedback, retrain, promotion, recovery (mlops extra; ~5 min)")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="with --drift: draw the accuracy timeline to this PNG")
@click.option("--json", "as_json", is_flag=True, help="end with one JSON summary line")
@click.pass_obj
def demo(
    settings: Settings, seconds: float, streams: int, fps: float, device: str,
    promote_after: float | None, drift: bool, plot: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Run the end-to-end demo and print frames/s, latency, batch size and accuracy."""
    # Imported here, as in every command that needs torch: the CLI itself loads without it.
    from framewire.demo import DemoOptions, format_summary, run_demo
    from framewire.demo_promotion import PromotionError

    if drift:
        _drift(settings, device, plot, as_json)
        return
    if plot is not None:
        raise click.UsageError("--plot goes with --drift")
    if promote_after is not None:
        from foundation.tracking import MlflowMissing, import_mlflow

        try:
            import_mlflow()
        except MlflowMissing as exc:
            raise click.ClickException(f"--promote-after: {exc}") from None
    options = DemoOptions(seconds=seconds, streams=streams, fps=fps, device=device,
                          promote_after_s=promote_after)  # fmt: skip
    try:
        summary = run_demo(settings, options, click.echo)
    except PromotionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"done: {summary['frames_produced']} frames, {summary['results']} results "
        f"({summary['lost']} missing), {summary['fps']} fps, p50 {summary['p50_ms']} ms, "
        f"p99 {summary['p99_ms']} ms, mean batch {summary['mean_batch']}, "
        f"accuracy {summary['accuracy']}, dlq {summary['dlq']}"
    )
    promotion = summary.get("promotion")
    if promotion is not None:
        click.echo(f"promotion: results per version {promotion['results_per_version']}, "
                   f"each stream swapped once: {'yes' if promotion['swapped_once'] else 'NO'}")
    if as_json:
        click.echo(format_summary(summary))
    if summary["lost"] or (promotion is not None and not promotion["swapped_once"]):
        raise click.exceptions.Exit(1)


def _drift(settings: Settings, device: str, plot: Path | None, as_json: bool) -> None:
    from foundation.tracking import MlflowMissing, import_mlflow

    try:
        import_mlflow()
    except MlflowMissing as exc:
        raise click.ClickException(f"--drift: {exc}") from None
    from framewire.demo_drift import DriftOptions, draw, run_drift_demo
    from framewire.demo_promotion import PromotionError

    try:
        summary = run_drift_demo(settings, DriftOptions(device=device), click.echo)
    except (TimeoutError, PromotionError) as exc:
        raise click.ClickException(str(exc)) from None
    short = {k: v for k, v in summary.items() if k not in ("timeline", "accuracy_over_time")}
    click.echo("done: " + ", ".join(f"{k} {_short(v)}" for k, v in short.items()))
    if plot is not None:
        click.echo(f"plot: {draw(summary, plot)}")
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    recovered = summary["accuracy_recovered"]
    if summary["frames_lost"] or recovered is None or recovered < summary["accuracy_before"] - 0.05:
        raise click.exceptions.Exit(1)


def _short(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict) else str(value)
