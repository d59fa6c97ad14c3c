"""`framewire monitor report`: one self-contained HTML page of a model's drift over a time
range, from the monitor's window reports (checks.WindowReport).

    header        model, versions, time range, windows, frames, the thresholds in force
    episodes      a statistic over its threshold in `confirm` consecutive windows of one
                  version: what the monitor sends a drift event for
    statistics    per statistic: last value, threshold, windows over, largest value
    charts        per statistic, value against window with its threshold; live accuracy
    data quality  streams mostly blank or badly exposed in a window; frozen streams

Pure: window reports in (WindowReport or its to_dict(), read with .get so that fields
added later or missing render either way), HTML out; reading the monitoring topic is the
CLI's. Charts are the data report's (mlops/data/charts.py): matplotlib PNGs as data URIs,
so the page is one file that needs no network. Every text that came from outside (model,
version and stream names) is HTML-escaped, and kept out of matplotlib's mathtext.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from mlops.data.charts import png, tidy
from mlops.data.report import CSS as DATA_REPORT_CSS
from mlops.monitor.checks import Thresholds

OVER = "#C44E52"
THRESHOLD = "#555555"
MAX_EPISODES_SHOWN = 100  # a statistic flapping around its threshold: the count says the rest
VERSION_COLOURS = ("#4C72B0", "#55A868", "#8172B2", "#937860", "#DA8BC3", "#8C8C8C")
_CSS = DATA_REPORT_CSS + (
    ".verdict{font-size:15px;margin:10px 0}.ok{color:#2e7d32;font-weight:600}\n"
    ".charts img.chart{width:550px}\n"
)


@dataclass(frozen=True)
class Episode:
    """A statistic over its threshold in `confirm` or more consecutive windows of one
    version (the run the monitor sends one drift event for)."""

    metric: str
    version: str  # NAME:VERSION
    first: int  # window numbers as on the page, from 1
    last: int
    windows: int
    peak: float
    threshold: float
    ongoing: bool  # still over in the version's last window of the range
    start_ms: int | None = None  # end times of its first and last window, where known
    end_ms: int | None = None


def as_dicts(reports: Iterable[Any]) -> list[dict[str, Any]]:
    """WindowReports (or their to_dict()s) as dicts."""
    return [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in reports]


def select(
    reports: Iterable[Any], name: str, since_ms: int | None = None, until_ms: int | None = None
) -> list[dict[str, Any]]:
    """The windows of the versions of model NAME ("NAME:VERSION") that ended in the range.
    A window without an end time (`ts`) is kept: the reader started at since_ms anyway."""
    kept = []
    for row in as_dicts(reports):
        if str(row.get("model", "")).rpartition(":")[0] != name:
            continue
        ts = _ms(row.get("ts"))
        if ts is not None and not (since_ms or 0) <= ts <= (until_ms or ts):
            continue
        kept.append(row)
    return kept


def episodes(reports: Sequence[Any], confirm: int) -> list[Episode]:
    """Runs of `confirm` or more windows over, per version and statistic, as the monitor
    counts them: a window without the statistic neither extends nor breaks a run."""
    rows = as_dicts(reports)
    found = []
    for version, own in _by_version(rows).items():
        for metric in _metrics(rows):
            run: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
            for number, row in own:
                finding = row.get("findings", {}).get(metric)
                if finding is None:
                    continue
                if _over(finding):
                    run.append((number, row, finding))
                    continue
                found += _episode(metric, version, run, confirm, ongoing=False)
                run = []
            found += _episode(metric, version, run, confirm, ongoing=True)
    return sorted(found, key=lambda e: (e.first, e.metric))


def render(
    name: str, reports: Sequence[Any], limits: Thresholds, since_ms: int | None = None,
    until_ms: int | None = None, events: Iterable[dict[str, Any]] = (),
) -> str:  # fmt: skip
    """The page. events: the monitor's data_quality events (Event.to_dict()), for frozen
    streams, which are events rather than window findings."""
    rows = as_dicts(reports)
    found = episodes(rows, limits.confirm)
    sections = [
        _header(name, rows, limits, since_ms, until_ms, found),
        _episodes_section(found, limits),
        _statistics_section(rows, found),
        _charts_section(rows, found),
        _accuracy_section(rows),
        _quality_section(rows, limits, [e for e in events if e.get("type") == "data_quality"]),
    ]
    title = f"Drift of {name}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<p class=meta>framewire monitor report · generated {_time(time.time() * 1000)}</p>"
        f"{''.join(sections)}</body></html>\n"
    )


def write(out: Path, name: str, reports: Sequence[Any], limits: Thresholds,
          **options: Any) -> Path:  # fmt: skip
    """render() into the file out (its folder made if missing)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(name, reports, limits, **options), encoding="utf-8")
    return out


