"""The sources on their own (no Kafka): encoding, synthetic scenes, video, images, camera."""

from __future__ import annotations

import http.server
import itertools
import socketserver
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from framewire.cli.produce import ENCODINGS
from producers.camera import CameraSource, default_stream_id
from producers.encode import ENCODING_NAMES, encode_image
from producers.errors import SourceError
from producers.images import ImageFolderSource
from producers.synthetic import CLASSES, SyntheticSource, render_scene, synthetic_dataset
from producers.video import VideoSource
from schemas import Frame
from tests.kafka_helpers import decode_image as decode


def write_video(path: Path, frames: int, fps: float = 30.0, size=(160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (i * 5) % 256, np.uint8)
        cv2.putText(image, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 255), 2)
        writer.write(image)
    writer.release()
    return path


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["jpeg", "png", "webp", "raw"])
def test_encode_image_sizes_and_names(encoding: str) -> None:
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    data, name, width, height = encode_image(image, encoding, max_side=320)
    assert (name, width, height) == (ENCODING_NAMES[encoding], 320, 240)
    frame = Frame("s", 0, data, encoding=name, width=width, height=height)
    assert decode(frame).shape == (240, 320, 3)


def test_encode_never_enlarges_and_rejects_bad_options() -> None:
    image = np.zeros((50, 40, 3), np.uint8)
    assert encode_image(image, "png", max_side=400)[2:] == (40, 50)
    assert encode_image(np.zeros((50, 40), np.uint8), "raw")[1] == "raw-bgr8"  # grey -> BGR
    with pytest.raises(ValueError, match="unknown encoding"):
        encode_image(image, "gif")
    with pytest.raises(ValueError, match="jpeg_quality"):
        encode_image(image, jpeg_quality=0)


def test_cli_encodings_match_the_encoder() -> None:
    assert set(ENCODINGS) == set(ENCODING_NAMES)


# --- synthetic ------------------------------------------------------------------------------


def test_synthetic_source_is_deterministic_labelled_and_switches_labels() -> None:
    def run(seed: int) -> list[Frame]:
        return list(SyntheticSource(streams=2, fps=10, seconds=4, seed=seed, realtime=False))

    a, b, c = run(3), run(3), run(4)
    assert len(a) == 2 * 40
    assert [(f.stream_id, f.seq, f.label, f.data) for f in a] == [
        (f.stream_id, f.seq, f.label, f.data) for f in b
    ]
    assert [f.data for f in a] != [f.data for f in c]
    assert {f.stream_id for f in a} == {"synthetic-0", "synthetic-1"}
    assert len({f.frame_id for f in a}) == len(a)
    for stream in ("synthetic-0", "synthetic-1"):
        labels = [f.label for f in a if f.stream_id == stream]
        assert set(labels) <= set(CLASSES)
        runs = [len(list(g)) for _, g in itertools.groupby(labels)]
        # 1-2 s per label at 10 fps; the last run may be cut by the end of the stream.
        assert len(runs) >= 2 and all(10 <= n <= 20 for n in runs[:-1]), runs
    assert decode(a[0]).shape == (240, 320, 3)
    # Synthetic timestamps follow the frame rate even when not paced.
    ts = [f.captured_at_ms for f in a if f.stream_id == "synthetic-0"]
    assert ts[10] - ts[0] == 1000


def test_synthetic_dataset_is_balanced_and_drift_changes_the_look() -> None:
    images, labels = synthetic_dataset(120, seed=1)
    assert images.shape == (120, 64, 64, 3) and images.dtype == np.uint8
    assert {labels.count(c) for c in CLASSES} == {20}
    again, labels_again = synthetic_dataset(120, seed=1)
    assert labels == labels_again and np.array_equal(images, again)
    drifted, _ = synthetic_dataset(120, seed=1, drift=True)
    # The drifted palette is muted: far less colour saturation on average.
    def saturation(x: np.ndarray) -> float:
        hsv = cv2.cvtColor(x.reshape(-1, 64, 3), cv2.COLOR_BGR2HSV)
        return float(hsv[..., 1].mean())

    assert saturation(drifted) < 0.6 * saturation(images)


def test_render_scene_moves_the_object_and_rejects_unknown_classes() -> None:
    first = render_scene(np.random.default_rng(5), "star", 0.0, 160, 120)
    later = render_scene(np.random.default_rng(5), "star", 0.5, 160, 120)
    assert first.shape == (120, 160, 3)
    assert np.abs(first.astype(int) - later.astype(int)).mean() > 1
    with pytest.raises(ValueError, match="unknown class"):
        render_scene(np.random.default_rng(0), "hexagon", 0.0, 64, 64)


def test_synthetic_realtime_paces_frames() -> None:
    started = time.monotonic()
    frames = list(SyntheticSource(streams=1, fps=20, seconds=0.5, width=32, height=32))
    assert len(frames) == 10
    assert 0.4 <= time.monotonic() - started < 2.0


# --- video ----------------------------------------------------------------------------------


