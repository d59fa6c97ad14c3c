"""The request flow: images -> frames with `fw-reply-to` -> results from the reply list.

One request id per HTTP request (uuid4 hex) and one reply list `fw:reply:{request_id}`.
Every image of the request is published first (the producer batches them, and the
workers batch them with every other stream's frames); then the request waits with BLPOP
until each of its frame ids has a result or the deadline passes. Delivery is
at-least-once, so a frame may be answered twice: the first answer counts, duplicates and
strangers are ignored. The list is deleted at the end; results that come after a 504
land on a list that expires (FRAMEWIRE_REPLY_TTL_S) and stay readable by frame id.

A dropped Redis connection does not fail a waiting request: the reply list lives in Redis,
not in the connection, so the wait reconnects and goes on until its deadline.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass

import redis

from foundation.rediskeys import reply_key
from producers.gateway.images import Upload
from producers.gateway.resources import Resources
from schemas import Frame, new_frame_id, now_ms

# BLPOP's timeout 0 means "forever": never hand it less than this.
_MIN_BLOCK_S = 0.01
_RECONNECT_PAUSE_S = 0.2
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class DeadlineExceeded(Exception):
    def __init__(self, request_id: str, frame_ids: list[str], pending: list[str]) -> None:
        super().__init__(f"{len(pending)} of {len(frame_ids)} results missing")
        self.request_id = request_id
        self.frame_ids = frame_ids
        self.pending = pending


class PartlyPublished(Exception):
    """Publishing failed after some frames of the request were handed to Kafka."""

    def __init__(self, request_id: str, frame_ids: list[str], cause: Exception) -> None:
        super().__init__(str(cause))
        self.request_id = request_id
        self.frame_ids = frame_ids
        self.cause = cause


@dataclass
class Dispatch:
    request_id: str
    frames: list[Frame]

    @property
    def frame_ids(self) -> list[str]:
        return [f.frame_id for f in self.frames]


def new_dispatch(uploads: list[Upload], stream_id: str, model: str | None) -> Dispatch:
    request_id = uuid.uuid4().hex
    captured = now_ms()
    # seq orders a stream's results (`latest` moves only to a higher seq). HTTP clients
    # have no frame counter, and several gateway processes share a stream, so seq is the
    # request's time in microseconds, plus the image's index within the request.
    base = time.time_ns() // 1_000
    frames = [
        Frame(
            stream_id=stream_id,
            seq=base + i,
            data=upload.data,
            encoding=upload.encoding,
            frame_id=new_frame_id(),
            captured_at_ms=captured,
            width=upload.width,
            height=upload.height,
            model=model,
            reply_to=request_id,
        )
        for i, upload in enumerate(uploads)
    ]
    return Dispatch(request_id, frames)


def publish(resources: Resources, dispatch: Dispatch) -> None:
    """Hand every frame to the producer (no wait for acknowledgements: the results are)."""
    publisher = resources.publisher
    sent: list[str] = []
    for frame in dispatch.frames:
        try:
            publisher.send(frame)
        except Exception as exc:
            if not sent:
                raise
            raise PartlyPublished(dispatch.request_id, sent, exc) from exc
        sent.append(frame.frame_id)


def wait_for_results(resources: Resources, dispatch: Dispatch, timeout_s: float) -> list[dict]:
    """The result/1 dicts in the order of dispatch.frames, or DeadlineExceeded."""
    deadline = time.monotonic() + timeout_s
    key = reply_key(dispatch.request_id)
    wanted = set(dispatch.frame_ids)
    results: dict[str, dict] = {}
    client = resources.redis
    try:
        while len(results) < len(wanted):
            left = deadline - time.monotonic()
            if left <= 0:
                pending = [i for i in dispatch.frame_ids if i not in results]
                raise DeadlineExceeded(dispatch.request_id, dispatch.frame_ids, pending)
            try:
                popped = client.blpop([key], timeout=max(left, _MIN_BLOCK_S))
            except _CONNECTION_ERRORS:
                # redis-py reconnects on the next command; the replies wait in the list.
                time.sleep(min(_RECONNECT_PAUSE_S, max(left, 0)))
                continue
            if popped is None:
                continue
            result = json.loads(popped[1])
            frame_id = result.get("frame_id") if isinstance(result, dict) else None
            if frame_id in wanted and frame_id not in results:
                results[frame_id] = result
    finally:
        with suppress(*_CONNECTION_ERRORS):  # else the list expires by itself
            client.delete(key)
    return [results[i] for i in dispatch.frame_ids]