# -- reading the window reports ----------------------------------------------------------


def _by_version(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Version -> its (window number, row), in the order seen; numbers count every window."""
    versions: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, row in enumerate(rows, 1):
        versions.setdefault(str(row.get("model", "?")), []).append((number, row))
    return versions


def _metrics(rows: list[dict[str, Any]]) -> list[str]:
    """Every statistic, in the order the checks give them (PSI first, embedding last)."""
    return list(dict.fromkeys(m for row in rows for m in row.get("findings", {})))


def _over(finding: dict[str, Any]) -> bool:
    over = finding.get("over")
    return bool(over) if over is not None else finding["value"] > finding["threshold"]


def _episode(metric: str, version: str, run: list, confirm: int, ongoing: bool) -> list[Episode]:
    if not run or len(run) < confirm:
        return []
    peak = max(run, key=lambda item: item[2]["value"])
    return [Episode(metric, version, run[0][0], run[-1][0], len(run), peak[2]["value"],
                    peak[2]["threshold"], ongoing, _ms(run[0][1].get("ts")),
                    _ms(run[-1][1].get("ts")))]  # fmt: skip


def _ms(ts: Any) -> int | None:
    """A window's end time (epoch ms), or None for a report without one."""
    return ts if isinstance(ts, int) else None


def _header(name: str, rows: list[dict[str, Any]], limits: Thresholds, since_ms: int | None,
            until_ms: int | None, found: list[Episode]) -> str:  # fmt: skip
    versions = _by_version(rows)
    seen = ", ".join(f"{_e(v)} ({len(own):,} window{'s' * (len(own) != 1)})"
                     for v, own in versions.items())  # fmt: skip
    times = [t for t in (_ms(row.get("ts")) for row in rows) if t is not None]
    span = (f"{_time(since_ms) if since_ms else 'the start'} to "
            f"{_time(until_ms) if until_ms else 'now'}")  # fmt: skip
    if times:
        span += f" (windows ended {_time(min(times))} to {_time(max(times))})"
    labelled = sum(int(row.get("labelled") or 0) for row in rows)
    ongoing = sorted({e.metric for e in found if e.ongoing})
    if ongoing:
        verdict = (f'<p class="verdict bad">Drifting at the end of the range: '
                   f"{_e(', '.join(ongoing))}.</p>")  # fmt: skip
    elif found:
        verdict = (f'<p class="verdict">{len(found)} drift episode{"s" * (len(found) != 1)} '
                   "in the range, none still going on at its end.</p>")  # fmt: skip
    else:
        verdict = ('<p class="verdict ok">No drift: no statistic was over its threshold in '
                   f"{limits.confirm} consecutive windows.</p>")  # fmt: skip
    table = [
        ("model", _e(name)),
        ("versions seen", seen),
        ("time range", span),
        ("windows", f"{len(rows):,} of {limits.window:,} observed frames"),
        ("frames", f"{sum(int(row.get('frames') or 0) for row in rows):,} observed, "
                   f"{labelled:,} with a label"),
        ("thresholds", _thresholds(limits)),
    ]  # fmt: skip
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in table)
    return f'<section>{verdict}<table class="summary">{body}</table></section>'


def _thresholds(limits: Thresholds) -> str:
    retrain = (f"after {limits.retrain_after} windows" if limits.retrain_after
               else "never asked")  # fmt: skip
    return " · ".join((
        f"PSI {limits.psi:g}", f"JS {limits.js:g}",
        f"KS over its critical value at alpha {limits.ks_alpha:g} and over {limits.ks_distance:g}",
        f"embedding shift {limits.embedding:g}", f"drift after {limits.confirm} windows over",
        f"retrain {retrain}", f"bad frames over {limits.bad_share:.0%} of a stream",
    ))  # fmt: skip


