"""`--plot FILE.png`: latency against offered load, throughput against batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PlotUnavailable(RuntimeError):
    pass


def draw(summary: dict[str, Any], path: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers and CI
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'framewire[bench]'"
        ) from None
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4.2))
    loads = summary["loads"]
    x = [p["offered_fps"] for p in loads]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        lat.plot(x, [p[key] for p in loads], marker="o", label=key.split("_")[0])
    lat.set_xlabel("offered load (frames/s)")
    lat.set_ylabel("capture to result in Redis (ms)")
    lat.set_title("latency under load")
    lat.set_ylim(bottom=0)
    lat.legend()

    curve = summary.get("batch_curve") or {}
    if curve:
        sizes = sorted(int(b) for b in curve)
        thr.plot(sizes, [curve[str(b)] for b in sizes], marker="o", label="model only")
    thr.scatter([p["mean_batch"] for p in loads], [p["achieved_fps"] for p in loads],
                color="C3", zorder=3, label="pipeline at each load (mean batch)")  # fmt: skip
    thr.axhline(summary["decode_fps"], color="grey", linestyle="--", label="decode ceiling")
    thr.axhline(summary["pipeline_fps"], color="C2", linestyle=":", label="pipeline saturated")
    thr.set_xscale("log", base=2)
    thr.set_xlabel("batch size")
    thr.set_ylabel("frames/s")
    thr.set_title("throughput against batch size")
    thr.legend(fontsize=8)
    fig.suptitle(f"framewire bench: {summary['model']} on {summary['device_name']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
