"""Every error the gateway answers, as JSON: `{"error": {"code", "message", ...}}`.

Routes raise ApiError; Flask's own HTTP errors (404, 405, 413 from MAX_CONTENT_LENGTH)
and unexpected exceptions are turned into the same shape, so a client parses one format.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from foundation.log import get_logger

log = get_logger(__name__)

# Codes for Flask's own errors; anything else gets a code derived from its name.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine-readable code, a human message.

    `extra` adds fields inside the error object (e.g. `frame_ids` of a 504); `headers`
    adds HTTP headers (e.g. `Retry-After`).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
        message = exc.description or exc.name or "error"
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request body is larger than the limit of {limit} bytes"
        response = error_response(status, code, message)
        if status == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc: redis.RedisError) -> Response:
        log.warning("redis error in a gateway request", error=str(exc))
        return error_response(
            503, "unavailable", f"Redis: {exc}", headers={"Retry-After": "1"}
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The traceback goes to the log, never to the client.
        log.exception("unhandled error in a gateway request", error=str(exc))
        return error_response(500, "internal", "internal error; see the gateway log")
