"""Results into Redis: per frame (TTL), latest per stream, per-stream Redis Stream, replies.

One pipeline round trip per batch. Idempotent by frame id: a redelivered frame overwrites
its result and does not append to the stream a second time (the script appends only when
SET ... GET finds no earlier result), and `latest` only moves to a higher seq.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from framewire.rediskeys import latest_key, reply_key, result_key, stream_key

_WRITE_RESULT = """
local first = redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'GET') == false
local current = redis.call('GET', KEYS[2])
if (not current) or tonumber(cjson.decode(current)['seq']) <= tonumber(ARGV[4]) then
  redis.call('SET', KEYS[2], ARGV[1])
end
if first then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'result', ARGV[1])
end
return first and 1 or 0
"""


@dataclass(frozen=True)
class RedisResult:
    frame_id: str
    stream_id: str
    seq: int
    json: bytes
    reply_to: str | None


class RedisSink:
    def __init__(
        self, client: redis.Redis, result_ttl_s: int, stream_maxlen: int, reply_ttl_s: int
    ) -> None:
        self.client = client
        self.result_ttl_s = result_ttl_s
        self.stream_maxlen = stream_maxlen
        self.reply_ttl_s = reply_ttl_s
        self._script = client.register_script(_WRITE_RESULT)

    def write(self, results: list[RedisResult]) -> None:
        """Write a batch in one round trip; raises redis.RedisError (the caller retries)."""
        pipe = self.client.pipeline(transaction=False)
        for r in results:
            self._script(
                keys=[result_key(r.frame_id), latest_key(r.stream_id), stream_key(r.stream_id)],
                args=[r.json, self.result_ttl_s, self.stream_maxlen, r.seq],
                client=pipe,
            )
            if r.reply_to:
                pipe.rpush(reply_key(r.reply_to), r.json)
                pipe.expire(reply_key(r.reply_to), self.reply_ttl_s)
        pipe.execute()