def _episodes_section(found: list[Episode], limits: Thresholds) -> str:
    intro = (f"<p class=note>A statistic over its threshold in {limits.confirm} or more "
             "consecutive windows of one version: the monitor sends one drift event per "
             "episode. Window numbers are the charts'.</p>")  # fmt: skip
    if not found:
        return f"<section><h2>Drift episodes</h2>{intro}<p>None.</p></section>"
    timed = any(e.start_ms for e in found)  # window end times, where the reports have them
    rows = "".join(
        f"<tr><td>{_e(e.metric)}</td><td>{_e(e.version)}</td>"
        f"<td class=n>{e.first}&ndash;{e.last}</td><td class=n>{e.windows}</td>"
        f"<td class=n>{e.peak:.3f}</td><td class=n>{e.threshold:.3f}</td>"
        + (f"<td>{_span(e.start_ms, e.end_ms)}</td>" if timed else "")
        + f"<td>{'<span class=bad>still over</span>' if e.ongoing else 'ended'}</td></tr>"
        for e in found[:MAX_EPISODES_SHOWN]
    )
    more = (f"<p class=note>{len(found) - MAX_EPISODES_SHOWN} more episodes not shown.</p>"
            if len(found) > MAX_EPISODES_SHOWN else "")  # fmt: skip
    return (
        f"<section><h2>Drift episodes ({len(found)})</h2>{intro}"
        "<table><tr><th>statistic</th><th>version</th><th class=n>windows</th>"
        "<th class=n>length</th><th class=n>largest</th><th class=n>threshold</th>"
        f"{'<th>windows ended</th>' if timed else ''}<th>state</th></tr>{rows}</table>"
        f"{more}</section>"
    )


def _statistics_section(rows: list[dict[str, Any]], found: list[Episode]) -> str:
    lines = []
    for metric in _metrics(rows):
        seen = [(n, row["findings"][metric]) for n, row in enumerate(rows, 1)
                if metric in row.get("findings", {})]  # fmt: skip
        last = seen[-1][1]
        over = sum(_over(f) for _, f in seen)
        top_n, top = max(seen, key=lambda item: item[1]["value"])
        state = ("<span class=bad>drifting</span>" if any(e.ongoing and e.metric == metric
                                                          for e in found)
                 else "over" if _over(last) else "ok")  # fmt: skip
        lines.append(
            f"<tr><td>{_e(metric)}</td><td class=n>{last['value']:.3f}</td>"
            f"<td class=n>{last['threshold']:.3f}</td>"
            f"<td class=n>{_flag(over)} of {len(seen):,}</td>"
            f"<td class=n>{top['value']:.3f} (window {top_n})</td><td>{state}</td></tr>"
        )
    if not lines:
        return "<section><h2>Statistics</h2><p>No window.</p></section>"
    return (
        "<section><h2>Statistics</h2><table><tr><th>statistic</th><th class=n>last</th>"
        "<th class=n>threshold</th><th class=n>windows over</th><th class=n>largest</th>"
        f"<th>now</th></tr>{''.join(lines)}</table></section>"
    )


def _charts_section(rows: list[dict[str, Any]], found: list[Episode]) -> str:
    images = []
    for metric in _metrics(rows):
        spans = [(e.first, e.last) for e in found if e.metric == metric]
        images.append(f'<img class=chart src="{_statistic_chart(rows, metric, spans)}" '
                      f'alt="{_e(metric)} per window">')  # fmt: skip
    return (
        "<section><h2>Statistics per window</h2><p class=note>Each point is one window, "
        "numbered in the order the windows closed; "
        "the dashed line is the threshold, red points are over it, and red bands are drift "
        f"episodes.</p><div class=charts>{''.join(images)}</div></section>"
    )


