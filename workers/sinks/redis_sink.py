"""Results into Redis: per frame (TTL), latest per stream, per-stream Redis Stream, replies,
and a short-lived copy of each frame's bytes.

One script call per batch. Idempotent by frame id: a redelivered frame overwrites
its result and does not append to the stream a second time (the script appends only when
SET ... GET finds no earlier result), and `latest` only moves to a higher seq.

The frame copy (`fw:frame:{frame_id}`, FRAMEWIRE_FRAME_COPY_TTL_S) lets the feedback
collector join a label to its frame when the frames topic no longer has it. It rides in
the same script call as the results: the bytes are already in the worker's memory, and a
second round trip per batch would cost more than the copy itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from foundation.rediskeys import frame_key, latest_key, reply_key, result_key, stream_key
from schemas import Frame

# One call per batch. KEYS: (result, latest, stream, frame copy) per frame; ARGV: ttl,
# maxlen, copy ttl, then (json, seq, data, encoding, width, height) per frame, data empty
# for no copy and width/height empty when unknown. A stream's latest seq is decoded once
# per call, not per frame.
_WRITE_RESULTS = """
local ttl, maxlen, copy_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local latest_seq = {}
for i = 0, #KEYS / 4 - 1 do
  local result_key, latest_key, stream_key = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3]
  local a = 6 * i + 4
  local json, seq, data = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  if copy_ttl > 0 and data ~= '' then
    local frame_key, width = KEYS[4 * i + 4], ARGV[a + 4]
    if width == '' then
      redis.call('HSET', frame_key, 'data', data, 'encoding', ARGV[a + 3])
    else
      redis.call('HSET', frame_key, 'data', data, 'encoding', ARGV[a + 3],
                 'width', width, 'height', ARGV[a + 5])
    end
    redis.call('EXPIRE', frame_key, copy_ttl)
  end
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
    frame: Frame | None = None  # the frame whose bytes to copy; None: no copy


class RedisSink:
    def __init__(
        self,
        client: redis.Redis,
        result_ttl_s: int,
        stream_maxlen: int,
        reply_ttl_s: int,
        frame_copy_ttl_s: int = 0,  # FRAMEWIRE_FRAME_COPY_TTL_S; 0: no copies
    ) -> None:
        self.client = client
        self.result_ttl_s = result_ttl_s
        self.stream_maxlen = stream_maxlen
        self.reply_ttl_s = reply_ttl_s
        self.frame_copy_ttl_s = frame_copy_ttl_s
        self._script = client.register_script(_WRITE_RESULTS)

    def write(self, results: list[RedisResult]) -> None:
        """Write a batch: one script call, plus one pipeline for the gateway's reply lists
        when there are any. Raises redis.RedisError (the caller retries)."""
        keys: list[str] = []
        copy = self.frame_copy_ttl_s > 0
        args: list[bytes | int | str] = [self.result_ttl_s, self.stream_maxlen,
                                         self.frame_copy_ttl_s]  # fmt: skip
        for r in results:
            keys += [result_key(r.frame_id), latest_key(r.stream_id), stream_key(r.stream_id),
                     frame_key(r.frame_id)]  # fmt: skip
            frame = r.frame if copy else None
            if frame is None:
                args += [r.json, r.seq, b"", "", "", ""]
            else:
                args += [r.json, r.seq, frame.data, frame.encoding,
                         "" if frame.width is None else frame.width,
                         "" if frame.height is None else frame.height]  # fmt: skip
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
