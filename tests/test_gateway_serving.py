"""Serving the gateway: `framewire gateway` under gunicorn, and the HTTP benchmark function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

from foundation.servers import free_port
from framewire.bench_gateway import run_gateway_bench

SYSTEM_FIELDS = {"requests", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "mean_batch"}
# Where a framewire request's time goes, from the result/1 it answers with.
PARTS = {"queue_ms", "decode_ms", "batch_wait_ms", "inference_ms", "write_ms", "outside_ms"}


def test_framewire_gateway_serves_with_gunicorn(settings):
    port = free_port()
    env = {**os.environ, **settings.to_env(), "FRAMEWIRE_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "framewire", "gateway", "--port", str(port),
         "--workers", "2", "--threads", "4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read()) == {"status": "ok"}
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "gateway did not answer within 30 s"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert b"framewire_gateway_requests_total" in r.read()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "gthread" in output  # threaded workers


def test_gateway_bench_returns_every_figure(settings):
    report = run_gateway_bench(settings, [1, 3], requests_per_level=6)
    assert report["device"] == "cpu" and report["requests_per_level"] == 6
    assert [level["concurrency"] for level in report["levels"]] == [1, 3]
    for level in report["levels"]:
        for system in ("framewire", "naive"):
            figures = level[system]
            assert set(figures) == SYSTEM_FIELDS | (PARTS if system == "framewire" else set())
            assert all(figures[part] >= 0 for part in PARTS & set(figures)), figures
            assert figures["requests"] == 6 and figures["errors"] == 0, figures
            assert figures["rps"] > 0 and figures["p50_ms"] <= figures["p99_ms"]
            assert figures["mean_batch"] >= 1
