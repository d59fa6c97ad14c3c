"""Results into Redis: per frame (TTL), latest per stream, per-stream Redis Stream, replies.

One script call per batch. Idempotent by frame id: a redelivered frame overwrites
its result and does not append to the stream a second time (the script appends only when
SET ... GET finds no earlier result), and `latest` only moves to a higher seq.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from foundation.rediskeys import latest_key, reply_key, result_key, stream_key

# One call per batch. KEYS: (result, latest, stream) per frame; ARGV: ttl, maxlen, then
# (json, seq) per frame. A stream's latest seq is decoded once per call, not per frame.
_WRITE_RESULTS = """
local ttl, maxlen = ARGV[1], ARGV[2]
local latest_seq = {}
for i = 0, #KEYS / 3 - 1 do
  local result_key, latest_key, stream_key = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local json, seq = ARGV[2 * i + 3], tonumber(ARGV[2 * i + 4])
  local first = redis.call('SET', result_key, json, 'EX', ttl, 'GET') == false
  if latest_seq[latest_key] == nil then
    local current = redis.call('GET', latest_key)
    latest_seq[latest_key] = current and tonumber(cjson.decode(current)['seq']) or -1
  end
  if seq >= latest_seq[latest_key] then
    redis.call('SET', latest_key, json)
    latest_seq[latest_key] = seq
  end
  if first then
    redis.call('XADD', stream_key, 'MAXLEN', '~', maxlen, '*', 'result', json)
  end
end
return 1
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
        self._script = client.register_script(_WRITE_RESULTS)

    def write(self, results: list[RedisResult]) -> None:
        """Write a batch: one script call, plus one pipeline for the gateway's reply lists
        when there are any. Raises redis.RedisError (the caller retries)."""
        keys: list[str] = []
        args: list[bytes | int] = [self.result_ttl_s, self.stream_maxlen]
        for r in results:
            keys += [result_key(r.frame_id), latest_key(r.stream_id), stream_key(r.stream_id)]
            args += [r.json, r.seq]
        # Called directly, not inside a pipeline: redis-py would ask SCRIPT EXISTS before
        # every pipeline (an extra round trip per batch); direct EVALSHA loads it on demand.
        self._script(keys=keys, args=args)
        replies = [r for r in results if r.reply_to]
        if replies:  # after the results, so a woken client can also read fw:result:{id}
            pipe = self.client.pipeline(transaction=False)
            for r in replies:
                pipe.rpush(reply_key(r.reply_to), r.json)
                pipe.expire(reply_key(r.reply_to), self.reply_ttl_s)
            pipe.execute()
