"""The one exception type of the message contracts, and the small checks that raise it.

Decoders in this package never raise anything but SchemaError for bad input, so a worker
can route every contract violation to the DLQ with one ``except SchemaError``.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

__all__ = ["SchemaError", "clip"]

# Values quoted in error messages come from the wire: a hostile or broken producer could
# send megabytes of header text. reprlib cuts strings, bytes and containers to a few items.
_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 4
_repr.maxlevel = 2
_MAX_QUOTE = 60


def clip(value: object) -> str:
    """A short, single-line repr of ``value`` for error messages (about 40 characters)."""
    text = _repr.repr(value)
    # repr escapes newlines; the final cut bounds anything reprlib could not (odd objects).
    return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 3] + "..."


class SchemaError(ValueError):
    """A message that breaks its contract (frame/1, result/1, event/1).

    ``field`` names what is wrong: a header name (``fw-seq``), a JSON path
    (``latency_ms.total``, ``predictions[0].box``), ``key`` or ``value`` of a Kafka record,
    or None when the message as a whole is unusable (not JSON, not an object).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        text = message if field is None or field in message else f"{field}: {message}"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery and multiprocessing pickle exceptions; keep both attributes across that.
        return (type(self), (self.message, self.field))


# --- checks shared by result.py and event.py (not part of the public API) -------------

_TYPE_NAMES = {
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    bool: "boolean",
}


def _type_name(kind: type) -> str:
    return _TYPE_NAMES.get(kind, kind.__name__)


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    return f"{_type_name(type(value))} {clip(value)}"


def _is(value: object, kind: type) -> bool:
    """JSON-style type test: bool is not a number, ints count as numbers, no NaN/inf."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        if isinstance(value, float):
            return math.isfinite(value)  # JSON cannot carry NaN or infinity
        return isinstance(value, int)
    return isinstance(value, kind)


def _check(value: Any, kind: type, path: str) -> Any:
    if not _is(value, kind):
        name = _type_name(kind)
        what = "a finite number" if kind is float else f"{_article(name)} {name}"
        raise SchemaError(f"{path} must be {what}, got {_describe(value)}", path)
    return value


def _take(d: dict[str, Any], key: str, kind: type, prefix: str = "") -> Any:
    """d[key], checked to be of ``kind``; the error names the path prefix.key."""
    path = f"{prefix}.{key}" if prefix else key
    if key not in d:
        raise SchemaError(f"missing required field {path}", path)
    return _check(d[key], kind, path)


def _schema_tag(d: dict[str, Any], expected: str) -> None:
    """The "schema" key names the contract and version; refuse any other."""
    if "schema" not in d:
        raise SchemaError(f"missing required field schema (expected {expected!r})", "schema")
    if d["schema"] != expected:
        raise SchemaError(f"unknown schema {clip(d['schema'])}; supported: {expected}", "schema")


def _nonneg(value: int, path: str) -> int:
    if value < 0:
        raise SchemaError(f"{path} must be >= 0, got {clip(value)}", path)
    return value


def _nonempty(value: str, path: str) -> str:
    if not value:
        raise SchemaError(f"{path} must not be empty", path)
    return value


def _one_of(value: str, allowed: tuple[str, ...], path: str) -> str:
    if value not in allowed:
        raise SchemaError(f"{path} must be one of {', '.join(allowed)}; got {clip(value)}", path)
    return value


def _obj(value: Any, path: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        where = path or "message"
        raise SchemaError(f"{where} must be an object, got {_describe(value)}", path)
    return value
