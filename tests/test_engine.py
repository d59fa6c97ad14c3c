"""The inference engine on the CPU (the CUDA path needs a GPU and is exercised by bench)."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import torch

from models.architectures import SmallCNN
from models.device import resolve_device
from models.loader import LoadedModel
from models.spec import InputSpec, ModelCard
from workers.batcher import DynamicBatcher
from workers.device import DeviceStage, Rejected
from workers.engine import InferenceEngine
from workers.work import WorkItem

LABELS = ["circle", "square", "triangle", "star", "cross", "ring"]
SPEC = InputSpec(width=40, height=32)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    torch.manual_seed(0)
    module = SmallCNN(len(LABELS))
    # Non-trivial batch-norm statistics, so that eval mode is really exercised.
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    card = ModelCard("t", "1", "small-cnn", "classification", LABELS, SPEC)
    return LoadedModel(card, module.eval())


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (10, 32, 40, 3), dtype=np.uint8)


def reference(model: LoadedModel, images: np.ndarray) -> torch.Tensor:
    """The plain way: float tensor, /255, (x - mean) / std, module, softmax."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(SPEC.mean).view(1, 3, 1, 1)) / torch.tensor(SPEC.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return torch.softmax(model.module(x), dim=1)


def test_predict_matches_plain_module(model: LoadedModel, images: np.ndarray) -> None:
    engine = InferenceEngine(model, "cpu", max_batch=16)
    expected = reference(model, images)
    predictions = engine.predict(images)
    assert len(predictions) == len(images)
    for row, probabilities in zip(predictions, expected, strict=True):
        assert len(row) == 5
        assert row[0]["label"] == LABELS[int(probabilities.argmax())]
        for p in row:
            assert p["score"] == pytest.approx(float(probabilities[LABELS.index(p["label"])]),
                                               abs=1e-4)


def test_cpu_batches_run_frozen_and_an_observed_one_too_with_the_eager_answers(
    model: LoadedModel, images: np.ndarray
) -> None:
    engine = InferenceEngine(model, "cpu", max_batch=16, warm_up=False)
    assert isinstance(engine._frozen, torch.jit.ScriptModule)
    served = engine.submit(images)
    observed = engine.submit(images, observe=True)  # the graph returns the embeddings too
    engine._frozen = None
    eager = engine.submit(images, observe=True)  # the hook on the eager module
    answers = served.result(), observed.result(), eager.result()
    assert served.embeddings() is None and len(observed.embeddings()) == len(images)
    np.testing.assert_allclose(observed.embeddings(), eager.embeddings(), rtol=1e-4, atol=1e-4)
    for a, *others in zip(*answers, strict=True):
        for b in others:
            assert [p["label"] for p in a] == [p["label"] for p in b]
            assert [p["score"] for p in a] == pytest.approx([p["score"] for p in b], abs=1e-5)


def test_batch_equals_one_at_a_time(model: LoadedModel, images: np.ndarray) -> None:
    engine = InferenceEngine(model, "cpu", max_batch=4, warm_up=False)
    batched = engine.predict(images)  # 10 images, in chunks of max_batch
    for image, row in zip(images, batched, strict=True):
        single = engine.predict(image[None])[0]
        assert [p["label"] for p in single] == [p["label"] for p in row]
        assert [p["score"] for p in single] == pytest.approx([p["score"] for p in row], abs=1e-5)


def test_submit_on_cpu_is_synchronous(model: LoadedModel, images: np.ndarray) -> None:
    engine = InferenceEngine(model, "cpu", max_batch=4, warm_up=False)
    pending = engine.submit(images[:3])
    assert pending.done()
    assert len(pending.result()) == 3
    assert pending.result() is pending.result()  # postprocessed once
    assert engine.submit(images[:0]).result() == []
    with pytest.raises(ValueError, match="exceeds max_batch 4"):
        engine.submit(images[:5])


