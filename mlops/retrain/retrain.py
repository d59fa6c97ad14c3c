"""Retraining: the newest version of the dataset production was trained on (the old data
plus the collected feedback), the same architecture and input, then the promotion gate.

    requested (drift persisting, feedback collected, a schedule, a person)
      -> skipped if a retrain started after the request (it saw the same data)
      -> skipped if another one holds the lease (never two at once: foundation/lease.py)
      -> train (tracked, registered) -> promote (the gate; the workers follow)

Each step is a `retrain` event on the monitoring topic. A failed training or a refused
candidate leaves production where it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from foundation.lease import Lease
from foundation.rediskeys import retrain_lease_key, retrain_started_key
from foundation.settings import Settings
from mlops.registry.promote import promote
from mlops.registry.store import Registry, RegistryError
from mlops.train import TrainConfig, train
from schemas import Event
from schemas.frame import now_ms

RETRAINER = "retrainer"  # the `worker` of its events
LEASE_TTL_S = 60
# Fine-tuning from production: a third of training's default rate, so the weights move
# towards the new data without forgetting the old in a few epochs.
FINE_TUNE_LR = 1e-3


@dataclass(frozen=True)
class RetrainRequest:
    name: str  # the registered model
    reason: str  # drift: <metric>, feedback: <n> labels, schedule, manual
    requested_at: int = dataclasses.field(default_factory=now_ms)
    alias: str = "production"
    dataset: str | None = None  # NAME; None: the one production was validated on
    epochs: int = 10
    device: str = "auto"
    fine_tune: bool = True  # start from production's weights (a lower learning rate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RetrainOutcome:
    state: str  # skipped | refused | promoted | failed
    detail: str
    version: str | None = None  # the candidate trained, if any
    production: str | None = None  # the alias's version afterwards

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def retrain(settings: Settings, request: RetrainRequest,
            emit: Callable[[Event], None]) -> RetrainOutcome:  # fmt: skip
    def step(name: str, **fields: Any) -> None:
        emit(Event("retrain", RETRAINER, {"step": name, "model": request.name,
                                          "reason": request.reason, **fields}))  # fmt: skip

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        last = client.get(retrain_started_key(request.name))
        if last is not None and int(last) >= request.requested_at:
            return _skipped(step, "a retrain started after this request (it saw the same data)")
        lease = Lease(client, retrain_lease_key(request.name), LEASE_TTL_S)
        if not lease.acquire():
            return _skipped(step, "another retrain is running")
        with lease:
            client.set(retrain_started_key(request.name), now_ms())
            return _run(settings, request, step)
    finally:
        client.close()


def _run(settings: Settings, request: RetrainRequest, step: Callable[..., None]) -> RetrainOutcome:
    registry = Registry(settings)
    production = registry.alias_version(request.name, request.alias)
    try:
        config = _config(registry, request, production)
        step("started", dataset=config.dataset, production=production)
        result = train(settings, config)
        step("trained", version=result.model_version,
             accuracy=round(result.evaluation.accuracy, 4))  # fmt: skip
        promotion = promote(settings, request.name, result.model_version, request.alias,
                            device=config.device)  # fmt: skip
    except Exception as exc:  # production stays as it was; say why
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        step("failed", reason_failed=detail)
        return RetrainOutcome("failed", detail, production=production)
    if not promotion.promoted:
        reasons = "; ".join(promotion.decision.reasons) or "not promoted"
        step("refused", version=result.model_version, reasons=promotion.decision.reasons)
        return RetrainOutcome("refused", reasons, result.model_version, production)
    step("promoted", version=result.model_version, previous=production)
    return RetrainOutcome("promoted", promotion.notified, result.model_version,
                          result.model_version)  # fmt: skip


def _config(registry: Registry, request: RetrainRequest, production: str | None) -> TrainConfig:
    """Production's recipe (architecture, input size) on the newest version of its data."""
    if production is None:
        raise RegistryError(f"{request.name}@{request.alias} points nowhere: nothing to retrain")
    info = registry.version(request.name, production)
    card = registry.card(request.name, production)
    dataset = request.dataset or (info.dataset or "").partition("@")[0]
    if not dataset:
        raise RegistryError(f"{request.name} version {production} names no dataset (tag "
                            "`dataset`): say which with the request")  # fmt: skip
    config = TrainConfig(dataset=f"{dataset}@latest", arch=card.architecture,
                         input_size=card.input.width, epochs=request.epochs,
                         device=request.device, name=request.name)  # fmt: skip
    if request.fine_tune:
        config = dataclasses.replace(config, lr=FINE_TUNE_LR,
                                     init_from=registry.fetch(request.name, production).path)
    return config


def _skipped(step: Callable[..., None], detail: str) -> RetrainOutcome:
    step("skipped", detail=detail)
    return RetrainOutcome("skipped", detail)