def _accuracy_section(rows: list[dict[str, Any]]) -> str:
    labelled = [(n, row) for n, row in enumerate(rows, 1)
                if row.get("accuracy") is not None and row.get("labelled")]  # fmt: skip
    if not labelled:
        return ("<section><h2>Live accuracy</h2><p>No labelled frame in the range: frames "
                "carry ground truth when producers set <code>fw-label</code>.</p>"
                "</section>")  # fmt: skip
    lines = []
    for version, own in _by_version([row for _, row in labelled]).items():
        frames = sum(row["labelled"] for _, row in own)
        right = sum(row["accuracy"] * row["labelled"] for _, row in own)
        worst = min(row["accuracy"] for _, row in own)
        lines.append(f"<tr><td>{_e(version)}</td><td class=n>{len(own):,}</td>"
                     f"<td class=n>{frames:,}</td><td class=n>{right / frames:.3f}</td>"
                     f"<td class=n>{worst:.3f}</td></tr>")  # fmt: skip
    return (
        "<section><h2>Live accuracy</h2><p class=note>Over the frames of each window that "
        "carried a ground-truth label.</p><div class=pair>"
        "<table><tr><th>version</th><th class=n>windows</th><th class=n>labelled</th>"
        f"<th class=n>accuracy</th><th class=n>worst window</th></tr>{''.join(lines)}</table>"
        f'<img class=chart src="{_accuracy_chart(rows, labelled)}" alt="live accuracy">'
        f"</div>{_streams_table(rows)}</section>"
    )


