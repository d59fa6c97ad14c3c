"""Reading a prediction request: the images and the options, or a 4xx ApiError.

Accepted shapes (docs/GATEWAY.md):

- raw body with an image content type (`image/jpeg`, `image/png`, `image/webp`): one image;
- `multipart/form-data`: files in field `image` (single) or `images` (batch);
- `application/json`: `{"image": "<base64>"}` (single) or `{"images": ["<base64>", ...]}`.

Options `stream_id` and `model` come from the query string, form fields or JSON keys.
Every image is validated (size, format, header, completeness) before anything is
published; see images.py.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest

from producers.gateway.errors import ApiError
from producers.gateway.images import CONTENT_TYPES, Upload, check_content_type, validate_image

DEFAULT_STREAM_ID = "gateway"
# Ids become Kafka keys, header values and Redis key parts: printable, no spaces, bounded.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")


@dataclass(frozen=True)
class Limits:
    max_images: int
    max_image_bytes: int
    max_image_pixels: int


@dataclass(frozen=True)
class PredictRequest:
    uploads: list[Upload]
    stream_id: str
    model: str | None


def parse_predict(request: Request, limits: Limits, batch: bool) -> PredictRequest:
    """The request's images (one, or 1..max_images for a batch) and options."""
    mimetype = (request.mimetype or "").lower()
    if mimetype == "multipart/form-data":
        blobs, options = _multipart(request, "images" if batch else "image")
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        blobs, options = _json(request, "images" if batch else "image")
    elif mimetype in CONTENT_TYPES and not batch:
        blobs, options = [("the request body", request.get_data(cache=False))], {}
    else:
        accepted = "multipart/form-data or application/json"
        if not batch:
            accepted = "image/jpeg, image/png, image/webp, " + accepted
        raise ApiError(
            415, "unsupported_media_type",
            f"content type {mimetype or 'none'!r} is not supported here; send {accepted}",
        )  # fmt: skip
    _check_count(len(blobs), limits.max_images if batch else 1)
    uploads = [
        validate_image(data, what, limits.max_image_bytes, limits.max_image_pixels)
        for what, data in blobs
    ]
    stream_id = _option(request, options, "stream_id") or DEFAULT_STREAM_ID
    model = _option(request, options, "model")
    return PredictRequest(uploads, stream_id, model)


def _multipart(request: Request, field: str) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    files = request.files.getlist(field)
    blobs = []
    for i, part in enumerate(files):
        what = f"{field}[{i}]" if field == "images" else field
        check_content_type(part.mimetype, what)
        blobs.append((what, part.read()))
    return blobs, dict(request.form.items())


def _json(request: Request, field: str) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    try:
        body = request.get_json(force=True)
    except BadRequest:
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "the JSON body must be an object")
    items = body.get(field)
    if field == "image":
        items = [] if items is None else [items]
    elif items is None:
        items = []
    elif not isinstance(items, list):
        raise ApiError(400, "bad_field", f"{field!r} must be a list of base64 strings")
    blobs = []
    for i, item in enumerate(items):
        what = f"{field}[{i}]" if field == "images" else field
        if not isinstance(item, str):
            raise ApiError(400, "bad_field", f"{what} must be a base64 string")
        try:
            blobs.append((what, base64.b64decode(item, validate=True)))
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_base64", f"{what} is not valid base64") from None
    return blobs, body


def _check_count(count: int, most: int) -> None:
    if count == 0:
        raise ApiError(400, "no_image", "the request carries no image")
    if count > most:
        raise ApiError(
            413, "too_many_images",
            f"{count} images in one request; the limit is {most}"
            + (" (FRAMEWIRE_GATEWAY_MAX_BATCH)" if most > 1 else ": use /v1/predict/batch"),
        )  # fmt: skip


def _option(request: Request, options: dict[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None:
        value = request.args.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise ApiError(
            400, "bad_field",
            f"{name} must be 1-200 characters of letters, digits and ._:@/+=-",
        )  # fmt: skip
    return value
