"""mlops.evaluate: what counts, on a hand-made model whose answers are known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from mlops.data.store import DatasetStore
from mlops.evaluate import evaluate, expected_calibration_error
from models.loader import LoadedModel
from models.spec import InputSpec, ModelCard

LABELS = ["red", "green", "blue"]


class ChannelMeans(nn.Module):
    """Logits = 10 x the mean of each RGB channel: a red image says "red"."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * x.mean(dim=(2, 3))


def _model(channel_order: str = "rgb") -> LoadedModel:
    spec = InputSpec(width=8, height=8, mean=(0, 0, 0), std=(1, 1, 1),
                     channel_order=channel_order)  # fmt: skip
    card = ModelCard("colours", "1", "small-cnn", "classification", LABELS, spec)
    return LoadedModel(card, ChannelMeans())


def _png(bgr: tuple[int, int, int]) -> bytes:
    ok, data = cv2.imencode(".png", np.full((12, 16, 3), bgr, np.uint8))
    assert ok
    return data.tobytes()


BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def test_evaluate_counts_what_it_should(tmp_path) -> None:
    store = DatasetStore(tmp_path)
    added = [(store.put_blob(_png(BGR[c])), c, f"{c}.png") for c in LABELS]
    # A blue image labelled red (wrong), one with a label the model lacks (wrong),
    # unreadable bytes (skipped), and an unlabelled image (not scored).
    added.append((store.put_blob(_png((254, 0, 0))), "red", "mislabelled.png"))
    added.append((store.put_blob(_png((0, 255, 255))), "yellow", "yellow.png"))
    added.append((store.put_blob(b"not an image"), "red", "broken.png"))
    added.append((store.put_blob(_png((0, 0, 250))), None, "unlabelled.png"))
    version, _ = store.commit("colours", added)

    result = evaluate(_model(), store, list(version.items), batch_size=2)

    assert result.images == 5 and result.skipped == 1 and result.unlabelled == 1
    assert result.unknown == 1
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.labels == [*LABELS, "yellow"]
    assert result.confusion == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    assert result.per_class["blue"] == {"precision": 0.5, "recall": 1.0,
                                        "f1": pytest.approx(2 / 3), "support": 1}
    assert result.per_class["yellow"]["support"] == 1
    assert result.per_class["yellow"]["recall"] == 0.0
    assert 0.0 <= result.ece <= 1.0
    assert result.to_dict()["confusion"] == result.confusion


def test_channel_order_is_the_cards() -> None:
    # The same pixels read as BGR make a red image look blue: the card decides.
    import tempfile
    from pathlib import Path

    store = DatasetStore(Path(tempfile.mkdtemp()))
    version, _ = store.commit("c", [(store.put_blob(_png(BGR["red"])), "red", "r.png")])
    assert evaluate(_model("rgb"), store, list(version.items)).accuracy == 1.0
    assert evaluate(_model("bgr"), store, list(version.items)).accuracy == 0.0


def test_expected_calibration_error() -> None:
    # Always 90 % sure and right 90 % of the time: calibrated. Always sure, half right: 0.5.
    probs = np.tile([[0.9, 0.1]], (10, 1))
    truth = np.array([0] * 9 + [1])
    assert expected_calibration_error(probs, truth) == pytest.approx(0.0)
    sure = np.tile([[1.0, 0.0]], (4, 1))
    assert expected_calibration_error(sure, np.array([0, 1, 0, 1])) == pytest.approx(0.5)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, np.int64)) == 0.0
