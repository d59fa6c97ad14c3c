"""Delivery counts per record, kept in Redis so that they outlive a worker that crashed.

A frame that kills its worker process (a decoder segfault, an out-of-memory kill, a model
that hangs past the inference deadline) is redelivered to the next owner of its
partition, and would kill that one too, for ever. Counting deliveries before work starts
breaks the loop: past FRAMEWIRE_MAX_DELIVERIES the frame goes to the DLQ undecoded, as
Celery's late acknowledgement with a redelivery limit does for tasks.

Layout: one hash per (consumer group, topic, partition); field `<offset>` counts the
deliveries, field `<offset>:suspect` marks a frame that was in a batch past the inference
deadline, so that it runs alone next time. At each commit the fields below the committed
offset are deleted: a finished frame never counts again, and a replay from an earlier
offset starts from zero. The cost is one script call per poll and one per commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from framewire.log import get_logger
from framewire.rediskeys import deliveries_key
from workers import metrics
from workers.offsets import Partition

log = get_logger(__name__)

# KEYS: one hash per partition; ARGV: ttl, then per key: n, n offsets. Returns (deliveries,
# suspect) per offset, in order.
_COUNT = """
local ttl, out, a = ARGV[1], {}, 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[a]); a = a + 1
  for j = 1, n do
    local offset = ARGV[a]; a = a + 1
    out[#out + 1] = redis.call('HINCRBY', KEYS[k], offset, 1)
    out[#out + 1] = redis.call('HEXISTS', KEYS[k], offset .. ':suspect')
  end
  redis.call('EXPIRE', KEYS[k], ttl)
end
return out
"""

# KEYS: one hash per partition; ARGV: the committed offset of each. A hash holds about the
# partition's frames in flight, so walking its fields is cheap.
_FORGET = """
for k = 1, #KEYS do
  local below = tonumber(ARGV[k])
  for _, field in ipairs(redis.call('HKEYS', KEYS[k])) do
    if tonumber(string.match(field, '^%d+')) < below then redis.call('HDEL', KEYS[k], field) end
  end
end
return 1
"""

_TTL_S = 86_400  # a partition nobody reads for a day forgets its counts
_WARN_EVERY_S = 30.0


@dataclass(frozen=True)
class Delivery:
    count: int  # this delivery's number, 1 for the first; 0 when it could not be counted
    suspect: bool  # it was in a batch that ran past the inference deadline


UNCOUNTED = Delivery(0, False)


class DeliveryCounter:
    """Used by the poll thread (count, forget) and the deadline watch (mark_suspects)."""

    def __init__(self, redis_url: str, group: str) -> None:
        # Its own short timeouts: the poll thread must not hang on a Redis outage.
        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.group = group
        self._count = self.client.register_script(_COUNT)
        self._forget = self.client.register_script(_FORGET)
        self._last_warning = 0.0

    def count(self, offsets: dict[Partition, list[int]]) -> dict[tuple[Partition, int], Delivery]:
        """Count one more delivery of each (partition, offset). During a Redis outage
        nothing is counted (poison detection pauses; the sinks stop the flow anyway)."""
        keys, args = [], [_TTL_S]
        for (topic, partition), offs in offsets.items():
            keys.append(deliveries_key(self.group, topic, partition))
            args += [len(offs), *offs]
        try:
            flat = self._count(keys=keys, args=args) if keys else []
        except (redis.RedisError, OSError) as exc:
            metrics.DELIVERY_COUNT_FAILURES.inc()
            self._warn("deliveries not counted; poison detection paused", exc)
            return {}
        pairs = [(p, o) for p, offs in offsets.items() for o in offs]
        return {
            pair: Delivery(int(flat[2 * i]), bool(flat[2 * i + 1]))
            for i, pair in enumerate(pairs)
        }

    def forget(self, committed: dict[Partition, int]) -> None:
        """Drop the counts below each partition's committed offset."""
        keys = [deliveries_key(self.group, t, p) for t, p in committed]
        try:
            self._forget(keys=keys, args=list(committed.values()))
        except (redis.RedisError, OSError) as exc:
            # Left for the TTL; a later replay of those offsets would start counted.
            self._warn("delivery counts not cleared", exc)

    def mark_suspects(self, frames: list[tuple[Partition, int]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for (topic, partition), offset in frames:
            key = deliveries_key(self.group, topic, partition)
            pipe.hset(key, f"{offset}:suspect", 1)
            pipe.expire(key, _TTL_S)
        pipe.execute()

    def close(self) -> None:
        self.client.close()

    def _warn(self, message: str, exc: BaseException) -> None:
        if time.monotonic() - self._last_warning > _WARN_EVERY_S:
            self._last_warning = time.monotonic()
            log.warning(message, error=f"{type(exc).__name__}: {exc}")
