"""POST /v1/feedback: labels for frames, checked as a whole, then on the feedback topic.

The body is JSON: one feedback object or a list of them (docs/GATEWAY.md). Each object
has `frame_id` and `label`, and may have `source` (default `gateway`), `ts` (default:
now), `box` and `note`; it becomes a feedback/1 record keyed by its frame id. Nothing is
published unless every item is valid, and the answer (202) comes once the broker has
acknowledged every record, so an accepted label is never lost by the gateway.

A label also extends its frame's Redis copy (fw:frame:{frame_id}) to the result's TTL:
the copy is short-lived so that Redis holds minutes of frames, not a day, and the
collector, which may run hours later, still finds the labelled ones there when the frames
topic no longer has them. That extension is best effort: a Redis error is logged and the
labels are accepted anyway (they are on Kafka already).
"""

from __future__ import annotations

import json
from typing import Any

import redis
from flask import Request
from kafka.errors import KafkaError

from foundation.log import get_logger
from foundation.rediskeys import frame_key
from producers.gateway.errors import ApiError
from producers.gateway.state import GatewayState
from schemas import FEEDBACK_SCHEMA, Feedback, SchemaError, now_ms

log = get_logger(__name__)

# Labels are typed or clicked by people: a request of 500 is a whole review session, and
# 1 MB holds 500 items of 2 KB (a feedback/1 record is about 150 bytes without a note).
MAX_FEEDBACK_ITEMS = 500
MAX_FEEDBACK_BODY_BYTES = 1_048_576
DEFAULT_SOURCE = "gateway"
# Keys a client may send; any other is refused, so a typo ("lable") is not silently lost.
_KEYS = frozenset({"schema", "frame_id", "label", "source", "ts", "box", "note"})


def accept_feedback(gw: GatewayState, request: Request) -> int:
    """Parse, validate, publish and acknowledge the request's feedback; how many items.
    Raises ApiError (4xx for the request, 503 when Kafka cannot take it)."""
    items = parse_feedback(request)
    _publish(gw, items)
    _keep_frame_copies(gw, items)
    return len(items)


def parse_feedback(request: Request) -> list[Feedback]:
    """The request's feedback items, each checked against feedback/1, or an ApiError."""
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type",
            f"content type {mimetype or 'none'!r} is not supported here; send application/json",
        )  # fmt: skip
    body = _read_body(request)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    single = isinstance(doc, dict)
    if not single and not isinstance(doc, list):
        raise ApiError(400, "malformed_json", "the JSON body must be an object or a list")
    docs = [doc] if single else doc
    if not docs:
        raise ApiError(400, "no_feedback", "the request carries no feedback")
    if len(docs) > MAX_FEEDBACK_ITEMS:
        raise ApiError(
            413, "too_many_items",
            f"{len(docs)} feedback items in one request; the limit is {MAX_FEEDBACK_ITEMS}",
        )  # fmt: skip
    now = now_ms()
    return [_item(d, None if single else i, now) for i, d in enumerate(docs)]


def _read_body(request: Request) -> bytes:
    # This route's own limit, far below FRAMEWIRE_GATEWAY_MAX_BODY_BYTES (sized for images).
    # A declared length is refused before reading; a chunked body is read one byte past it.
    length = request.content_length
    if length is not None and length > MAX_FEEDBACK_BODY_BYTES:
        raise _body_too_large()
    body = request.stream.read(MAX_FEEDBACK_BODY_BYTES + 1)
    if len(body) > MAX_FEEDBACK_BODY_BYTES:
        raise _body_too_large()
    return body


def _body_too_large() -> ApiError:
    return ApiError(
        413, "body_too_large",
        f"the request body is larger than the feedback limit of {MAX_FEEDBACK_BODY_BYTES} bytes",
    )  # fmt: skip


def _item(doc: Any, index: int | None, now: int) -> Feedback:
    where = "" if index is None else f"[{index}]"
    if not isinstance(doc, dict):
        raise _bad_field(index, where or "body", f"{where or 'the body'} must be a JSON object")
    unknown = sorted(str(k) for k in doc if k not in _KEYS)
    if unknown:
        field = _path(where, unknown[0])
        raise _bad_field(
            index, field,
            f"{field}: unknown field (known: {', '.join(sorted(_KEYS))})",
        )  # fmt: skip
    try:
        return Feedback.from_dict(
            {"schema": FEEDBACK_SCHEMA, "source": DEFAULT_SOURCE, "ts": now, **doc}
        )
    except SchemaError as exc:
        field = _path(where, exc.field or "")
        message = f"{where}: {exc}" if where else str(exc)
        raise _bad_field(index, field, message) from None


def _path(where: str, field: str) -> str:
    return f"{where}.{field}" if where and field else (where or field)


def _bad_field(index: int | None, field: str, message: str) -> ApiError:
    extra: dict[str, Any] = {"field": field}
    if index is not None:
        extra["index"] = index
    return ApiError(400, "bad_field", message, **extra)


def _publish(gw: GatewayState, items: list[Feedback]) -> None:
    topic = gw.settings.feedback_topic
    try:
        producer = gw.resources.feedback_producer
        futures = []
        for item in items:
            key, value, _ = item.to_record()
            futures.append(producer.send(topic, key=key, value=value))
        for future in futures:
            future.get(timeout=gw.timeout_s)
    except KafkaError as exc:
        # Some items may be on the topic already: a retry sends them again, which the
        # collector absorbs (the last label of a frame wins, the same label changes nothing).
        raise ApiError(
            503, "unavailable", f"cannot publish feedback to Kafka: {type(exc).__name__}: {exc}",
            headers={"Retry-After": "1"},
        ) from None  # fmt: skip


def _keep_frame_copies(gw: GatewayState, items: list[Feedback]) -> None:
    settings = gw.settings
    if settings.frame_copy_ttl_s <= 0:
        return  # the workers keep no copies
    try:
        keep_s = max(settings.result_ttl_s, settings.frame_copy_ttl_s)
        pipe = gw.resources.redis.pipeline(transaction=False)
        for frame_id in dict.fromkeys(item.frame_id for item in items):
            # EXPIRE on a key that does not exist (no copy, or gone) does nothing.
            pipe.expire(frame_key(frame_id), keep_s)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("feedback accepted, frame copies not extended", error=str(exc),
                    items=len(items))  # fmt: skip
