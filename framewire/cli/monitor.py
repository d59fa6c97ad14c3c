"""`framewire monitor`: drift and data quality of the served models, from the workers'
observations on the monitoring topic (docs/MLOPS.md, "Drift monitoring")."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings


@click.group("monitor", invoke_without_command=True)
@click.option(
    "--since",
    default="1h",
    show_default=True,
    metavar="TIME",
    help="observations from (ISO-8601, or a duration back: 30m, 2h)",
)
@click.option("--follow", is_flag=True, help="keep reading until Ctrl-C")
@click.option(
    "--window",
    type=click.IntRange(min=20),
    default=None,
    help="observed frames per window (overrides FRAMEWIRE_MONITOR_CONFIG)",
)
@click.option(
    "--retrain-after",
    type=click.IntRange(min=0),
    default=None,
    help="windows a drift must last before a retrain is queued (0: never; "
    "overrides FRAMEWIRE_MONITOR_CONFIG)",
)
@click.option("--no-emit", is_flag=True, help="print only; send no events, queue no retrain")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per window and event")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="serve the drift gauges for Prometheus on this port (0: off)",
)
@click.pass_context
def monitor(ctx: click.Context, since: str, follow: bool, window: int | None,
            retrain_after: int | None, no_emit: bool, as_json: bool,
            metrics_port: int) -> None:  # fmt: skip
    """Compare live windows with each served version's reference statistics.

    Without a subcommand it reads the observations (and with --follow keeps reading);
    `framewire monitor report` writes an HTML page of one model's drift instead."""
    if ctx.invoked_subcommand is not None:
        return  # a group's callback runs before its subcommand's too
    settings: Settings = ctx.obj

    from framewire.dlq import parse_since
    from mlops.monitor.checks import WindowReport
    from mlops.monitor.run import run_monitor
    from schemas import Event

    try:
        since_ms = parse_since(since)
    except ValueError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    thresholds = _thresholds(settings, window, retrain_after)

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
    if as_json:
        for row in (*result.accuracy.per_version(), *result.accuracy.per_stream()):
            click.echo(json.dumps({"accuracy": row.to_dict()}))
        return
    click.echo(f"{len(result.reports)} window(s), {len(result.drifts)} drift event(s)")
    for version in result.accuracy.per_version():
        streams = [r for r in result.accuracy.per_stream() if r.model == version.model]
        worst = min(streams, key=lambda r: r.value)
        click.echo(f"live accuracy of {version.model}: {version.value:.3f} over "
                   f"{version.labelled} labelled frames of {len(streams)} stream(s); lowest "
                   f"{worst.stream_id} {worst.value:.3f} ({worst.labelled})")  # fmt: skip
    for model in result.models_without_reference:
        click.echo(f"not monitored (no reference.json): {model}", err=True)


def _thresholds(settings: Settings, window: int | None,
                retrain_after: int | None) -> Callable[[str], Any]:  # fmt: skip
    """FRAMEWIRE_MONITOR_CONFIG's thresholds per model, with the flags' overrides."""
    from mlops.monitor.run import thresholds_from

    try:
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

    return thresholds


@monitor.command("report", short_help="One HTML page of a model's drift over a time range.")
@click.option(
    "--model",
    "name",
    required=True,
    metavar="NAME",
    help="the registered name: every version NAME:VERSION seen in the range",
)
@click.option(
    "--since",
    required=True,
    metavar="TIME",
    help="from (ISO-8601, UTC unless a zone is given, or back from now: 30m, 2h, 1d)",
)
@click.option("--until", metavar="TIME", help="to (same forms) [now]")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="the HTML file to write [monitor-report-NAME.html]",
)
@click.option(
    "--window",
    type=click.IntRange(min=20),
    default=None,
    help="observed frames per window (overrides FRAMEWIRE_MONITOR_CONFIG)",
)
@click.pass_obj
def report(settings: Settings, name: str, since: str, until: str | None, out: str | None,
           window: int | None) -> None:  # fmt: skip
    """Read the observations of model NAME's versions over a time range, check them window
    by window as the monitor does, and write a self-contained HTML page (no network):
    the statistics against their thresholds per window, drift episodes, live accuracy and
    data quality. It only reads: no event is sent, no retrain is queued."""
    from framewire.dlq import parse_since
    from mlops.monitor.run import run_monitor

    try:
        since_ms = parse_since(since)
        until_ms = parse_since(until, flag="--until") if until else None
    except ValueError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    if until_ms is not None and until_ms <= since_ms:
        raise click.ClickException(f"--until ({until}) is not after --since ({since})")
    try:  # matplotlib: the mlops extra, not a worker's install
        from mlops.monitor import report as page
    except ImportError as exc:
        raise click.ClickException(f"framewire monitor report needs matplotlib ({exc}): "
                                   "pip install 'framewire[mlops]'") from None  # fmt: skip
    thresholds = _thresholds(settings, window, None)
    events: list[dict[str, Any]] = []
    try:
        result = run_monitor(settings, since_ms, thresholds=thresholds, publish=False,
                             on_event=lambda event: events.append(event.to_dict()))  # fmt: skip
    except ValueError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    rows = page.select(result.reports, name, since_ms, until_ms)
    if not rows:
        raise click.ClickException(_nothing_found(name, since, until, thresholds, result))
    limits = thresholds(f"{name}:")
    mine = [e for e in events if str(e.get("model", "")).rpartition(":")[0] == name
            and e["ts"] <= (until_ms or e["ts"])]  # fmt: skip
    default = "monitor-report-" + re.sub(r"[^\w.-]+", "_", name) + ".html"
    path = page.write(Path(out or default), name, rows, limits, since_ms=since_ms,
                      until_ms=until_ms, events=mine)  # fmt: skip
    found = page.episodes(rows, limits.confirm)
    drifting = sorted({e.metric for e in found if e.ongoing})
    click.echo(f"wrote {path}: {name}, {len(rows)} window(s) of {limits.window} frames, "
               f"{len(found)} drift episode(s)"
               + (f", drifting at the end: {', '.join(drifting)}" if drifting else ""))  # fmt: skip


def _nothing_found(name: str, since: str, until: str | None, thresholds: Callable[[str], Any],
                   result: Any) -> str:  # fmt: skip
    """Why there is no window: no reference for its versions, or no (or too few) frames."""
    unmonitored = [m for m in result.models_without_reference if m.rpartition(":")[0] == name]
    if unmonitored:
        return (
            f"no window of {name}: its versions {', '.join(unmonitored)} have no "
            'reference.json (docs/MLOPS.md, "Drift monitoring")'
        )
    others = sorted({r.model.rpartition(":")[0] for r in result.reports} - {name})
    return (
        f"no window of {name} from {since} to {until or 'now'}: no observation of it, "
        f"or fewer than {thresholds(name + ':').window} frames (--window sets fewer)"
        + (f"; models seen: {', '.join(others)}" if others else "")
    )
