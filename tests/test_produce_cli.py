"""`framewire produce ...` end to end against the real broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from foundation.settings import Settings
from framewire.cli import cli
from producers.synthetic import CLASSES
from tests.kafka_helpers import decode_image, read_frames
from tests.test_producers_sources import make_class_folders, write_video


def produce(settings: Settings, *args: str) -> tuple[int, str]:
    """Run `framewire produce ARGS` in this process; (exit code, output)."""
    result = CliRunner().invoke(
        cli,
        ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix",
         settings.topic_prefix, "--log-format", "json", "produce", *args],
        env={"FRAMEWIRE_PRODUCER_MAX_BLOCK_S": "10"},
    )  # fmt: skip
    return result.exit_code, result.output


def summary(output: str) -> dict[str, str]:
    line = next(line for line in output.splitlines() if line.startswith("sent="))
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_synthetic_sends_about_fps_x_streams_x_seconds(topics: Settings) -> None:
    started = time.monotonic()
    code, output = produce(topics, "synthetic", "--seconds", "5", "--fps", "30",
                           "--streams", "2")
    elapsed = time.monotonic() - started
    assert code == 0, output
    assert 290 <= int(summary(output)["sent"]) <= 310
    assert 4.5 <= elapsed < 10
    frames = read_frames(topics, expected=300)
    assert len(frames) == int(summary(output)["sent"])
    assert {f.stream_id for f in frames} == {"synthetic-0", "synthetic-1"}
    assert {f.label for f in frames} <= set(CLASSES) and len({f.label for f in frames}) >= 3
    assert decode_image(frames[0]).shape == (240, 320, 3)


def test_common_options_raw_and_max_side(topics: Settings) -> None:
    code, output = produce(topics, "synthetic", "--fast", "--limit", "12", "--encoding",
                           "raw", "--max-side", "160", "--topic", topics.results_topic)
    assert code == 0, output
    assert summary(output)["sent"] == "12"
    frames = read_frames(topics, topics.results_topic, expected=12)
    assert {(f.encoding, f.width, f.height) for f in frames} == {("raw-bgr8", 160, 120)}
    assert decode_image(frames[0]).shape == (120, 160, 3)


def test_video_every_frame(topics: Settings, tmp_path: Path) -> None:
    path = write_video(tmp_path / "door.avi", 40, fps=25, size=(176, 144))
    code, output = produce(topics, "video", str(path), "--encoding", "png")
    assert code == 0, output
    assert summary(output)["sent"] == "40"
    frames = read_frames(topics, expected=40)
    assert sorted(f.seq for f in frames) == list(range(40))
    assert {(f.stream_id, f.encoding) for f in frames} == {("door", "png")}
    assert decode_image(frames[0]).shape == (144, 176, 3)


def test_video_fps_sampling(topics: Settings, tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", 60, fps=30)  # 2 s
    code, output = produce(topics, "video", str(path), "--fps", "5", "--stream-id", "gate-1")
    assert code == 0, output
    frames = read_frames(topics, expected=10)
    assert len(frames) == 10 == int(summary(output)["sent"])
    assert {f.stream_id for f in frames} == {"gate-1"}


def test_images_class_folders_give_labels(topics: Settings, tmp_path: Path) -> None:
    expected = make_class_folders(tmp_path / "dataset")
    code, output = produce(topics, "images", str(tmp_path / "dataset"), "--max-side", "32")
    assert code == 0, output
    assert summary(output)["skipped"] == "1"
    assert "broken.jpg" in output  # the warning names the skipped file
    frames = read_frames(topics, expected=len(expected))
    assert len(frames) == len(expected)
    assert sorted(f.label for f in frames) == sorted(expected.values())
    assert {max(f.width, f.height) for f in frames} == {32}


def test_bad_input_is_one_line_not_a_traceback(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"garbage" * 50)
    cases = [
        (["video", str(tmp_path / "missing.mp4")], "does not exist"),
        (["video", str(broken)], "cannot decode video"),
        (["images", str(tmp_path)], "no images"),
        (["synthetic", "--fps", "0"], "--fps"),
        (["synthetic", "--encoding", "gif"], "--encoding"),
        (["camera", "0", "--max-fps", "-2"], "--max-fps"),
    ]
    for args, message in cases:
        code, output = produce(settings, *args)
        assert code != 0 and message in output, (args, output)
        assert "Traceback" not in output


def test_ctrl_c_flushes_every_frame_reported_sent(topics: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWIRE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "framewire", "--kafka-bootstrap", topics.kafka_bootstrap,
         "--topic-prefix", topics.topic_prefix, "--log-format", "json",
         "produce", "synthetic", "--streams", "2", "--fps", "30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = threading.Event()
    stderr: list[str] = []

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr.append(line)
            if "publishing frames" in line:
                started.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert started.wait(30), "".join(stderr)
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    watcher.join(5)
    assert process.returncode == 0, "".join(stderr)
    stats = summary(stdout)
    assert "interrupted" in stdout and stats["failed"] == "0"
    sent = int(stats["sent"])
    assert sent >= 60  # ~2 s at 2 x 30 frames/s
    frames = read_frames(topics)  # the producer is gone: read until the topic is quiet
    assert len(frames) == sent
    assert len({f.frame_id for f in frames}) == sent


@pytest.mark.timeout(60)
def test_camera_reconnects_without_exiting(topics: Settings, tmp_path: Path) -> None:
    """The camera (a video file played live) disappears mid-run and comes back."""
    from producers.camera import CameraSource
    from producers.publisher import Publisher

    path = write_video(tmp_path / "cam.avi", 12, fps=20)  # 0.6 s per connection
    away = tmp_path / "away.avi"
    camera = CameraSource(str(path), backoff_s=0.05, max_backoff_s=0.2)

    def outage() -> None:
        time.sleep(0.2)
        path.rename(away)
        deadline = time.monotonic() + 10
        while camera.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        away.rename(path)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    with Publisher(topics) as publisher:
        stats = publisher.publish(camera, limit=20)
    thread.join(10)
    assert stats.sent == 20 and stats.failed == 0
    assert camera.failures >= 2 and camera.reconnects >= 1 and camera.stopped
    frames = read_frames(topics, expected=20)
    assert [f.seq for f in sorted(frames, key=lambda f: f.seq)] == list(range(20))
    assert decode_image(frames[-1]).shape == (120, 160, 3)
