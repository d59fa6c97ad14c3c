"""The data report's charts: matplotlib (Agg, no display) figures as inline PNG data URIs,
so the page is one file that needs no network."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: never a display, in a CLI or a worker
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from mlops.data.store import SPLITS

# One colour per split, everywhere on the page (the tables use the same ones).
SPLIT_COLOURS = {"train": "#4C72B0", "validation": "#DD8452", "test": "#55A868"}
_DPI = 110
MAX_BAR_LABELS = 40  # more classes than this: the largest, and a note


def class_balance(counts: Mapping[str, Mapping[str, int]]) -> str:
    """Horizontal stacked bars, one per label, one colour per split."""
    totals: dict[str, int] = {}
    for split in counts.values():
        for label, n in split.items():
            totals[label] = totals.get(label, 0) + n
    labels = sorted(totals, key=lambda lb: (-totals[lb], lb))[:MAX_BAR_LABELS]
    labels.reverse()  # largest on top
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.32 * max(len(labels), 2)))
    left = np.zeros(len(labels))
    for split in SPLITS:
        values = np.array([counts[split].get(lb, 0) for lb in labels])
        ax.barh(labels, values, left=left, color=SPLIT_COLOURS[split], label=split, height=0.7)
        left += values
    ax.set_xlabel("images")
    ax.legend(loc="lower right", frameon=False, ncols=3, bbox_to_anchor=(1, 1.0))
    tidy(ax)
    return png(fig)


def image_sizes(sizes: Sequence[tuple[int, int]]) -> str:
    """Width against height, a point's area growing with how many images share the size."""
    unique, count = np.unique(np.array(sizes), axis=0, return_counts=True)
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ax.scatter(unique[:, 0], unique[:, 1], s=20 + 200 * count / count.max(), alpha=0.6,
               color="#4C72B0", edgecolors="none")  # fmt: skip
    top = max(unique.max(), 1) * 1.08
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("image sizes", fontsize=10)
    tidy(ax)
    return png(fig)


def distribution(
    by_split: Mapping[str, Sequence[float]], title: str, xlabel: str, log: bool = False
) -> str:
    """One step histogram per split, on shared bins (log-spaced when log)."""
    values = np.concatenate([np.asarray(v, float) for v in by_split.values() if len(v)])
    if log:
        values = np.maximum(values, 1e-2)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1
    # Few bins for few images: 30 bins over 14 validation images draw noise, not a shape.
    edges = int(np.clip(np.sqrt(len(values)), 8, 30)) + 1
    bins = np.geomspace(low, high, edges) if log else np.linspace(low, high, edges)
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for split in SPLITS:
        data = np.asarray(by_split.get(split, ()), float)
        if len(data):
            data = np.maximum(data, 1e-2) if log else data
            ax.hist(data, bins=bins, histtype="step", linewidth=1.6,
                    color=SPLIT_COLOURS[split], label=split, density=True)  # fmt: skip
    if log:
        ax.set_xscale("log")
        # Plain numbers (3,000), not matplotlib's 3x10^3 on minor ticks.
        plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        if high / low < 10:  # within a decade there is no major tick: label the minor ones
            ax.xaxis.set_minor_formatter(plain)
            ax.tick_params(axis="x", which="minor", labelsize=7)
        else:
            ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    tidy(ax)
    return png(fig)


def tidy(ax: plt.Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=_DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
