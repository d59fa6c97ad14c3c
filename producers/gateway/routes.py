"""The HTTP endpoints; each one is thin: parse, delegate, answer."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from foundation.rediskeys import latest_key, result_key
from producers.gateway.dispatch import (
    DeadlineExceeded,
    PartlyPublished,
    new_dispatch,
    publish,
    wait_for_results,
)
from producers.gateway.errors import ApiError, error_response
from producers.gateway.feedback import accept_feedback
from producers.gateway.parsing import parse_predict
from producers.gateway.state import GatewayState
from producers.publisher import PublishError

bp = Blueprint("gateway", __name__)

# Stages of a worker's error result that mean "your image", not "our failure".
_CLIENT_STAGES = ("decode", "schema")


def state() -> GatewayState:
    return current_app.extensions["framewire"]


@bp.post("/v1/predict")
def predict() -> Response:
    results, request_id = _run(batch=False)
    result = results[0]
    if result.get("status") == "error":
        reason = str(result.get("error", "the worker could not process the image"))
        status = 422 if reason.split(":")[0] in _CLIENT_STAGES else 502
        response = error_response(
            status, "frame_failed", reason, frame_id=result.get("frame_id"), result=result
        )
    else:
        response = jsonify(result)
    response.headers["X-Request-Id"] = request_id
    return response


@bp.post("/v1/predict/batch")
def predict_batch() -> Response:
    results, request_id = _run(batch=True)
    response = jsonify(results)  # in request order; failed images are status "error" items
    response.headers["X-Request-Id"] = request_id
    return response


@bp.post("/v1/feedback")
def feedback() -> Response:
    accepted = accept_feedback(state(), request)
    response = jsonify({"accepted": accepted, "topic": state().settings.feedback_topic})
    response.status_code = 202  # on the feedback topic; joined to frames by the collector
    return response


@bp.get("/v1/results/<frame_id>")
def get_result(frame_id: str) -> Response:
    return _stored(result_key(frame_id), f"no result for frame {frame_id} (yet, or expired)")


@bp.get("/v1/streams/<path:stream_id>/latest")
def get_latest(stream_id: str) -> Response:
    return _stored(latest_key(stream_id), f"no result for stream {stream_id}")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    report = state().readiness.report()
    if report["ready"]:
        return jsonify(report)
    failed = ", ".join(name for name, check in report["checks"].items() if not check["ok"])
    return error_response(503, "not_ready", f"not ready: {failed}", checks=report["checks"])


@bp.get("/metrics")
def metrics() -> Response:
    return state().metrics.response()


def _run(batch: bool) -> tuple[list[dict], str]:
    """Admit, parse, publish, wait: the result/1 dicts in request order and the request id."""
    gw = state()
    if not gw.limiter.try_acquire():
        raise ApiError(
            503, "overloaded",
            f"{gw.limiter.limit} requests in flight in this gateway process; retry shortly",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    try:
        gw.check_lag()
        parsed = parse_predict(request, gw.limits, batch)
        dispatch = new_dispatch(parsed.uploads, parsed.stream_id, parsed.model)
        try:
            publish(gw.resources, dispatch)
        except PartlyPublished as exc:
            raise ApiError(
                503, "unavailable", f"publishing failed part-way: {exc.cause}",
                headers={"Retry-After": "1"}, request_id=exc.request_id, frame_ids=exc.frame_ids,
            ) from None  # fmt: skip
        except PublishError as exc:
            raise ApiError(
                503, "unavailable", f"cannot publish to Kafka: {exc}", headers={"Retry-After": "1"}
            ) from None
        gw.metrics.images.inc(len(dispatch.frames))
        try:
            results = wait_for_results(gw.resources, dispatch, gw.timeout_s)
        except DeadlineExceeded as exc:
            raise ApiError(
                504, "timeout",
                f"{len(exc.pending)} of {len(exc.frame_ids)} results not ready within "
                f"{gw.timeout_s:g}s; fetch them later from /v1/results/<frame_id>",
                request_id=exc.request_id, frame_ids=exc.frame_ids, pending=exc.pending,
            ) from None  # fmt: skip
        return results, dispatch.request_id
    finally:
        gw.limiter.release()


def _stored(key: str, missing: str) -> Response:
    value = state().resources.redis.get(key)
    if value is None:
        raise ApiError(404, "not_found", missing)
    return Response(value, mimetype="application/json")  # stored as result/1 JSON already
