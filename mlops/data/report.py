"""`framewire data report`: one self-contained HTML page about a dataset version.

Tables where people read (counts, unreadable files, duplicates), pictures where they look
(class balance, sizes, brightness, contrast, sharpness, a sample grid per class). Charts
and thumbnails are inline data URIs: the page is one file and needs no network. Every
text that came from outside (file names, labels from Kafka headers) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlops.data import charts
from mlops.data.duplicates import NEAR_DISTANCE, DuplicateGroup, exact_duplicates, similar_images
from mlops.data.stats import WORK_SIDE, ImageStats, measure
from mlops.data.store import SPLITS, DatasetStore, DatasetVersion, Item

SAMPLES_PER_CLASS = 10  # one row of the page
THUMB_SIDE = 96
MAX_GROUPS_SHOWN = 200  # duplicate groups listed; the count says how many more
MAX_MEMBERS_SHOWN = 20
_NO_LABEL = "(none)"


@dataclass(frozen=True)
class ReportSummary:
    out: Path
    items: int
    unreadable: tuple[tuple[str, str], ...]  # (source, problem), every copy named
    duplicates: tuple[DuplicateGroup, ...]


def write_report(
    store: DatasetStore, version: DatasetVersion, out: Path, threads: int | None = None
) -> ReportSummary:
    """Measure every item of version, write the page to out, and say what it found."""
    samples = _sample_candidates(version.items)
    stats, thumbs = _measure_all(store, version.items, samples, threads)
    groups = exact_duplicates(version) + similar_images(version, stats)
    groups.sort(key=lambda g: (not g.labels_differ, not g.splits_differ, g.members[0].source))
    unreadable = _unreadable(version, stats)
    page = _page(version, [
        _summary(version, stats, unreadable, groups),
        _balance(version),
        _unreadable_section(unreadable, stats),
        _duplicates_section(groups),
        _properties(version, stats),
        _samples(version, samples, stats, thumbs),
    ])  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    problems = tuple((source, stats[item.blob].problem or "") for item, source in unreadable)
    return ReportSummary(out, len(version.items), problems, tuple(groups))


# -- measuring ---------------------------------------------------------------------------


def _sample_candidates(items: Iterable[Item]) -> dict[str, list[Item]]:
    """Per label, the first items by source: twice the grid, as some may not decode."""
    by_label: dict[str, list[Item]] = defaultdict(list)
    for item in sorted(items, key=lambda item: item.source):
        if len(by_label[item.label or _NO_LABEL]) < 2 * SAMPLES_PER_CLASS:
            by_label[item.label or _NO_LABEL].append(item)
    return dict(sorted(by_label.items()))


def _measure_all(
    store: DatasetStore, items: Iterable[Item], samples: dict[str, list[Item]],
    threads: int | None,
) -> tuple[dict[str, ImageStats], dict[str, bytes]]:  # fmt: skip
    wanted = {item.blob for chosen in samples.values() for item in chosen}

    def one(blob: str) -> tuple[str, ImageStats, bytes | None]:
        try:
            data = store.read_blob(blob)
        except OSError:
            return blob, ImageStats("unknown", 0, "missing from the dataset store"), None
        stats, thumb = measure(data, THUMB_SIDE if blob in wanted else 0)
        return blob, stats, thumb

    # OpenCV releases the GIL while it decodes: threads use the cores.
    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix="fw-report") as pool:
        results = list(pool.map(one, sorted({item.blob for item in items})))
    stats = {blob: s for blob, s, _ in results}
    return stats, {blob: thumb for blob, _, thumb in results if thumb}


def _unreadable(version: DatasetVersion, stats: dict[str, ImageStats]) -> list[tuple[Item, str]]:
    """(item, source) of every file that does not decode, copies with the same bytes too."""
    rows = []
    for item in version.items:
        if stats[item.blob].problem:
            rows.append((item, item.source))
            rows += [(item, source) for source, _ in version.also.get(item.blob, ())]
    return sorted(rows, key=lambda row: row[1])


# -- sections ----------------------------------------------------------------------------


def _summary(
    version: DatasetVersion, stats: dict[str, ImageStats], unreadable: list,
    groups: list[DuplicateGroup],
) -> str:  # fmt: skip
    counts = Counter(item.split for item in version.items)
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(version.created_at))
    copies = sum(len(c) for c in version.also.values())
    leaks = sum(g.splits_differ for g in groups)
    conflicts = sum(g.labels_differ for g in groups)
    rows = [
        ("items", f"{len(version.items):,}" + (f" (+{copies:,} byte-identical "
                                               f"cop{'y' if copies == 1 else 'ies'})"
                                               if copies else "")),
        ("splits", " · ".join(f"{s} {counts[s]:,}" for s in SPLITS)),
        ("labels", f"{len(version.labels):,}"),
        ("created", created),
        ("parent", version.parent or "none"),
        ("unreadable files", _flag(len(unreadable))),
        ("duplicate groups", _flag(len(groups)) + (f" ({leaks} across splits, {conflicts} "
                                                    "with two labels)" if groups else "")),
    ]  # fmt: skip
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section><table class="summary">{body}</table></section>'


def _balance(version: DatasetVersion) -> str:
    counts = version.counts()
    labels = sorted({lb for split in counts.values() for lb in split})
    total = len(version.items) or 1
    head = "".join(f'<th class="n"><span class="dot {s}"></span>{s}</th>' for s in SPLITS)
    rows = []
    for label in labels:
        cells = [counts[s].get(label, 0) for s in SPLITS]
        row = "".join(f'<td class="n">{n:,}</td>' for n in cells)
        rows.append(f"<tr><td>{_e(label)}</td>{row}<td class=\"n\">{sum(cells):,}</td>"
                    f'<td class="n">{100 * sum(cells) / total:.1f}%</td></tr>')  # fmt: skip
    more = ""
    if len(labels) > charts.MAX_BAR_LABELS:
        more = (f"<p class=note>The chart shows the {charts.MAX_BAR_LABELS} largest of "
                f"{len(labels)} labels.</p>")  # fmt: skip
    return (
        "<section><h2>Class balance per split</h2><div class=pair>"
        f"<table><tr><th>label</th>{head}<th class=n>total</th><th class=n>share</th></tr>"
        f"{''.join(rows)}</table>"
        f'<img class=chart src="{charts.class_balance(counts)}" alt="class balance">'
        f"</div>{more}</section>"
    )


def _unreadable_section(rows: list[tuple[Item, str]], stats: dict[str, ImageStats]) -> str:
    if not rows:
        return "<section><h2>Unreadable files</h2><p>None: every file decodes.</p></section>"
    body = "".join(
        f"<tr><td class=path>{_e(source)}</td><td>{_e(item.label or _NO_LABEL)}</td>"
        f"<td>{item.split}</td><td>{stats[item.blob].format}</td>"
        f'<td class="n">{stats[item.blob].size_bytes:,}</td>'
        f"<td>{_e(stats[item.blob].problem or '')}</td></tr>"
        for item, source in rows
    )
    return (
        f"<section><h2>Unreadable files ({len(rows)})</h2><p class=note>Imported as they "
        "are; training skips them. Fix or remove the files and import again.</p>"
        "<table><tr><th>file</th><th>label</th><th>split</th><th>format</th>"
        f'<th class="n">bytes</th><th>problem</th></tr>{body}</table></section>'
    )


def _duplicates_section(groups: list[DuplicateGroup]) -> str:
    intro = (
        "<p class=note><b>same bytes</b>: identical files, stored once. <b>same pixels</b>: "
        "identical pictures in other files. <b>near</b>: difference hashes within "
        f"{NEAR_DISTANCE} of 64 bits (re-encoded, rescaled, slightly edited). A group across "
        "splits leaks validation or test images into training; one with two labels is a "
        "labelling error.</p>"
    )
    if not groups:
        return f"<section><h2>Duplicates</h2>{intro}<p>None found.</p></section>"
    rows = "".join(_group_row(n, g) for n, g in enumerate(groups[:MAX_GROUPS_SHOWN], 1))
    more = (f"<p class=note>{len(groups) - MAX_GROUPS_SHOWN} more groups not shown.</p>"
            if len(groups) > MAX_GROUPS_SHOWN else "")  # fmt: skip
    return (
        f"<section><h2>Duplicates ({len(groups)} groups)</h2>{intro}"
        "<table><tr><th>#</th><th>kind</th><th>files (label, split)</th><th>warning</th></tr>"
        f"{rows}</table>{more}</section>"
    )


def _group_row(number: int, group: DuplicateGroup) -> str:
    files = "<br>".join(
        f"<span class=path>{_e(m.source)}</span> <span class=meta>({_e(m.label or _NO_LABEL)}"
        f", {m.split})</span>"
        for m in group.members[:MAX_MEMBERS_SHOWN]
    )
    if len(group.members) > MAX_MEMBERS_SHOWN:
        files += f"<br>... and {len(group.members) - MAX_MEMBERS_SHOWN} more"
    warnings = []
    if group.labels_differ:
        warnings.append("labels differ")
    if group.splits_differ:
        warnings.append("crosses splits")
    kind = group.kind + (f" (≤{group.distance} bits)" if group.kind == "near" else "")
    warn = f'<span class="warn">{", ".join(warnings)}</span>' if warnings else ""
    return f"<tr><td>{number}</td><td>{kind}</td><td>{files}</td><td>{warn}</td></tr>"


def _properties(version: DatasetVersion, stats: dict[str, ImageStats]) -> str:
    readable = [(item, stats[item.blob]) for item in version.items if not stats[item.blob].problem]
    if not readable:
        return "<section><h2>Image properties</h2><p>No image decodes.</p></section>"
    sizes = Counter((s.width or 0, s.height or 0) for _, s in readable)
    size_rows = "".join(f"<tr><td>{w} x {h}</td><td class=n>{n:,}</td></tr>"
                        for (w, h), n in sizes.most_common(8))  # fmt: skip
    figures = [f'<img class=chart src="{charts.image_sizes(list(sizes.elements()))}" '
               'alt="image sizes">'] if len(sizes) > 1 else []  # fmt: skip
    for field, title, xlabel, log in (
        ("brightness", "brightness", "mean grey level (0-255)", False),
        ("contrast", "contrast", "grey standard deviation", False),
        ("sharpness", "sharpness", "variance of the Laplacian (log scale)", True),
    ):
        by_split = {s: [getattr(st, field) for it, st in readable if it.split == s]
                    for s in SPLITS}  # fmt: skip
        figures.append(f'<img class=chart src="{charts.distribution(by_split, title, xlabel, log)}"'
                       f' alt="{title}">')  # fmt: skip
    return (
        "<section><h2>Image properties</h2>"
        f"<p class=note>Measured on each image scaled to at most {WORK_SIDE} px on its long "
        "side, so figures compare across sizes. Curves are per split (area 1 each): a split "
        "whose curve stands apart was not drawn from the same images.</p>"
        f"<div class=pair><table><tr><th>size (w x h)</th><th class=n>images</th></tr>"
        f"{size_rows}</table></div><div class=charts>{''.join(figures)}</div></section>"
    )


def _samples(
    version: DatasetVersion, samples: dict[str, list[Item]], stats: dict[str, ImageStats],
    thumbs: dict[str, bytes],
) -> str:  # fmt: skip
    totals = Counter(item.label or _NO_LABEL for item in version.items)
    blocks = []
    for label, items in samples.items():
        shown = [item for item in items if item.blob in thumbs][:SAMPLES_PER_CLASS]
        tiles = "".join(
            f'<figure title="{_e(item.source)}"><img src="data:image/jpeg;base64,'
            f'{base64.b64encode(thumbs[item.blob]).decode()}" alt="{_e(item.source)}">'
            f"<figcaption>{_e(_short(item.source))}</figcaption></figure>"
            for item in shown
        ) or "<p class=note>No sample decodes.</p>"
        blocks.append(f"<h3>{_e(label)} <span class=meta>({totals[label]:,} images)</span></h3>"
                      f"<div class=grid>{tiles}</div>")  # fmt: skip
    return f"<section><h2>Samples per class</h2>{''.join(blocks)}</section>"


# -- page --------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
 margin:0 auto;max-width:1180px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;
 padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 10px;text-align:left;
 vertical-align:top;border-bottom:1px solid #eee}th{background:#f6f6f6;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.summary th{width:170px}
.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.meta{color:#777;font-weight:normal}.note{color:#555;max-width:900px}
.warn{color:#b00020;font-weight:600}.bad{color:#b00020;font-weight:600}
.pair{display:flex;gap:28px;align-items:flex-start;flex-wrap:wrap}
.charts{display:flex;gap:12px;flex-wrap:wrap}img.chart{max-width:100%;height:auto}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px}
.dot.train{background:#4C72B0}.dot.validation{background:#DD8452}.dot.test{background:#55A868}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:104px}figure img{width:96px;height:96px;object-fit:contain;
 background:#f2f2f2;border:1px solid #ddd;image-rendering:pixelated}
figcaption{font-size:11px;color:#555;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
"""


def _page(version: DatasetVersion, sections: list[str]) -> str:
    title = f"Dataset {version.ref}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<p class=meta>framewire data report · {len(version.items):,} items</p>"
        f"{''.join(sections)}</body></html>\n"
    )


def _flag(count: int) -> str:
    return f'<span class="bad">{count:,}</span>' if count else "0"


def _short(source: str) -> str:
    """A caption: the file name, or partition/offset of a frame (the whole source is the
    tile's title); the stylesheet cuts what does not fit."""
    parts = source.rsplit("/", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return f"{parts[1]}/{parts[2]}"
    return parts[-1]


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
