"""The benchmark's summary: the JSON object (the contract) and the table people read."""

from __future__ import annotations

import json
from typing import Any

# Fields every `framewire bench --json` object has but --model null's (tests check them).
REQUIRED_FIELDS = (
    "model_only_fps", "decode_fps", "pipeline_fps", "naive_fps",
    "ratio_to_ceiling", "speedup_vs_naive", "loads", "decode_on", "decode_on_reason",
)  # fmt: skip
LOAD_FIELDS = ("load", "offered_fps", "p50_ms", "p95_ms", "p99_ms", "mean_batch")
# Fields of `framewire bench --model null --json` (no decode ceiling, no naive baseline).
NULL_MODEL_FIELDS = (
    "model_only_fps", "pipeline_fps", "framework_fps", "bare_consume_fps",
    "framework_to_bare_ratio", "loads", "decode_on",
)  # fmt: skip


def ratios(model_only_fps: float, decode_fps: float, pipeline_fps: float,
           naive_fps: float) -> dict[str, float]:  # fmt: skip
    ceiling = min(model_only_fps, decode_fps)
    # Where decode and model share the same cores (a CPU device), each frame pays both:
    # the combined ceiling is 1 / (1/model + 1/decode), lower than either alone.
    shared = 1 / (1 / model_only_fps + 1 / decode_fps) if model_only_fps and decode_fps else 0.0
    return {
        "ceiling_fps": round(ceiling, 1),
        "ratio_to_ceiling": round(pipeline_fps / ceiling, 3) if ceiling > 0 else 0.0,
        "shared_core_ceiling_fps": round(shared, 1),
        "ratio_to_shared_core_ceiling": round(pipeline_fps / shared, 3) if shared else 0.0,
        "speedup_vs_naive": round(pipeline_fps / naive_fps, 2) if naive_fps > 0 else 0.0,
    }


def framework_ratio(pipeline_fps: float, bare_consume_fps: float) -> dict[str, float]:
    """With the null model the pipeline's rate is the framework's own: its share of what a
    bare consumer reads from the same broker."""
    ratio = pipeline_fps / bare_consume_fps if bare_consume_fps > 0 else 0.0
    return {"framework_fps": pipeline_fps, "framework_to_bare_ratio": round(ratio, 3)}


def frames_label(s: dict[str, Any]) -> str:
    """'640x480 JPEG frames (~61 KB)', or '8x8 raw-bgr8 frames (192 bytes)'."""
    encoding = s.get("frame_encoding", "jpeg")
    if encoding == "jpeg":
        return f"{s['frame_size']} JPEG frames (~{s['frame_kb']:.0f} KB)"
    return f"{s['frame_size']} {encoding} frames ({s['frame_bytes']} bytes)"


def format_table(s: dict[str, Any]) -> str:
    """The human-readable report of a summary."""
    b = s["max_batch"]
    lines = [
        f"framewire bench: {s['model']} on {s['device_name']}, input {s['input']}, "
        f"{frames_label(s)}, max batch {b}",
        f"  JPEG frames decoded on the {s['decode_on']}: {s['decode_on_reason']}",
        "",
        f"  {'stage':36s} {'throughput':>18s}   note",
        *(f"  {name:36s} {fps:>18s}   {note}" for name, fps, note in _rows(s)),
        "",
        *_ratio_lines(s),
        "",
        f"  {'offered load':>14s} {'frames/s':>9s} {'p50 ms':>8s} {'p95 ms':>8s} "
        f"{'p99 ms':>8s} {'mean batch':>11s}",
    ]
    for point in s["loads"]:
        lines.append(
            f"  {point['load']:>13.0%}  {point['offered_fps']:>9,.0f} {point['p50_ms']:>8.1f} "
            f"{point['p95_ms']:>8.1f} {point['p99_ms']:>8.1f} {point['mean_batch']:>11.2f}"
        )
    for key, title in (
        ("parts_p50_ms", "where the time goes, medians per load (ms; queue: capture to decode "
                         "start):"),
        ("parts_tail_ms", "the same for the slowest 1% of frames (latency at or above p99):"),
    ):  # fmt: skip
        lines += ["", f"  {title}"]
        for point in s["loads"]:
            parts = point.get(key) or {}
            lines.append(f"  {point['load']:>13.0%}  "
                         + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))  # fmt: skip
    if any(point.get("cpu_ms_per_frame") for point in s["loads"]):
        lines += ["", "  CPU per frame sent beside the worker, per load (ms; bench: its producer):"]
        for point in s["loads"]:
            busy = point.get("machine_busy")
            lines.append(f"  {point['load']:>13.0%}  "
                         + ", ".join(f"{k} {v:.2f}" for k, v in point["cpu_ms_per_frame"].items())
                         + (f"; machine {busy:.0%} busy" if busy is not None else ""))  # fmt: skip
    stage = s["pipeline_stage_ms"]
    lines += [
        "",
        "  at saturation, per frame (worker's result/1 latency parts, ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in stage.items()),
    ]
    costs = s["stage_costs"]
    if costs.get("worker_cpu_ms_per_frame") is not None:
        busy = costs.get("machine_busy")
        lines.append(
            f"  worker CPU per frame {costs['worker_cpu_ms_per_frame']:.2f} ms"
            + (f"; machine {busy:.0%} busy while saturated" if busy is not None else "")
        )
    threads = costs.get("worker_thread_cpu_ms_per_frame")
    if threads:
        lines.append("  worker CPU per frame by thread (ms): "
                     + ", ".join(f"{name} {ms:.2f}" for name, ms in threads.items()))  # fmt: skip
    stack = costs.get("stack_cpu_ms_per_frame")
    if stack:
        lines.append("  embedded stack CPU per frame (ms): "
                     + ", ".join(f"{name} {ms:.2f}" for name, ms in stack.items()))  # fmt: skip
    return "\n".join(lines)


