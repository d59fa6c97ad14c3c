"""Where a backfill job's results go: the results.backfill topic and the job's own Redis
namespace (fw:backfill:{job}:result:{frame_id}). Live results are untouched unless the
job says --overwrite: then each result also goes where a live one would (fw:result:{id},
the stream's latest and its Redis Stream), through the live sink's idempotent script.

Results are written before the checkpoint moves past them, so a task killed in between
writes that chunk again when it resumes: the same keys in Redis, and at most one chunk
twice on the topic (the frame id tells a consumer which).
"""

from __future__ import annotations

import threading

import redis

from foundation.rediskeys import backfill_result_key
from foundation.settings import Settings
from schemas import Result
from workers.sinks import KafkaSink, RedisResult, RedisSink

JOB_HEADER = "fw-backfill-job"


class BackfillOutput:
    def __init__(
        self, settings: Settings, sink: KafkaSink, client: redis.Redis, job: str, overwrite: bool,
        abort: threading.Event,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.sink = sink  # the worker's producer, shared with the writer (it is thread-safe)
        self.abort = abort  # set on a hard stop: give up retrying (GaveUp)
        self.client = client
        self.job = job
        self.live = (
            RedisSink(client, settings.result_ttl_s, settings.stream_maxlen, settings.reply_ttl_s)
            if overwrite
            else None
        )

    def write(self, results: list[Result]) -> None:
        """Every result on the topic (acknowledged) and in Redis, or an exception."""
        encoded = [r.to_json() for r in results]
        headers = [(JOB_HEADER, self.job.encode())]
        delivery = self.sink.send_results(
            [(r.stream_id.encode(), data, r.frame_id) for r, data in zip(results, encoded,
                                                                         strict=True)],
            topic=self.settings.backfill_results_topic, headers=headers,
        )  # fmt: skip
        pipe = self.client.pipeline(transaction=False)
        for r, data in zip(results, encoded, strict=True):
            pipe.set(backfill_result_key(self.job, r.frame_id), data,
                     ex=self.settings.result_ttl_s)  # fmt: skip
        pipe.execute()
        if self.live is not None:
            self.live.write([RedisResult(r.frame_id, r.stream_id, r.seq, data, None)
                             for r, data in zip(results, encoded, strict=True)])  # fmt: skip
        failed = delivery.wait(self.abort)  # retriable failures are sent again
        if failed:
            raise next(iter(failed.values()))
