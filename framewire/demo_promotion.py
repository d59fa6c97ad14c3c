"""`framewire demo --promote-after S`: continuous deployment, live.

Before the cameras start, a small validation dataset of synthetic shapes is imported and
the built-in demo model is registered twice under `framewire-demo` (two versions that
differ only in their number, so the gate has nothing to refuse); the first is promoted and
the worker serves `models:/framewire-demo@production`. S seconds after the cameras start,
the second is promoted the way an operator would (`framewire registry promote`): the
worker hears the broadcast, loads the version on its model thread while the first serves,
and swaps it in between two batches. The timeline counts results per version and checks
that each stream changed version once and never back, with no frame lost.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from foundation.settings import Settings
from framewire.worker_process import child_env
from models.loader import DEFAULT_MODEL_DIR
from producers.synthetic import synthetic_dataset

MODEL_NAME = "framewire-demo"
DATASET_NAME = "framewire-demo-shapes"
_VALIDATION_IMAGES = 400  # about 40 land in the validation split: enough for the gate

Echo = Callable[[str], None]


class PromotionError(RuntimeError):
    """A registry step of the demo failed; str() is its one-line reason."""


def prepare(settings: Settings, workdir: Path, echo: Echo) -> tuple[str, str]:
    """Register two versions and promote the first; (the URI to serve, the version to
    promote later)."""
    from mlops.data.importers import import_folder
    from mlops.data.store import DatasetStore

    folder = _write_shapes(workdir / "shapes")
    dataset = import_folder(DatasetStore.for_settings(settings), DATASET_NAME, folder).version
    first, second = (register_builtin(settings, dataset.ref) for _ in range(2))
    run_framewire(settings, "registry", "promote", MODEL_NAME, first)
    echo(f"registry: {MODEL_NAME} versions {first} and {second} registered (validated on "
         f"{dataset.ref}); {first} promoted to production")  # fmt: skip
    return f"models:/{MODEL_NAME}@production", second


def promote_later(settings: Settings, version: str, after_s: float, echo: Echo) -> threading.Timer:
    """Start a timer that promotes version after after_s seconds."""

    def promote() -> None:
        echo(f"registry: promoting {MODEL_NAME} version {version}")
        try:
            for line in run_framewire(settings, "registry", "promote", MODEL_NAME, version):
                echo(f"registry: {line}")
        except PromotionError as exc:
            echo(f"registry: promotion failed: {exc}")

    timer = threading.Timer(after_s, promote)
    timer.daemon = True
    timer.start()
    return timer


class VersionTimeline:
    """Which model version answered each frame, in each stream's order."""

    def __init__(self) -> None:
        self.versions: Counter[str] = Counter()
        self._by_stream: dict[str, list[tuple[int, str]]] = {}

    def add(self, result: dict[str, Any]) -> None:
        version = result["model"]["version"]
        self.versions[version] += 1
        self._by_stream.setdefault(result["stream_id"], []).append((result["seq"], version))

    def summary(self) -> dict[str, Any]:
        changes = {
            stream: sum(a != b for a, b in itertools.pairwise(v for _, v in sorted(pairs)))
            for stream, pairs in self._by_stream.items()
        }
        return {
            "results_per_version": dict(sorted(self.versions.items())),
            "version_changes_per_stream": changes,
            "swapped_once": len(self.versions) == 2 and all(n == 1 for n in changes.values()),
        }


def register_builtin(settings: Settings, dataset_ref: str, name: str = MODEL_NAME) -> str:
    """Register the built-in demo model as a new version of name, validated on dataset_ref;
    its version number."""
    output = run_framewire(settings, "registry", "import", str(DEFAULT_MODEL_DIR), "--name",
                           name, "--dataset", dataset_ref)  # fmt: skip
    found = re.search(r"version (\d+)", " ".join(output))
    if found is None:
        raise PromotionError(f"registry import said nothing of a version: {output}")
    return found.group(1)


def run_framewire(settings: Settings, *args: str) -> list[str]:
    """A framewire command as an operator would type it, in a child process; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "framewire", "--log-level", "warning", *args],
        env=child_env(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        raise PromotionError(f"framewire {' '.join(args[:2])}: {' '.join(last)}")
    return done.stdout.strip().splitlines()


def _write_shapes(folder: Path) -> Path:
    images, labels = synthetic_dataset(_VALIDATION_IMAGES, seed=7)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / label / f"{i:04d}.png"), image)
    return folder