def _streams_table(rows: list[dict[str, Any]]) -> str:
    """Accuracy per stream, where the window reports carry it (accuracy_by_stream)."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        for stream, (right, seen) in (row.get("accuracy_by_stream") or {}).items():
            total = totals.setdefault(str(stream), [0.0, 0.0])
            total[0] += right
            total[1] += seen
    shown = sorted((right / n, stream, n) for stream, (right, n) in totals.items() if n)
    if not shown:
        return ""
    body = "".join(f"<tr><td class=path>{_e(stream)}</td><td class=n>{n:,.0f}</td>"
                   f"<td class=n>{accuracy:.3f}</td></tr>"
                   for accuracy, stream, n in shown)  # fmt: skip
    return (
        "<h3>Per stream, worst first</h3><table><tr><th>stream</th><th class=n>labelled</th>"
        f"<th class=n>accuracy</th></tr>{body}</table>"
    )


def _quality_section(rows: list[dict[str, Any]], limits: Thresholds,
                     events: list[dict[str, Any]]) -> str:  # fmt: skip
    flagged: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for number, row in enumerate(rows, 1):
        for item in row.get("quality") or ():
            key = (str(item.get("stream_id")), str(item.get("check")))
            flagged.setdefault(key, []).append((number, float(item.get("share") or 0)))
    intro = (f"<p class=note>A stream whose frames in a window are mostly (over "
             f"{limits.bad_share:.0%}) blank, over- or under-exposed; the monitor sends a "
             f"data_quality event when that lasts {limits.confirm} windows.</p>")  # fmt: skip
    body = "".join(
        f"<tr><td class=path>{_e(stream)}</td><td>{_e(check)}</td>"
        f"<td class=n>{len(hits):,}</td><td>{_ranges([n for n, _ in hits])}</td>"
        f"<td class=n>{max(s for _, s in hits):.0%}</td></tr>"
        for (stream, check), hits in sorted(flagged.items())
    )
    table = (
        "<table><tr><th>stream</th><th>check</th><th class=n>windows</th><th>window numbers</th>"
        f"<th class=n>largest share</th></tr>{body}</table>"
        if body else "<p>No stream flagged in any window.</p>"
    )  # fmt: skip
    frozen = sorted({(str(e.get("stream_id")), _ms(e.get("ts")) or 0) for e in events
                     if e.get("check") == "frozen"})  # fmt: skip
    frozen_list = "".join(f"<li><span class=path>{_e(s)}</span> at {_time(ts)}</li>"
                          for s, ts in frozen)  # fmt: skip
    frozen_part = (f"<h3>Frozen streams</h3><p class=note>The same observation several "
                   f"times in a row.</p><ul>{frozen_list}</ul>" if frozen else "")  # fmt: skip
    return f"<section><h2>Data quality</h2>{intro}{table}{frozen_part}</section>"


# -- charts ------------------------------------------------------------------------------


def _statistic_chart(rows: list[dict[str, Any]], metric: str,
                     spans: list[tuple[int, int]]) -> str:  # fmt: skip
    fig, ax = plt.subplots(figsize=(5.0, 2.7))
    for first, last in spans:
        ax.axvspan(first - 0.5, last + 0.5, color=OVER, alpha=0.10, linewidth=0)
    points = [(n, row["findings"][metric]) for n, row in enumerate(rows, 1)
              if metric in row.get("findings", {})]  # fmt: skip
    numbers = np.array([n for n, _ in points], float)
    ax.hlines([f["threshold"] for _, f in points], numbers - 0.5, numbers + 0.5,
              colors=THRESHOLD, linestyles="dashed", linewidth=1.2)  # fmt: skip
    versions = _by_version(rows)
    for i, (version, own) in enumerate(versions.items()):
        mine = [(n, row["findings"][metric]["value"]) for n, row in own
                if metric in row.get("findings", {})]  # fmt: skip
        if mine:
            ax.plot(*_xy(mine), marker="o", markersize=3, linewidth=1.2, color=_colour(i),
                    label=_version_label(version, len(versions)))  # fmt: skip
    over = [(n, f["value"]) for n, f in points if _over(f)]
    if over:
        ax.scatter(*_xy(over), s=26, color=OVER, zorder=3)
    ax.set_ylim(bottom=0)
    _axes(ax, metric, "value")
    return png(fig)


def _accuracy_chart(rows: list[dict[str, Any]], labelled: list[tuple[int, dict]]) -> str:
    fig, ax = plt.subplots(figsize=(5.0, 2.7))
    versions = _by_version(rows)
    for i, (version, own) in enumerate(versions.items()):
        mine = [(n, row["accuracy"]) for n, row in own
                if row.get("accuracy") is not None and row.get("labelled")]  # fmt: skip
        if mine:
            ax.plot(*_xy(mine), marker="o", markersize=3, linewidth=1.2, color=_colour(i),
                    label=_version_label(version, len(versions)))  # fmt: skip
    lowest = min(row["accuracy"] for _, row in labelled)
    ax.set_ylim(max(0.0, min(lowest, 0.9) - 0.05), 1.01)
    ax.set_xlim(0.5, len(rows) + 0.5)  # the same windows as the statistics' charts
    _axes(ax, "live accuracy", "accuracy")
    return png(fig)


def _axes(ax: plt.Axes, title: str, ylabel: str) -> None:
    ax.set_title(_plain(title), fontsize=10, loc="left")
    ax.set_xlabel("window")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Versions only: the threshold, the points over it and the bands are the same on every
    # chart, and the note above the charts says what they are.
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", bbox_to_anchor=(1, 1.0), frameon=False, fontsize=7,
                  ncols=3, handlelength=1.2, borderaxespad=0.2)  # fmt: skip
    tidy(ax)


def _colour(index: int) -> str:
    return VERSION_COLOURS[index % len(VERSION_COLOURS)]


def _xy(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [n for n, _ in points], [v for _, v in points]


def _version_label(version: str, count: int) -> str | None:
    """A legend entry per version when there are several; one line needs none."""
    return _plain(f"version {version.rpartition(':')[2]}") if count > 1 else None


def _ranges(numbers: list[int]) -> str:
    """[2, 3, 7, 8, 9] -> "2-3, 7-9" (en dashes)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}&ndash;{b}" if b > a else f"{a}" for a, b in runs)


def _span(start_ms: int | None, end_ms: int | None) -> str:
    if not start_ms:
        return ""
    return _time(start_ms) + (f" to {_time(end_ms)}" if end_ms and end_ms != start_ms else "")


# -- text ---------------------------------------------------------------------------------


def _time(ms: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _flag(count: int) -> str:
    return f'<span class="bad">{count:,}</span>' if count else "0"


def _plain(text: str) -> str:
    """Text for matplotlib: a `$` would start mathtext, which may not even parse."""
    return str(text).replace("$", r"\$")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
