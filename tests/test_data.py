"""Datasets: the content-addressed store, folder and topic import, diff, the report, and
`framewire data ...` (mlops/data/, framewire/cli/data.py).

Everything but the topic import runs on tmp folders; the topic import uses the session's
broker (the `topics` fixture). Images are made here with numpy and OpenCV.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from kafka import KafkaProducer

from foundation.settings import Settings
from mlops.data.diff import diff_versions
from mlops.data.importers import import_folder
from mlops.data.report import write_report
from mlops.data.store import DatasetError, DatasetStore, split_of
from mlops.data.topic_import import FrameFilter, import_topic
from producers.publisher import Publisher
from schemas import Frame
from tests.cli_helpers import invoke

CLASSES = ("circle", "square", "triangle")


def shape(kind: str, seed: int, size: int = 48) -> np.ndarray:
    """A coloured shape on a noise background: every seed a different picture."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    colour = tuple(int(c) for c in rng.integers(120, 255, 3))
    x, y = (int(v) for v in rng.integers(14, size - 14, 2))
    r = int(rng.integers(8, 13))
    if kind == "circle":
        cv2.circle(image, (x, y), r, colour, -1)
    elif kind == "square":
        cv2.rectangle(image, (x - r, y - r), (x + r, y + r), colour, -1)
    else:
        cv2.fillPoly(image, [np.array([(x, y - r), (x - r, y + r), (x + r, y + r)])], colour)
    return image


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def make_folder(root: Path, per_class: int = 6, first_seed: int = 0) -> Path:
    for k, kind in enumerate(CLASSES):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            seed = 1000 * k + first_seed + i
            (root / kind / f"{kind}_{seed}.png").write_bytes(png(shape(kind, seed)))
    return root


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    """Settings for commands that need no broker: only the state directory matters."""
    return Settings.load(environ={}, state_dir=str(tmp_path / "state"))


# -- the store ---------------------------------------------------------------------------


def test_import_is_idempotent(store, tmp_path):
    folder = make_folder(tmp_path / "shapes")
    first = import_folder(store, "shapes", folder)
    again = import_folder(store, "shapes", folder)
    assert first.created and not again.created
    assert again.version.version == first.version.version
    assert store.history("shapes") == [first.version.version]
    assert first.version.labels == list(CLASSES) and len(first.version.items) == 18


def test_a_blob_keeps_its_split_across_versions_and_datasets(store, tmp_path):
    folder = make_folder(tmp_path / "shapes", per_class=20)
    v1 = import_folder(store, "shapes", folder).version
    make_folder(folder, per_class=10, first_seed=100)
    v2 = import_folder(store, "shapes", folder).version
    other = import_folder(store, "other", folder).version
    assert v2.parent == v1.version and len(v2.items) == len(v1.items) + 30
    splits = {item.blob: item.split for item in v1.items}
    for version in (v2, other):
        for item in version.items:
            assert item.split == split_of(item.blob) == splits.get(item.blob, item.split)
    assert {item.split for item in v2.items} == {"train", "validation", "test"}
    # Validation never leaks into training: no blob is in two splits of any version.
    train = {i.blob for i in v2.split("train")}
    assert not train & {i.blob for i in v2.split("validation") + v2.split("test")}


def test_relabelling_makes_a_new_version_and_diff_says_what_changed(store, tmp_path):
    folder = make_folder(tmp_path / "shapes")
    v1 = import_folder(store, "shapes", folder).version
    moved = folder / "circle" / "circle_0.png"
    moved.rename(folder / "square" / "circle_0.png")  # a person fixes a label
    (folder / "triangle" / "triangle_2005.png").write_bytes(png(shape("triangle", 99)))
    result = import_folder(store, "shapes", folder)
    v2 = result.version
    assert result.created and v2.version != v1.version and v2.parent == v1.version

    changes = diff_versions(v1, v2)
    assert [i.source for i in changes.added] == ["triangle/triangle_2005.png"]
    assert [(r.item.source, r.old_label, r.item.label) for r in changes.relabelled] == [
        ("square/circle_0.png", "circle", "square")
    ]
    assert changes.removed == ()
    split = changes.relabelled[0].item.split
    assert changes.count_changes()["circle"][split] == -1
    assert [i.source for i in diff_versions(v2, v1).removed] == ["triangle/triangle_2005.png"]


def test_refs_resolve_by_latest_and_prefix(store, tmp_path):
    folder = make_folder(tmp_path / "shapes", per_class=2)
    v1 = import_folder(store, "shapes", folder).version
    make_folder(folder, per_class=1, first_seed=50)
    v2 = import_folder(store, "shapes", folder).version
    assert store.resolve("shapes@latest").version == v2.version
    assert store.resolve("shapes").version == v2.version
    assert store.resolve(f"shapes@{v1.version[:6]}").version == v1.version
    with pytest.raises(DatasetError, match="no dataset named"):
        store.resolve("nope@latest")
    with pytest.raises(DatasetError, match="no version"):
        store.resolve("shapes@zzzz")
    with pytest.raises(DatasetError):
        store.blob_path("../../etc/passwd")


def test_identical_files_are_one_item_and_every_copy_is_recorded(store, tmp_path):
    folder = make_folder(tmp_path / "shapes", per_class=2)
    data = (folder / "circle" / "circle_0.png").read_bytes()
    (folder / "circle" / "copy.png").write_bytes(data)
    v1 = import_folder(store, "shapes", folder).version
    assert len(v1.items) == 6
    blob = next(i.blob for i in v1.items if i.source == "circle/circle_0.png")
    assert v1.also[blob] == (("circle/copy.png", "circle"),)
    # A copy found later adds no content: the same version, the copy recorded with it.
    (folder / "square" / "late_copy.png").write_bytes(data)
    again = import_folder(store, "shapes", folder)
    assert not again.created and again.version.version == v1.version
    assert store.resolve("shapes").also[blob] == (
        ("circle/copy.png", "circle"), ("square/late_copy.png", "square"))


