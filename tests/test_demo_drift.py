"""The drift demo's bookkeeping and plot (the demo itself runs for minutes: its figures are
in docs/MLOPS.md, measured with `framewire demo --drift --json`)."""

from __future__ import annotations

from pathlib import Path

from framewire.demo_drift import _buckets, _Results, draw


def test_accuracy_per_phase_and_version_and_the_plot(tmp_path: Path) -> None:
    results = _Results(started=0.0)
    for i in range(40):
        results.labels[f"f{i}"] = ("circle", i >= 20)
    for i in range(40):
        version = "1" if i < 30 else "2"
        predicted = "circle" if (i < 20 or i >= 30 or i % 2) else "square"
        results.add({"frame_id": f"f{i}", "model": {"version": version},
                     "predictions": [{"label": predicted, "score": 0.9}]})
        results.rows[-1] = (float(i), *results.rows[-1][1:])
    results.add({"frame_id": "f3", "model": {"version": "1"}, "predictions": []})  # again
    results.add({"frame_id": "other", "model": {"version": "1"}, "predictions": []})
    assert len(results.rows) == 40
    assert results.accuracy(False) == 1.0
    assert results.accuracy(True, version="1") == 0.5
    assert results.accuracy(True, version="2", since_s=30.0) == 1.0
    buckets = _buckets(results)
    assert [b["t"] for b in buckets] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    assert buckets[-1]["version"] == "2" and buckets[0]["drifted"] is False
    summary = {"accuracy_over_time": buckets,
               "timeline": [{"t": 20.0, "step": "scenes drift"},
                            {"t": 29.5, "step": "retrain promoted"},
                            {"t": 30.0, "step": "worker serves the new version"}]}
    path = draw(summary, tmp_path / "drift.png")
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
