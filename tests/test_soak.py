"""`framewire bench --soak` end to end (a few seconds of live cameras), and its arithmetic.

As in test_bench.py, nothing here asserts a speed: only that every frame was answered and
that the report has what it promises.
"""

from __future__ import annotations

import json

import pytest

from foundation.settings import Settings
from framewire.bench.soak import Sample, rss_slope_mb_per_10min
from tests.cli_helpers import invoke


def _invoke(settings: Settings, *args: str):
    return invoke(settings, "bench", *args, env={"FRAMEWIRE_PARTITIONS": "2"})


@pytest.mark.timeout(90)
def test_soak_runs_end_to_end_and_every_frame_is_answered(settings: Settings, tmp_path) -> None:
    csv_path = tmp_path / "soak.csv"
    result = _invoke(
        settings, "--soak", "0.2", "--soak-streams", "2", "--soak-fps", "5",
        "--soak-interval-s", "3", "--frame-size", "320x240", "--json", "--csv", str(csv_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["every_frame_answered"] is True, summary
    assert summary["frames_sent"] == 2 * 5 * 12  # 0.2 min of 2 cameras at 5 fps
    assert summary["frames_answered"] == summary["frames_sent"]
    assert summary["frames_missing"] == 0
    assert summary["stall_lines"] == 0
    assert summary["worker_rss_start_mb"] > 0 and summary["worker_rss_end_mb"] > 0
    # The session's broker was not started by `stack up`: no pid recorded, no RSS claimed.
    assert summary["broker"] == settings.kafka_bootstrap
    assert summary["broker_rss_end_mb"] is None
    assert summary["ending"] == "drained"
    samples = summary["samples"]
    assert len(samples) >= 4
    assert [s["sent"] for s in samples] == sorted(s["sent"] for s in samples)
    assert samples[-1]["answered"] == summary["frames_sent"]
    assert "every frame answered: yes" in result.output  # the verdict precedes the JSON
    assert csv_path.read_text().splitlines()[0].startswith("elapsed_s,sent,answered,lag")


def test_csv_without_soak_is_a_one_line_error(settings: Settings, tmp_path) -> None:
    result = _invoke(settings, "--csv", str(tmp_path / "x.csv"))
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --csv goes with --soak"


def _samples(rss: list[float], step_s: float = 60.0) -> list[Sample]:
    return [Sample(i * step_s, 0, 0, 0, mb, None, 0, True) for i, mb in enumerate(rss)]


def test_memory_slope_ignores_warm_up_and_sees_growth() -> None:
    # Warm-up in the first half (300 -> 400 MB), then flat: flat.
    assert rss_slope_mb_per_10min(_samples([300, 350, 400, 400, 400, 400, 400])) == 0.0
    # 1 MB a minute in the second half is 10 MB per 10 minutes.
    assert rss_slope_mb_per_10min(_samples([400, 401, 402, 403, 404, 405])) == pytest.approx(10)
    assert rss_slope_mb_per_10min(_samples([400, 401])) is None  # too few to tell
