"""Readiness: can this gateway answer predictions right now?

Ready when Redis answers PING, the frames topic's lag can be read from Kafka (so the
broker answers and the topic exists), and at least one worker answers a Celery ping.
Checked at most every READY_CACHE_S per process: probes from a load balancer or
Kubernetes must not turn into a Kafka + Celery round trip each.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from foundation.log import get_logger
from producers.gateway.resources import Resources

log = get_logger(__name__)

READY_CACHE_S = 2.0
PING_TIMEOUT_S = 1.0


class Readiness:
    def __init__(self, resources: Resources, cache_s: float = READY_CACHE_S) -> None:
        self.resources = resources
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._report: dict[str, Any] = {}

    def report(self) -> dict[str, Any]:
        """{"ready": bool, "checks": {name: {"ok": bool, ...}}}, cached for cache_s."""
        with self._lock:
            if time.monotonic() - self._checked_at >= self.cache_s:
                checks = {
                    "redis": self._redis(),
                    "kafka": self._kafka(),
                    "workers": self._workers(),
                }
                self._report = {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
                self._checked_at = time.monotonic()
                if not self._report["ready"]:
                    log.warning("gateway not ready", **{k: v for k, v in checks.items()})
            return self._report

    def _redis(self) -> dict[str, Any]:
        try:
            self.resources.redis.ping()
            return {"ok": True}
        except Exception as exc:  # any failure means "not ready", with the reason
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _kafka(self) -> dict[str, Any]:
        reading = self.resources.lag.reading(max_age_s=self.cache_s)
        if reading.lag is None:
            return {"ok": False, "error": reading.error}
        return {"ok": True, "lag": reading.lag}

    def _workers(self) -> dict[str, Any]:
        try:
            replies = self._ping()
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        names = sorted(name for reply in replies or [] for name in reply)
        if not names:
            return {"ok": False, "error": f"no worker answered a ping within {PING_TIMEOUT_S}s"}
        return {"ok": True, "answered": names}

    def _ping(self) -> list[dict[str, Any]]:
        # limit=1: one answer proves a worker is alive; no waiting out the timeout.
        control = self.resources.celery.control
        try:
            return control.ping(timeout=PING_TIMEOUT_S, limit=1)
        except (ConnectionError, redis.ConnectionError):
            # A pooled connection that Redis closed (a restart, a failover, CLIENT KILL)
            # fails once; the next one is fresh.
            return control.ping(timeout=PING_TIMEOUT_S, limit=1)