def _rows(s: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(stage, throughput, note) for each figure the run measured."""
    b = s["max_batch"]
    rows = [
        (f"model only, batch {b}", f"{s['model_only_fps']:,.0f} frames/s",
         f"{1000 / s['model_only_fps'] * b:.2f} ms per batch"),
        ("model only, batch 1", f"{s['model_only_batch1_fps']:,.0f} frames/s",
         f"{s['single_frame_model_ms']:.2f} ms per frame"),
    ]  # fmt: skip
    if s.get("decode_on") == "device" and "decode_fps" in s:
        rows.append((f"decode + prepare, GPU, batch {b}", f"{s['decode_fps']:,.0f} frames/s",
                     f"{s['device_decode_mean_abs_diff']:.2f} grey levels from the CPU's "
                     "pixels"))  # fmt: skip
    if "decode_cpu_fps" in s:
        cpu_ms = s["stage_costs"]["decode_cpu_ms_per_frame"]
        rows.append((f"decode + prepare, {s['decode_threads']} CPU threads",
                     f"{s['decode_cpu_fps']:,.0f} frames/s",
                     f"{cpu_ms:.2f} ms CPU per frame"))  # fmt: skip
    if "bare_consume_fps" in s:
        rows.append(("bare consumer (no processing)", f"{s['bare_consume_fps']:,.0f} records/s",
                     "the broker's own ceiling"))  # fmt: skip
    rows.append(("pipeline (Kafka > worker > Redis)", f"{s['pipeline_fps']:,.0f} frames/s",
                 f"mean batch {s['pipeline_mean_batch']:.1f}"))  # fmt: skip
    if "naive_fps" in s:
        rows.append(("naive (1 frame at a time)", f"{s['naive_fps']:,.0f} frames/s", ""))
    return rows


def _ratio_lines(s: dict[str, Any]) -> list[str]:
    if "framework_to_bare_ratio" in s:
        return [
            f"  framework to bare consumer  {s['framework_to_bare_ratio']:.2f}   (pipeline / "
            f"bare consumer = {s['framework_fps']:,.0f} / {s['bare_consume_fps']:,.0f}; decode "
            "and model cost nearly nothing: the rest is the framework)",
        ]
    return [
        f"  ratio to ceiling  {s['ratio_to_ceiling']:.2f}   (pipeline / min(model only, decode)"
        f" = {s['pipeline_fps']:,.0f} / {s['ceiling_fps']:,.0f})",
        f"  ratio to shared-core ceiling  {s['ratio_to_shared_core_ceiling']:.2f}   "
        f"(1 / (1/model + 1/decode) = {s['shared_core_ceiling_fps']:,.0f}; on a CPU device "
        "both stages use the same cores)",
        f"  speedup vs naive  {s['speedup_vs_naive']:.2f}x",
    ]


def format_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, sort_keys=True)
