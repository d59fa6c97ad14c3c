"""Reading results where the pipeline delivers them: Redis.

The worker appends each frame's result to its stream's Redis Stream in the same Lua
script that writes `fw:result:{frame_id}`, so an entry's id (Redis's clock, in ms) is the
moment the result landed in Redis. Using it, rather than the time this process read the
entry, keeps the reader's own delay (it shares the cores) out of every figure. The
frames' capture times come from this machine's clock too; against a remote Redis, a
clock offset between the hosts would shift every latency by that offset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from foundation.rediskeys import stream_key

_READ_COUNT = 2000
_BLOCK_MS = 200


@dataclass(frozen=True)
class Arrival:
    in_redis_ms: int  # when the result was written to Redis
    result: dict[str, Any]  # result/1

    @property
    def latency_ms(self) -> float:
        """Capture (the frame's fw-ts) to result in Redis."""
        return float(self.in_redis_ms - self.result["captured_at"])


class SinkReader:
    """Follows the Redis Streams of a phase's stream ids from their first entry."""

    def __init__(self, client: redis.Redis, stream_ids: list[str]) -> None:
        self.client = client
        self.cursors: dict[str, str] = {stream_key(s): "0-0" for s in stream_ids}

    def read(self, block_ms: int = _BLOCK_MS) -> list[Arrival]:
        reply = self.client.xread(self.cursors, count=_READ_COUNT, block=block_ms) or []
        arrivals = []
        for key, entries in reply:
            for entry_id, fields in entries:
                self.cursors[key.decode() if isinstance(key, bytes) else key] = entry_id
                millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
                             .split("-")[0])  # fmt: skip
                arrivals.append(Arrival(millis, json.loads(fields[b"result"])))
        return arrivals

    def collect(
        self,
        expected: set[str],
        stall_timeout_s: float,
        check: Callable[[], None] = lambda: None,
        on_first: Callable[[], None] = lambda: None,
    ) -> dict[str, Arrival]:
        """Arrivals of the expected frame ids, until all are in or nothing new came for
        stall_timeout_s; check() may raise (e.g. the worker died). on_first() runs when
        the first result is seen."""
        found: dict[str, Arrival] = {}
        last_progress = time.monotonic()
        while len(found) < len(expected):
            check()
            arrivals = [a for a in self.read() if a.result["frame_id"] in expected]
            if arrivals:
                if not found:
                    on_first()
                for arrival in arrivals:
                    found.setdefault(arrival.result["frame_id"], arrival)
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > stall_timeout_s:
                break
        return found