def test_bad_input_is_a_clear_error(model: LoadedModel) -> None:
    engine = InferenceEngine(model, "cpu", max_batch=4, warm_up=False)
    with pytest.raises(ValueError, match=r"expected N x 32 x 40 x 3 images"):
        engine.predict(np.zeros((1, 40, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        engine.predict(np.zeros((1, 32, 40, 3), np.float32))


def test_read_only_input_is_accepted(model: LoadedModel, images: np.ndarray) -> None:
    engine = InferenceEngine(model, "cpu", warm_up=False)
    frozen = images.copy()
    frozen.flags.writeable = False
    assert engine.predict(frozen) == engine.predict(images)


def test_engine_properties_and_threads(model: LoadedModel) -> None:
    threads = torch.get_num_threads()
    engine = InferenceEngine(model, "cpu", max_batch=8)  # warms up
    assert torch.get_num_threads() == threads  # the caller decides, not the engine
    assert engine.card is model.card
    assert engine.device_memory_bytes() is None
    bgr = np.zeros((240, 320, 3), np.uint8)
    assert engine.preprocess_host(bgr).shape == (32, 40, 3)


def test_bf16_on_cpu_runs(model: LoadedModel, images: np.ndarray) -> None:
    engine = InferenceEngine(model, "cpu", precision="bf16", warm_up=False)
    assert len(engine.predict(images[:2])) == 2


def test_bad_settings(model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceEngine(model, "cpu", precision="int4")
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        InferenceEngine(model, "cpu", max_batch=0)


def test_resolve_device(model: LoadedModel) -> None:
    cuda = torch.cuda.is_available()
    assert resolve_device(None) == resolve_device("auto") == ("cuda" if cuda else "cpu")
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("cuda:x")
    if not cuda:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
        with pytest.raises(ValueError, match="CUDA is not available"):
            InferenceEngine(model, "cuda")


def test_outputs_that_do_not_fit_the_card_fail_on_the_device_thread(images: np.ndarray) -> None:
    """wait() checks the outputs, so a model whose logits do not match its labels fails where
    the device stage rejects its frames; the writer only builds predictions that fit."""
    card = ModelCard("t", "1", "small-cnn", "classification", LABELS, SPEC)
    engine = InferenceEngine(LoadedModel(card, SmallCNN(len(LABELS) + 1).eval()), "cpu",
                             max_batch=4, warm_up=False)  # fmt: skip
    with pytest.raises(ValueError, match="expected N x 6 logits"):
        engine.submit(images[:2]).wait()
    finished: queue.Queue = queue.Queue()
    stage = DeviceStage(DynamicBatcher(queue.Queue(), 4, 0), lambda: engine, finished,
                        prepare_again=lambda item, e: item, on_model_loaded=lambda e: None)
    stage.engine = engine
    items = [WorkItem(None, 1, 0.0, image=image, input_spec=SPEC) for image in images[:2]]
    stage._collect(stage._launch(items))
    rejected = finished.get_nowait()
    assert isinstance(rejected, Rejected) and rejected.items == items
    assert {item.error_stage for item in items} == {"inference"}


def test_bf16_on_the_cpu_runs_frozen_and_answers_as_fp32_does(
    model: LoadedModel, images: np.ndarray
) -> None:
    """FRAMEWIRE_PRECISION=bf16 on a CPU: the frozen graph holds a bf16 copy (fast on AMX,
    correct anywhere); top-1 and scores as in fp32, within bf16's precision."""
    bf16 = InferenceEngine(model, "cpu", max_batch=16, precision="bf16", warm_up=False)
    fp32 = InferenceEngine(model, "cpu", max_batch=16, warm_up=False)
    assert isinstance(bf16._frozen, torch.jit.ScriptModule)
    observed = bf16.submit(images, observe=True)
    answers, expected = observed.result(), fp32.predict(images)
    assert observed.embeddings().dtype == np.float32 and len(observed.embeddings()) == len(images)
    for a, b in zip(answers, expected, strict=True):
        assert a[0]["label"] == b[0]["label"]
        assert a[0]["score"] == pytest.approx(b[0]["score"], abs=0.02)
