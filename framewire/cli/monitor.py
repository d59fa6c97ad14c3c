"""`framewire monitor`: drift and data quality of the served models, from the workers'
observations on the monitoring topic (docs/MLOPS.md, "Drift monitoring")."""

from __future__ import annotations

import json
from typing import Any

import click

from foundation.settings import Settings


@click.command("monitor")
@click.option("--since", default="1h", show_default=True, metavar="TIME",
              help="observations from (ISO-8601, or a duration back: 30m, 2h)")
@click.option("--follow", is_flag=True, help="keep reading until Ctrl-C")
@click.option("--window", type=click.IntRange(min=20), default=None,
              help="observed frames per window (overrides FRAMEWIRE_MONITOR_CONFIG)")
@click.option("--retrain-after", type=click.IntRange(min=0), default=None,
              help="windows a drift must last before a retrain is queued (0: never; "
              "overrides FRAMEWIRE_MONITOR_CONFIG)")
@click.option("--no-emit", is_flag=True, help="print only; send no events, queue no retrain")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per window and event")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0,
              help="serve the drift gauges for Prometheus on this port (0: off)")
@click.pass_obj
def monitor(settings: Settings, since: str, follow: bool, window: int | None,
            retrain_after: int | None, no_emit: bool, as_json: bool,
            metrics_port: int) -> None:  # fmt: skip
    """Compare live windows with each served version's reference statistics."""
    import dataclasses

    from framewire.dlq import parse_since
    from mlops.monitor.checks import WindowReport
    from mlops.monitor.run import run_monitor, thresholds_from
    from schemas import Event

    try:
        since_ms = parse_since(since)
        base = thresholds_from(settings.monitor_config)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None

    def thresholds(model: str) -> Any:
        limits = base(model)
        if window:
            limits = dataclasses.replace(limits, window=window)
        if retrain_after is not None:
            limits = dataclasses.replace(limits, retrain_after=retrain_after)
        return limits

    def on_window(report: WindowReport) -> None:
        if as_json:
            click.echo(json.dumps({"window": report.to_dict()}))
            return
        over = [f"{f.metric} {f.value:.3f} > {f.threshold:.3f}" for f in report.findings if f.over]
        accuracy = "" if report.accuracy is None else f", accuracy {report.accuracy:.3f}"
        click.echo(f"{report.model}: {report.frames} frames{accuracy}; "
                   f"{'; '.join(over) if over else 'no statistic over its threshold'}")  # fmt: skip

    def on_event(event: Event) -> None:
        if as_json:
            click.echo(json.dumps({"event": event.to_dict()}))
        else:
            click.echo(f"  {event.type}: " + ", ".join(f"{k}={v}" for k, v in event.fields.items()))

    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="0.0.0.0")
    try:
        result = run_monitor(settings, since_ms, follow=follow, on_event=on_event,
                             on_window=on_window, thresholds=thresholds,
                             publish=not no_emit)  # fmt: skip
    except KeyboardInterrupt:
        return
    except ValueError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    if not as_json:
        click.echo(f"{len(result.reports)} window(s), {len(result.drifts)} drift event(s)")
        for model in result.models_without_reference:
            click.echo(f"not monitored (no reference.json): {model}", err=True)
