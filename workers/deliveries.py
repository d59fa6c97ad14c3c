"""Delivery counts per record, kept in Redis so that they outlive a worker that crashed.

A frame that kills its worker process (a decoder segfault, an out-of-memory kill, a model
that hangs past the inference deadline) is redelivered to the next owner of its partition
and would kill that one too, for ever. Counting its deliveries breaks the loop: past
FRAMEWIRE_MAX_DELIVERIES it goes to the DLQ undecoded, as Celery's late acknowledgement
with a redelivery limit does for tasks.

Blame must fall on the frame that crashed, not on the frames polled with it. So there are
two counts. Every poll counts deliveries (`<offset>`, one script call per poll): a count
above 1 means the frame was in flight when an earlier owner stopped. Such a redelivered
frame is then run alone and in order (workers/device.py), and only then is its start
recorded (`<offset>:started`) and cleared again when it finishes. A frame that never
started (queued behind the one that crashed) is never blamed; the one that crashes every
time is the one whose recorded starts pile up.

One hash per (consumer group, topic, partition). At each commit the fields below the
committed offset are deleted: a finished frame never counts again, and a replay from an
earlier offset starts from zero.
"""

from __future__ import annotations

import time

import redis

from foundation.log import get_logger
from foundation.rediskeys import deliveries_key
from workers import metrics
from workers.offsets import Partition

log = get_logger(__name__)

# KEYS: one hash per partition; ARGV: ttl, then per key: n, n offsets. Returns each
# offset's delivery count, in order.
_COUNT = """
local ttl, out, a = ARGV[1], {}, 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[a]); a = a + 1
  for j = 1, n do
    out[#out + 1] = redis.call('HINCRBY', KEYS[k], ARGV[a], 1); a = a + 1
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
_REDIS_ERRORS = (redis.RedisError, OSError)


class DeliveryCounter:
    """count and forget run on the poll thread, record_start on the device thread,
    finished on the writer thread; redis-py's client is thread-safe."""

    def __init__(self, redis_url: str, group: str) -> None:
        # Its own short timeouts: the poll thread must not hang on a Redis outage.
        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.group = group
        self._count = self.client.register_script(_COUNT)
        self._forget = self.client.register_script(_FORGET)
        self._last_warning = 0.0

    def count(self, offsets: dict[Partition, list[int]]) -> dict[tuple[Partition, int], int]:
        """Count one more delivery of each (partition, offset). During a Redis outage
        nothing is counted (poison detection pauses; the sinks stop the flow anyway)."""
        keys, args = [], [_TTL_S]
        for (topic, partition), offs in offsets.items():
            keys.append(self._key((topic, partition)))
            args += [len(offs), *offs]
        if not keys:
            return {}
        try:
            counts = self._count(keys=keys, args=args)
        except _REDIS_ERRORS as exc:
            metrics.DELIVERY_COUNT_FAILURES.inc()
            self._warn("deliveries not counted; poison detection paused", exc)
            return {}
        pairs = [(p, o) for p, offs in offsets.items() for o in offs]
        return {pair: int(n) for pair, n in zip(pairs, counts, strict=True)}

    def record_start(self, partition: Partition, offset: int) -> int:
        """Record that a redelivered frame starts; how many starts were recorded before
        (0 when Redis cannot say)."""
        try:
            return int(self.client.hincrby(self._key(partition), f"{offset}:started", 1)) - 1
        except _REDIS_ERRORS as exc:
            self._warn("start not recorded; poison detection paused", exc)
            return 0

    def finished(self, frames: list[tuple[Partition, int]]) -> None:
        """Redelivered frames that finished: none of their starts crashed anything."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for partition, offset in frames:
                pipe.hdel(self._key(partition), f"{offset}:started")
            pipe.execute()
        except _REDIS_ERRORS as exc:
            self._warn("finished starts not cleared", exc)

    def forget(self, committed: dict[Partition, int]) -> None:
        """Drop the counts below each partition's committed offset."""
        try:
            self._forget(keys=[self._key(p) for p in committed], args=list(committed.values()))
        except _REDIS_ERRORS as exc:
            # Left for the TTL; a later replay of those offsets would start counted.
            self._warn("delivery counts not cleared", exc)

    def close(self) -> None:
        self.client.close()

    def _key(self, partition: Partition) -> str:
        return deliveries_key(self.group, *partition)

    def _warn(self, message: str, exc: BaseException) -> None:
        if time.monotonic() - self._last_warning > _WARN_EVERY_S:
            self._last_warning = time.monotonic()
            log.warning(message, error=f"{type(exc).__name__}: {exc}")
