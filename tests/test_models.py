"""Model cards, architectures, loading/saving, `prepare`, and the committed demo model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.architectures import ARCHITECTURES, SmallCNN, resnet18, resnet50
from models.loader import (
    DEFAULT_MODEL_DIR,
    LoadedModel,
    ModelLoadError,
    load_model,
    resolve_model,
    save_model,
)
from models.spec import IMAGENET_MEAN, InputSpec, ModelCard, prepare
from producers.synthetic import CLASSES, synthetic_dataset
from workers.engine import InferenceEngine

LABELS = ["a", "b", "c"]


def card(architecture: str = "small-cnn", labels: list[str] = LABELS, **input_kw) -> ModelCard:
    spec = InputSpec(**{"width": 32, "height": 32, **input_kw})
    return ModelCard("test", "7", architecture, "classification", labels, spec)


def outputs(module: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return module.eval()(torch.linspace(-2, 2, 2 * 3 * 32 * 32).view(2, 3, 32, 32))


# --- card ---------------------------------------------------------------------------------


def test_card_json_round_trip() -> None:
    original = card(channel_order="bgr", resize="letterbox")
    text = original.to_json()
    assert json.loads(text)["input"]["mean"] == list(IMAGENET_MEAN)
    again = ModelCard.from_json(text)
    assert again == original
    assert again.input == original.input  # lists from JSON compare equal as tuples


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("labels"), "lacks: labels"),
        (lambda d: d.update(task="segmentation"), "'task' must be one of"),
        (lambda d: d.update(labels=[]), "non-empty list"),
        (lambda d: d.update(labels=["x", "x"]), "must be unique"),
        (lambda d: d.update(name=""), "'name' must be a non-empty string"),
        (lambda d: d.update(extra=1), "unknown fields: extra"),
        (lambda d: d.update(schema="model-card/9"), "not supported"),
        (lambda d: d["input"].update(width=0), "width must be a positive integer"),
        (lambda d: d["input"].update(channel_order="yuv"), "channel_order must be one of"),
        (lambda d: d["input"].update(resize="crop"), "resize must be one of"),
        (lambda d: d["input"].update(std=[1, 0, 1]), "std values must be positive"),
        (lambda d: d["input"].update(mean=[0.5, 0.5]), "mean must be three"),
    ],
)
def test_bad_card_is_a_clear_value_error(change, message: str) -> None:
    data = card().to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        ModelCard.from_json(json.dumps(data))


def test_card_that_is_not_json() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelCard.from_json("{nope")


# --- architectures ------------------------------------------------------------------------


def test_small_cnn_is_small_and_classifies_64x64() -> None:
    model = SmallCNN(6)
    assert sum(p.numel() for p in model.parameters()) < 150_000
    assert model.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 6)


@pytest.mark.parametrize(
    ("factory", "torchvision_params"), [(resnet18, 11_689_512), (resnet50, 25_557_032)]
)
def test_resnets_match_torchvision_layout(factory, torchvision_params: int) -> None:
    # torchvision's parameter counts at 1000 classes: the same layout, block by block.
    assert sum(p.numel() for p in factory(1000).parameters()) == torchvision_params
    model = factory(7).eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 7)
    assert {"small-cnn", "resnet18", "resnet50"} <= set(ARCHITECTURES)


# --- loading and saving -------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = SmallCNN(3)
    save_model(module, card(), tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.card == card()
    assert not loaded.module.training
    assert torch.equal(outputs(loaded.module), outputs(module))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # still what users ship
def test_torchscript_model_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = SmallCNN(3).eval()
    save_model(torch.jit.script(module), card("torchscript"), tmp_path / "ts")
    assert (tmp_path / "ts" / "model.ts").is_file()
    loaded = load_model(tmp_path / "ts")
    assert loaded.card.architecture == "torchscript"
    assert torch.allclose(outputs(loaded.module), outputs(module), atol=1e-6)


def test_missing_directory_and_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match=r"model\.json is missing"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(card().to_json())
    with pytest.raises(ModelLoadError, match=r"weights\.pt is missing"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(card("torchscript").to_json())
    with pytest.raises(ModelLoadError, match=r"model\.ts is missing"):
        load_model(tmp_path)


def test_bad_card_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"name": "x"}')
    with pytest.raises(ModelLoadError, match=r"model\.json: model card lacks"):
        load_model(tmp_path)


def test_unknown_architecture(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(card("vit-huge").to_json())
    with pytest.raises(ModelLoadError, match="unknown architecture 'vit-huge'; known: "):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="unknown architecture"):
        save_model(SmallCNN(3), card("vit-huge"), tmp_path / "out")


def test_mismatched_weights(tmp_path: Path) -> None:
    save_model(SmallCNN(3), card(), tmp_path)
    (tmp_path / "model.json").write_text(card(labels=["a", "b", "c", "d"]).to_json())
    with pytest.raises(ModelLoadError, match="does not match architecture 'small-cnn' with 4"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(card("resnet18").to_json())
    with pytest.raises(ModelLoadError, match="does not match architecture 'resnet18'"):
        load_model(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="not a readable state_dict"):
        load_model(tmp_path)


def test_resolve_model(tmp_path: Path) -> None:
    assert resolve_model(None) == DEFAULT_MODEL_DIR
    assert resolve_model(str(tmp_path)) == tmp_path
    with pytest.raises(ModelLoadError, match="not a directory"):
        resolve_model("resnet-from-the-moon")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        resolve_model(tmp_path / "file")


def test_postprocess_top_k_sorted() -> None:
    model = LoadedModel(card(labels=list("abcdefg")), SmallCNN(7))
    logits = torch.tensor([[0.0, 3, 1, 2, -1, 5, 4], [9, 0, 0, 0, 0, 0, 1]])
    first, second = model.postprocess(logits)
    assert [p["label"] for p in first] == ["f", "g", "b", "d", "c"]  # k = 5
    scores = [p["score"] for p in first]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6
    assert second[0]["label"] == "a" and second[0]["score"] > 0.99
    three = LoadedModel(card(), SmallCNN(3)).postprocess(torch.tensor([[1.0, 2, 3]]))
    assert [p["label"] for p in three[0]] == ["c", "b", "a"]  # k = min(5, classes)
    with pytest.raises(ValueError, match="expected N x 3 logits"):
        LoadedModel(card(), SmallCNN(3)).postprocess(torch.zeros(1, 4))


@pytest.mark.parametrize("classes", [6, 1000])  # numpy below 500 logits, torch above
def test_postprocess_gives_torchs_softmax_top_k(classes: int) -> None:
    model = LoadedModel(card(labels=[f"c{i}" for i in range(classes)]), SmallCNN(classes))
    rows = 32 if classes < 500 else 4
    logits = torch.randn(rows, classes, generator=torch.Generator().manual_seed(0))
    scores, indices = torch.softmax(logits, dim=1).topk(5, dim=1)
    for row, row_s, row_i in zip(model.postprocess(logits), scores, indices, strict=True):
        assert [p["label"] for p in row] == [f"c{i}" for i in row_i.tolist()]
        assert [p["score"] for p in row] == pytest.approx(row_s.tolist(), abs=1e-6)


# --- prepare ------------------------------------------------------------------------------


def test_prepare_stretch_sizes_and_channel_order() -> None:
    bgr = np.zeros((240, 320, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR
    rgb = prepare(bgr, InputSpec(64, 64))
    assert rgb.shape == (64, 64, 3) and rgb.flags.c_contiguous
    assert (rgb[..., 2] == 200).all() and (rgb[..., 0] == 0).all()
    kept = prepare(bgr, InputSpec(100, 50, channel_order="bgr"))
    assert kept.shape == (50, 100, 3) and (kept[..., 0] == 200).all()
    assert prepare(bgr[:10, :10], InputSpec(64, 48)).shape == (48, 64, 3)  # upscale


def test_prepare_letterbox_pads_with_grey() -> None:
    bgr = np.full((240, 320, 3), 10, np.uint8)
    out = prepare(bgr, InputSpec(64, 64, resize="letterbox"))
    assert out.shape == (64, 64, 3)
    # 320x240 -> 64x48, centred: 8 rows of padding above and below.
    assert (out[:8] == 114).all() and (out[56:] == 114).all() and (out[8:56] == 10).all()
    tall = prepare(np.full((100, 50, 3), 10, np.uint8), InputSpec(64, 64, resize="letterbox"))
    assert (tall[:, :16] == 114).all() and (tall[:, 16:48] == 10).all()


def test_prepare_rejects_non_images() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        prepare(np.zeros((10, 10), np.uint8), InputSpec(8, 8))
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        prepare(np.zeros((10, 10, 3), np.float32), InputSpec(8, 8))


# --- the demo model -----------------------------------------------------------------------


def test_committed_demo_model_classifies_camera_frames() -> None:
    """The product's path: 320x240 scenes, JPEG q90, decoded, prepared down to 64x64."""
    model = load_model(resolve_model(None))
    assert (model.card.name, model.card.architecture) == ("demo-shapes", "small-cnn")
    assert model.card.labels == sorted(CLASSES)  # the dataset's labels, sorted
    assert (DEFAULT_MODEL_DIR / "weights.pt").stat().st_size < 1_000_000
    engine = InferenceEngine(model, "cpu", max_batch=64, warm_up=False)
    scenes, labels = synthetic_dataset(n=300, seed=12345, width=320, height=240)
    images = []
    for scene in scenes:
        ok, data = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        images.append(engine.preprocess_host(cv2.imdecode(data, cv2.IMREAD_COLOR)))
    predictions = engine.predict(np.stack(images))
    correct = sum(p[0]["label"] == label for p, label in zip(predictions, labels, strict=True))
    assert correct / len(labels) >= 0.95


def test_committed_demo_model_says_how_it_was_made() -> None:
    """`framewire train-demo --out models/demo` wrote it: a registered version of a run."""
    card = load_model(DEFAULT_MODEL_DIR).card
    training = json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())
    assert training["model"] == {"name": card.name, "version": card.version}
    assert training["dataset"].startswith(f"{card.name}@") and len(training["run_id"]) == 32
    assert training["validation"]["accuracy"] >= 0.98
    reference = json.loads((DEFAULT_MODEL_DIR / "reference.json").read_text())
    assert reference["model"] == training["model"] and reference["dataset"] == training["dataset"]
