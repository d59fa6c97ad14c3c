"""What one gateway app holds: settings, per-process connections, limits, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.settings import Settings
from producers.gateway.auth import ApiKeys
from producers.gateway.errors import ApiError
from producers.gateway.health import Readiness
from producers.gateway.metrics import GatewayMetrics
from producers.gateway.overload import InFlightLimiter
from producers.gateway.parsing import Limits
from producers.gateway.resources import Resources


@dataclass
class GatewayState:
    settings: Settings
    resources: Resources
    metrics: GatewayMetrics
    api_keys: ApiKeys
    limiter: InFlightLimiter
    readiness: Readiness
    limits: Limits = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = Limits(s.gateway_max_batch, s.max_frame_bytes, s.max_frame_pixels)

    @classmethod
    def build(cls, settings: Settings, resources: Resources | None = None) -> GatewayState:
        resources = resources or Resources(settings)
        return cls(
            settings=settings,
            resources=resources,
            metrics=GatewayMetrics(),
            api_keys=ApiKeys(settings.api_keys),
            limiter=InFlightLimiter(settings.gateway_max_in_flight),
            readiness=Readiness(resources),
        )

    @property
    def timeout_s(self) -> float:
        return self.settings.gateway_timeout_ms / 1000

    def check_lag(self) -> None:
        """503 when the workers are too far behind for a new request to finish in time.

        An unknown lag (Kafka unreachable) does not refuse: publishing will say so.
        """
        limit = self.settings.gateway_max_lag
        if limit <= 0:
            return
        lag = self.resources.lag.reading().lag
        if lag is not None and lag > limit:
            raise ApiError(
                503, "overloaded",
                f"the workers are {lag} frames behind (limit {limit}); retry shortly",
                headers={"Retry-After": "2"},
            )  # fmt: skip
