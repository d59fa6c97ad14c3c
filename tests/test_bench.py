"""`framewire bench` runs end to end (tiny N) and its JSON has every field.

Speed is what the benchmark reports, never what a test asserts: these tests check that
each phase ran and produced sane numbers, not how fast anything was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foundation.settings import Settings
from framewire.bench import REQUIRED_FIELDS, BenchOptionError, parse_frame_size
from framewire.bench import profile as profile_module
from framewire.bench.frames import FramePool
from framewire.bench.model import model_directory
from framewire.bench.profile import record_command
from framewire.bench.report import LOAD_FIELDS, NULL_MODEL_FIELDS
from models import load_model
from models.spec import InputSpec, prepare
from schemas import Frame
from tests.cli_helpers import invoke
from workers.decode import FrameDecoder
from workers.engine import InferenceEngine


def _invoke(settings: Settings, *args: str):
    return invoke(settings, "bench", *args, env={"FRAMEWIRE_PARTITIONS": "2"})


@pytest.mark.timeout(150)
def test_bench_runs_end_to_end_and_reports_every_field(settings: Settings, tmp_path) -> None:
    profile = tmp_path / "worker.txt"
    result = _invoke(
        settings, "--device", "cpu", "--frames", "60", "--load-seconds", "1",
        "--naive-seconds", "3", "--json", "--profile", str(profile),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for name in REQUIRED_FIELDS:
        assert name in summary, name
    for name in ("model_only_fps", "decode_fps", "pipeline_fps", "naive_fps",
                 "model_only_batch1_fps", "ratio_to_ceiling", "speedup_vs_naive"):  # fmt: skip
        assert summary[name] > 0, (name, summary[name])
    ceiling = min(summary["model_only_fps"], summary["decode_fps"])
    assert summary["ratio_to_ceiling"] == pytest.approx(summary["pipeline_fps"] / ceiling, 0.01)
    assert summary["pipeline_frames"] == 60
    assert [p["load"] for p in summary["loads"]] == [0.1, 0.5, 0.8]
    for point in summary["loads"]:
        for name in LOAD_FIELDS:
            assert point[name] > 0, (point, name)
        assert point["results"] == point["sent"]
        assert point["p50_ms"] <= point["p95_ms"] <= point["p99_ms"]
        assert 1 <= point["mean_batch"] <= summary["max_batch"]
        parts = point["parts_p50_ms"]
        assert set(parts) == {"queue", "decode", "batch_wait", "inference", "write"}
        assert parts["inference"] > 0, parts  # (write can round below 0: two clocks, ms)
        tail = point["parts_tail_ms"]  # the slowest 1%: their parts add up to about p99
        assert set(tail) == set(parts) and tail["inference"] > 0, tail
        assert sum(tail.values()) >= 0.5 * point["p99_ms"], (tail, point["p99_ms"])
        # What the bench's own producer spent beside the worker (the broker's and Redis's
        # too where they are the embedded stack's; the test's own servers are not).
        assert point["cpu_ms_per_frame"]["bench"] > 0 and 0 < point["machine_busy"] <= 1
    assert "ratio to ceiling" in result.output  # the table precedes the JSON line
    # py-spy sampled the saturated worker: stacks of its named threads.
    assert profile.exists(), result.output
    assert "thread (" in profile.read_text() and "framewire-" in profile.read_text()


@pytest.mark.timeout(120)
def test_bench_null_model_reports_the_framework_against_a_bare_consumer(
    settings: Settings,
) -> None:
    # Two offered rates of its own instead of 10/50/80% of saturation (--rates).
    result = _invoke(settings, "--model", "null", "--device", "cpu", "--frames", "200",
                     "--load-seconds", "0.5", "--rates", "150,400", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for name in NULL_MODEL_FIELDS:
        assert name in summary, name
    for name in ("framework_fps", "bare_consume_fps", "framework_to_bare_ratio"):
        assert summary[name] > 0, (name, summary[name])
    ratio = summary["framework_fps"] / summary["bare_consume_fps"]
    assert summary["framework_to_bare_ratio"] == pytest.approx(ratio, 0.01)
    # Both read the same 200 raw frames; nothing JPEG-specific or one-at-a-time ran.
    assert summary["bare_consume_records"] == summary["pipeline_frames"] == 200
    assert (summary["frame_encoding"], summary["frame_bytes"]) == ("raw-bgr8", 8 * 8 * 3)
    assert "decode_fps" not in summary and "naive_fps" not in summary
    assert "framework to bare consumer" in result.output
    loads = summary["loads"]
    assert [p["offered_fps"] for p in loads] == [150, 400]
    assert [p["load"] for p in loads] == pytest.approx(
        [r / summary["pipeline_fps"] for r in (150, 400)], rel=1e-2)
    assert all(p["results"] == p["sent"] > 0 for p in loads)


def test_the_null_model_serves_raw_frames_of_its_input_size(tmp_path) -> None:
    # The worker loads it from a directory, as it would any model (TorchScript here).
    model = load_model(model_directory("null", 224, tmp_path))
    spec = model.card.input
    pool = FramePool.raw(spec.width, spec.height, size=2)
    decoder = FrameDecoder(10**8, 10**9)
    image = prepare(decoder.to_bgr(pool.frame(0, ["s"])), spec)
    assert image.tobytes() == pool.payloads[0]  # decode is a reshape, prepare a no-op
    (predictions,) = InferenceEngine(model, "cpu", 4).predict(image[None])
    assert [p["label"] in model.card.labels for p in predictions] == [True] * len(predictions)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--frame-size", "12", "--frame-size must look like"), ("--frames", "3", "--frames"),
     ("--rates", "100,fast", "--rates must be comma-separated"),
     ("--rates", "100,0", "--rates must be positive")],
)
def test_bad_flag_is_a_one_line_error(settings: Settings, flag, value, message) -> None:
    result = _invoke(settings, flag, value)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0, result.output
    assert message in result.output


def test_frame_size_parsing() -> None:
    assert parse_frame_size("640x480") == (640, 480)
    with pytest.raises(BenchOptionError):
        parse_frame_size("640")


@pytest.mark.parametrize("spec", [InputSpec(64, 64), InputSpec(224, 224, resize="letterbox")])
def test_scaled_jpeg_decode_matches_full_decode(spec: InputSpec) -> None:
    # The worker decodes JPEGs at a reduced scale when the model's input is smaller; the
    # prepared pixels must stay within a grey level or two of a full decode + resize.
    pool = FramePool.render(640, 480, size=3)
    decoder = FrameDecoder(10**8, 10**9)
    for data in pool.payloads:
        frame = Frame("s", 0, data)
        full = prepare(decoder.to_bgr(frame), spec).astype(np.int16)
        scaled = prepare(decoder.to_bgr(frame, spec), spec).astype(np.int16)
        assert scaled.shape == full.shape
        assert np.abs(full - scaled).mean() < 2.0


def test_profile_format_follows_the_extension() -> None:
    def fmt(name: str) -> str:
        command = record_command("py-spy", 1, Path(name))
        return command[command.index("--format") + 1]

    assert (fmt("w.svg"), fmt("w.JSON"), fmt("w.txt")) == ("flamegraph", "speedscope", "raw")


def test_profile_without_py_spy_is_a_one_line_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(profile_module.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(profile_module.shutil, "which", lambda name: None)
    with pytest.raises(BenchOptionError, match="--profile needs py-spy"):
        profile_module.WorkerProfiler(tmp_path / "w.svg")


def test_a_profiler_that_never_started_says_so_instead_of_raising(tmp_path) -> None:
    # stop() runs in a finally: it must not hide the saturation phase's own error.
    assert "never started" in profile_module.WorkerProfiler(tmp_path / "w.txt").stop()
