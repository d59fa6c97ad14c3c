"""Observations: what a sampled batch shows the drift monitor, as one `observation` event.

One device batch in FRAMEWIRE_OBSERVE_EVERY keeps its prepared images and the embeddings
of its forward pass (workers/device.py, workers/engine.py). The writer thread, which
waits on I/O most of the time anyway, measures each image here (brightness, contrast,
sharpness: models/observe.py, the functions the reference was taken with) and sends them
with the prediction, the confidence, the ground truth when the frame carried one, and the
embedding. The device thread pays only for keeping the batch's images and one copy of its
embeddings.
"""

from __future__ import annotations

from typing import Any

from models.observe import input_statistics
from schemas import Event
from workers.device import FinishedBatch

_DECIMALS = 4  # embeddings: a few KB per frame at ResNet-50's 2,048 dimensions


def observation_event(batch: FinishedBatch, worker: str) -> Event:
    """The `observation` event of an observed batch (batch.observed is set)."""
    observed = batch.observed
    assert observed is not None
    frames: list[dict[str, Any]] = []
    for i, (item, predictions) in enumerate(zip(batch.items, batch.predictions, strict=True)):
        frame = item.frame
        if frame is None or not predictions:
            continue
        entry: dict[str, Any] = {
            "stream_id": frame.stream_id,
            "frame_id": frame.frame_id,
            "predicted": predictions[0]["label"],
            "confidence": round(float(predictions[0]["score"]), _DECIMALS),
            **{k: round(v, 3) for k, v in
               input_statistics(observed.images[i], observed.channel_order).items()},
        }  # fmt: skip
        if frame.label is not None:
            entry["label"] = frame.label
        if observed.embeddings is not None:
            entry["embedding"] = [round(float(v), _DECIMALS) for v in observed.embeddings[i]]
        frames.append(entry)
    return Event("observation", worker,
                 {"model": f"{batch.model_name}:{batch.model_version}", "frames": frames})