# -- the report ----------------------------------------------------------------------------


def test_report_names_the_duplicate_and_the_unreadable_file(offline, tmp_path):
    folder = make_folder(tmp_path / "shapes")
    original = folder / "circle" / "circle_1.png"
    (folder / "circle" / "circle_1_copy.png").write_bytes(original.read_bytes())
    (folder / "square" / "broken.png").write_bytes(original.read_bytes()[:200])  # truncated
    triangle = cv2.imread(str(folder / "triangle" / "triangle_2001.png"))
    cv2.imwrite(str(folder / "triangle" / "again.jpg"), triangle, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert invoke(offline, "data", "import", str(folder), "--name", "shapes").exit_code == 0

    out = tmp_path / "report.html"
    result = invoke(offline, "data", "report", "shapes@latest", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "circle/circle_1.png" in page and "circle/circle_1_copy.png" in page
    assert "square/broken.png" in page and "truncated png" in page
    assert "triangle/again.jpg" in page  # a near duplicate of triangle_2001.png
    assert "http://" not in page and "https://" not in page  # self-contained
    assert page.count("data:image/png;base64,") >= 4  # the charts
    assert "1 unreadable" in result.output and "circle/circle_1_copy.png" in result.output


def test_report_escapes_what_came_from_outside(store, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    (folder / "a.png").write_bytes(png(shape("circle", 1)))
    labels = tmp_path / "labels.csv"
    labels.write_text('file,label\na.png,"<script>alert(1)</script>"\n')
    version = import_folder(store, "flat", folder, labels).version
    page = write_report(store, version, tmp_path / "r.html").out.read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page


# -- the CLI -------------------------------------------------------------------------------


def test_cli_list_show_diff(offline, tmp_path):
    folder = make_folder(tmp_path / "shapes", per_class=3)
    first = invoke(offline, "data", "import", str(folder), "--name", "shapes")
    assert first.exit_code == 0 and "new version" in first.output
    again = invoke(offline, "data", "import", str(folder), "--name", "shapes")
    assert "unchanged" in again.output
    make_folder(folder, per_class=1, first_seed=40)
    invoke(offline, "data", "import", str(folder), "--name", "shapes")

    listing = invoke(offline, "data", "list").output.splitlines()
    assert listing[1].startswith("shapes") and "(latest)" in listing[1] and "12" in listing[1]
    assert "9" in listing[2]  # the older version, below the newer
    shown = invoke(offline, "data", "show", "shapes@latest").output
    assert "12 files" in shown and "circle" in shown and "parent" in shown
    old = listing[2].split()[0]
    changes = invoke(offline, "data", "diff", f"shapes@{old}", "shapes@latest").output
    assert "3 added, 0 removed, 0 relabelled" in changes and "+ circle/circle_40.png" in changes


@pytest.mark.parametrize(
    "args",
    [
        ("data", "show", "nope@latest"),
        ("data", "show", "bad name!"),
        ("data", "diff", "nope", "nope@1"),
        ("data", "import", "/no/such/folder", "--name", "x"),
        ("data", "import", "--from-topic", "--name", "x", "--since", "yesterday"),
        ("data", "report", "nope", "--out", "r.html"),
    ],
)
def test_cli_errors_are_one_line(offline, args):
    result = invoke(offline, *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# -- from Kafka ----------------------------------------------------------------------------


def test_topic_import_takes_labelled_frames_of_the_stream(topics):
    settings = topics
    old = int((time.time() - 3 * 86_400) * 1000)
    frames = [
        Frame("cam-a", 0, png(shape("circle", 1)), "png", label="circle"),
        Frame("cam-a", 1, png(shape("square", 2)), "png", label="square"),
        Frame("cam-a", 2, png(shape("square", 3)), "png"),  # unlabelled
        Frame("cam-a", 3, png(shape("circle", 4)), "png", label="circle", captured_at_ms=old),
        Frame("cam-b", 0, png(shape("triangle", 5)), "png", label="triangle"),
    ]
    rgb = cv2.cvtColor(shape("triangle", 6), cv2.COLOR_BGR2RGB)
    frames.append(Frame("cam-a", 4, rgb.tobytes(), "raw-rgb8", width=48, height=48,
                        label="triangle"))  # fmt: skip
    with Publisher(settings) as publisher:
        for frame in frames:
            publisher.send(frame)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.frames_topic, key=b"cam-a", value=b"not a frame")  # no headers
    producer.flush()
    producer.close()

    store = DatasetStore.for_settings(settings)
    result = import_topic(store, "cams", settings, select=FrameFilter(stream_id="cam-a"))
    items = sorted(result.version.items, key=lambda i: i.label or "")
    assert [i.label for i in items] == ["circle", "circle", "square", "triangle"]
    assert all(i.source.startswith(f"{settings.frames_topic}/") for i in items)
    raw = next(i for i in items if i.label == "triangle")
    decoded = cv2.imdecode(np.frombuffer(store.read_blob(raw.blob), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decoded, shape("triangle", 6))  # raw RGB became a lossless PNG
    assert result.left_out == {"unlabelled": 1, "other streams": 1}
    assert result.skipped == ("1 record: not frame/1 (bad fw-schema)",)

    cli = invoke(settings, "data", "import", "--from-topic", "--name", "recent",
                 "--stream-id", "cam-a", "--since", "1d")  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert "captured before --since" in cli.output
    assert len(DatasetStore.for_settings(settings).resolve("recent").items) == 3
