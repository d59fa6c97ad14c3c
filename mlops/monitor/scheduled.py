"""The drift monitor on a schedule: Celery beat sends `framewire.monitor` every
FRAMEWIRE_MONITOR_EVERY_S, and `framewire retrain worker` runs it (mlops/tasks.py).

Each run reads the monitoring and feedback topics from where the last run stopped to their
current end, with the last run's open windows, streaks and live accuracy restored, then
saves both back to Redis (`fw:monitor:state`). So a drift that builds across runs is
confirmed once, as `framewire monitor --follow` would confirm it, rather than again in
every run. A lease keeps two runs (a slow one and the next) from reading at once; the
first run reads one schedule period back (at least FIRST_LOOKBACK_S).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from foundation.lease import Lease
from foundation.rediskeys import monitor_lease_key, monitor_state_key
from foundation.settings import Settings
from mlops.monitor.accuracy import Accuracy
from mlops.monitor.run import run_monitor

LEASE_TTL_S = 60  # renewed while the run reads
STATE_TTL_S = 7 * 86_400  # a monitor off for a week starts again as a first run
FIRST_LOOKBACK_S = 600  # a first run reads one period back, and at least this far


@dataclass(frozen=True)
class ScheduledRun:
    state: str  # done | skipped
    windows: int = 0
    drifts: int = 0
    positions: dict[str, int] | None = None
    accuracy: tuple[Accuracy, ...] = ()  # per version, then per stream

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "windows": self.windows, "drifts": self.drifts,
                "positions": self.positions,
                "accuracy": [row.to_dict() for row in self.accuracy]}  # fmt: skip


def run_scheduled(settings: Settings, publish: bool = True) -> ScheduledRun:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        lease = Lease(client, monitor_lease_key(), LEASE_TTL_S)
        if not lease.acquire():
            return ScheduledRun("skipped")
        with lease:
            saved = client.get(monitor_state_key())
            state = json.loads(saved) if saved else {"positions": {}, "monitor": None}
            since_ms = int((time.time() - max(settings.monitor_every_s, FIRST_LOOKBACK_S)) * 1000)
            positions = state["positions"]
            monitor = run_monitor(settings, since_ms, publish=publish, positions=positions,
                                  state=state["monitor"])  # fmt: skip
            state = {"positions": positions, "monitor": monitor.state()}
            client.set(monitor_state_key(), json.dumps(state), ex=STATE_TTL_S)
            accuracy = (*monitor.accuracy.per_version(), *monitor.accuracy.per_stream())
            return ScheduledRun("done", len(monitor.reports), len(monitor.drifts), positions,
                                accuracy)  # fmt: skip
    finally:
        client.close()