def test_video_yields_every_frame_or_samples_by_timestamp(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", 45, fps=30)
    frames = list(VideoSource(path))
    assert len(frames) == 45
    assert [f.seq for f in frames] == list(range(45))
    assert {f.stream_id for f in frames} == {"clip"}
    assert decode(frames[0]).shape == (120, 160, 3)
    assert frames[30].captured_at_ms - frames[0].captured_at_ms == 1000
    assert len(list(VideoSource(path, fps=10))) == 15  # 1.5 s at 10 frames/s
    assert len(list(VideoSource(path, fps=60))) == 45  # never more than the file has
    looped = list(itertools.islice(VideoSource(path, fps=10, loop=True), 40))
    assert [f.seq for f in looped] == list(range(40))
    stamps = [f.captured_at_ms for f in looped]
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_video_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        VideoSource(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError, match="cannot decode"):
        VideoSource(broken)


# --- images ---------------------------------------------------------------------------------


def make_class_folders(root: Path) -> dict[str, str]:
    """root/<class>/<n>.png|jpg with one broken file; returns file name -> label."""
    rng = np.random.default_rng(0)
    expected = {}
    for label in ("circle", "square"):
        (root / label).mkdir(parents=True)
        for i, suffix in enumerate((".png", ".jpg", ".png")):
            name = f"{label}-{i}{suffix}"
            image = rng.integers(0, 255, (48 + i, 64, 3), np.uint8)
            cv2.imwrite(str(root / label / name), image)
            expected[name] = label
    (root / "square" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (root / "square" / "notes.txt").write_text("not an image, not a candidate")
    return expected


def test_image_folder_class_layout_labels_and_skips(tmp_path: Path) -> None:
    make_class_folders(tmp_path / "data")
    source = ImageFolderSource(tmp_path / "data")
    frames = list(source)
    assert source.class_folders
    assert [f.label for f in frames] == ["circle"] * 3 + ["square"] * 3
    assert [f.seq for f in frames] == list(range(6))
    assert [(f.width, f.height) for f in frames[:3]] == [(64, 48), (64, 49), (64, 50)]
    assert [decode(f).shape[:2] for f in frames[:3]] == [(48, 64), (49, 64), (50, 64)]
    assert [p.name for p, _ in source.skipped] == ["broken.jpg"]
    assert {f.stream_id for f in frames} == {"data"}


def test_image_folder_flat_and_recursive(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 20, 3), np.uint8))
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "b.png"), np.zeros((10, 20, 3), np.uint8))
    flat = list(ImageFolderSource(tmp_path, stream_id="cam-x", encoding="raw"))
    assert [(f.label, f.stream_id, f.encoding) for f in flat] == [(None, "cam-x", "raw-bgr8")]
    assert len(list(ImageFolderSource(tmp_path, recursive=True))) == 2


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path)
    with pytest.raises(SourceError, match="not found"):
        ImageFolderSource(tmp_path / "missing")


# --- camera ---------------------------------------------------------------------------------


def test_camera_keeps_the_newest_frame_and_survives_the_source_going_away(
    tmp_path: Path,
) -> None:
    path = write_video(tmp_path / "cam.avi", 10, fps=20)  # 0.5 s of "live" video per connect
    hidden = tmp_path / "away.avi"
    camera = CameraSource(str(path), backoff_s=0.05, max_backoff_s=0.2)
    with camera:
        assert camera.latest(timeout_s=5) is not None
        path.rename(hidden)  # the camera goes away: the open stream ends, reopening fails
        wait_until(lambda: camera.failures >= 2, 10, "failed reconnect attempts")
        assert camera.reconnects == 0
        hidden.rename(path)  # ... and comes back
        wait_until(lambda: camera.reconnects >= 1, 10, "a reconnect")
        assert camera.latest(timeout_s=5) is not None
        assert camera._thread is not None and camera._thread.is_alive()
    assert camera.stopped and camera.disconnects >= 1
    # Nobody took most frames: each was replaced by a newer one and counted as dropped.
    assert camera.dropped >= camera.frames_read - 4 > 0


def test_camera_stream_ids() -> None:
    assert default_stream_id(0) == "camera-0"
    assert default_stream_id("rtsp://user:secret@10.0.0.5:554/live/1") == "10.0.0.5-554-live-1"
    assert default_stream_id("/videos/door cam.mp4") == "door-cam"


class _ReusableServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # restart on the same port right after a stop
    daemon_threads = True


class MjpegServer:
    """A tiny HTTP MJPEG camera on loopback that can be switched off and on (same port)."""

    def __init__(self, frames_per_connection: int = 15) -> None:
        self.frames = frames_per_connection
        self.port = 0
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        frames = self.frames

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                try:
                    for i in range(frames):
                        image = np.full((120, 160, 3), i * 10, np.uint8)
                        data = cv2.imencode(".jpg", image)[1].tobytes()
                        self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                        time.sleep(0.02)
                except OSError:
                    pass  # the client went away

            def log_message(self, *args: object) -> None:
                pass

        self._server = _ReusableServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.mjpg"


def test_camera_http_mjpeg_reconnects_after_an_outage() -> None:
    server = MjpegServer()
    server.start()
    camera = CameraSource(server.url, backoff_s=0.05, max_backoff_s=0.2)
    try:
        frames = list(itertools.islice(camera, 3))
        assert decode(frames[0]).shape == (120, 160, 3)
        assert camera.stream_id == f"127.0.0.1-{server.port}-live.mjpg"
        server.stop()  # the camera goes offline
        wait_until(lambda: camera.failures >= 2, 15, "failed reconnect attempts")
        server.start()  # ... and comes back on the same address
        wait_until(lambda: camera.reconnects >= 1, 15, "a reconnect")
        assert camera.latest(timeout_s=5) is not None
    finally:
        camera.stop()
        server.stop()
