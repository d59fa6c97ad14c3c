"""`framewire demo --seconds 12 --json`, as the README's quickstart runs it (shorter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_end_to_end_on_its_own_embedded_stack(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWIRE_")}
    env["FRAMEWIRE_STATE_DIR"] = str(tmp_path)
    env["FRAMEWIRE_CONSUMER_SESSION_TIMEOUT_S"] = "3"  # the worker joins in ~2 s, not ~5
    run = subprocess.run(
        [sys.executable, "-m", "framewire", "demo", "--seconds", "12", "--device", "cpu",
         "--json"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    for field in ("frames_produced", "results", "fps", "p50_ms", "p99_ms", "mean_batch",
                  "accuracy", "dlq"):  # fmt: skip
        assert field in summary, field
    assert summary["frames_produced"] >= 300  # 2 streams x 15 fps x 12 s, give or take
    assert summary["results"] == summary["frames_produced"]
    assert summary["accuracy"] >= 0.95
    assert summary["dlq"] == 0
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
    assert "stack: kafka: stopped" in run.stdout and "stack: redis: stopped" in run.stdout


def test_demo_promotes_a_second_version_live_and_loses_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWIRE_")}
    env["FRAMEWIRE_STATE_DIR"] = str(tmp_path)
    env["FRAMEWIRE_CONSUMER_SESSION_TIMEOUT_S"] = "3"  # the worker joins in ~2 s, not ~5
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run(
        [sys.executable, "-m", "framewire", "demo", "--seconds", "12", "--device", "cpu",
         "--promote-after", "4", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["results"] == summary["frames_produced"] > 0
    promotion = summary["promotion"]
    assert set(promotion["results_per_version"]) == {"1", "2"}, promotion
    assert all(n > 0 for n in promotion["results_per_version"].values()), promotion
    assert set(promotion["version_changes_per_stream"].values()) == {1}, promotion
    assert "gate: accepted" in run.stdout and "framewire-demo@production: 1 -> 2" in run.stdout
