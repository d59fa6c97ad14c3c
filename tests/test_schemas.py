"""The message contracts: round trips, rejections with their messages, and the JSON files
(JSON Schema for result/1, event/1 and feedback/1, the frame/1 header table) kept equal to
the code."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import types
import typing
from pathlib import Path

import jsonschema
import pytest

import schemas
from schemas import (
    ENCODINGS,
    EVENT_FIELDS,
    EVENT_TYPES,
    INT_HEADERS,
    OPTIONAL_HEADERS,
    RAW_ENCODINGS,
    REQUIRED_HEADERS,
    Event,
    Feedback,
    Frame,
    KafkaRecord,
    Latency,
    ModelRef,
    Prediction,
    Result,
    SchemaError,
    Source,
)
from schemas import frame as frame_mod

JSON_DIR = Path(schemas.__file__).parent / "json"


def load_json(name: str) -> dict:
    return json.loads((JSON_DIR / name).read_text())


RESULT_SCHEMA_JSON = load_json("result-1.schema.json")
EVENT_SCHEMA_JSON = load_json("event-1.schema.json")
FEEDBACK_SCHEMA_JSON = load_json("feedback-1.schema.json")
HEADERS_JSON = load_json("frame-1.headers.json")
RESULT_VALIDATOR = jsonschema.Draft202012Validator(RESULT_SCHEMA_JSON)
EVENT_VALIDATOR = jsonschema.Draft202012Validator(EVENT_SCHEMA_JSON)
FEEDBACK_VALIDATOR = jsonschema.Draft202012Validator(FEEDBACK_SCHEMA_JSON)


# ----------------------------------------------------------------------------- frame/1


def full_frame(**overrides) -> Frame:
    kw = dict(
        stream_id="cam-1",
        seq=42,
        data=b"\xff\xd8jpeg-bytes\xff\xd9",
        encoding="jpeg",
        frame_id="0b4f7c1e-8a70-4a35-9d3c-2f1f3b0c9e11",
        captured_at_ms=1_700_000_000_123,
        width=640,
        height=480,
        model="resnet18",
        reply_to="req-7",
        label="cat",
    )
    kw.update(overrides)
    return Frame(**kw)


def test_frame_defaults() -> None:
    f = Frame("cam", 0, b"x")
    assert f.encoding == "jpeg"
    assert len(f.frame_id) == 36 and f.frame_id != Frame("cam", 0, b"x").frame_id
    assert abs(f.captured_at_ms - schemas.now_ms()) < 60_000
    assert (f.width, f.height, f.model, f.reply_to, f.label) == (None,) * 5


def test_frame_field_order() -> None:
    names = [f.name for f in dataclasses.fields(Frame)]
    assert names == [
        "stream_id",
        "seq",
        "data",
        "encoding",
        "frame_id",
        "captured_at_ms",
        "width",
        "height",
        "model",
        "reply_to",
        "label",
    ]


def test_frame_record_all_headers() -> None:
    f = full_frame()
    rec = f.to_record()
    assert isinstance(rec, KafkaRecord)
    assert rec.key == b"cam-1" and rec.value == f.data
    assert rec.headers == [
        ("fw-schema", b"frame/1"),
        ("fw-frame-id", f.frame_id.encode()),
        ("fw-stream-id", b"cam-1"),
        ("fw-seq", b"42"),
        ("fw-ts", b"1700000000123"),
        ("fw-encoding", b"jpeg"),
        ("fw-width", b"640"),
        ("fw-height", b"480"),
        ("fw-model", b"resnet18"),
        ("fw-reply-to", b"req-7"),
        ("fw-label", b"cat"),
    ]
    assert Frame.from_record(*rec) == f


def test_frame_record_minimal_headers() -> None:
    f = Frame("cam-1", 0, b"png", encoding="png", frame_id="a", captured_at_ms=0)
    rec = f.to_record()
    assert [name for name, _ in rec.headers] == list(REQUIRED_HEADERS)
    back = Frame.from_record(*rec)
    assert back == f
    assert (back.width, back.height, back.model, back.reply_to, back.label) == (None,) * 5


@pytest.mark.parametrize("optional", ["width", "height", "model", "reply_to", "label"])
def test_frame_each_optional_header_alone(optional: str) -> None:
    value = 7 if optional in ("width", "height") else "wert-ü"  # non-ASCII survives UTF-8
    f = Frame("cam", 1, b"img", **{optional: value})
    rec = f.to_record()
    assert len(rec.headers) == len(REQUIRED_HEADERS) + 1
    assert Frame.from_record(*rec) == f


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_frame_every_encoding_round_trips(encoding: str) -> None:
    if encoding in RAW_ENCODINGS:
        f = Frame("s", 3, bytes(range(4 * 2 * 3)), encoding=encoding, width=4, height=2)
    else:
        f = Frame("s", 3, b"encoded", encoding=encoding)
    back = Frame.from_record(*f.to_record())
    assert back == f and back.encoding == encoding


def test_frame_from_record_without_key_and_extra_headers() -> None:
    rec = full_frame().to_record()
    # Tracing headers of other systems are ignored; a null key is allowed.
    headers = [("traceparent", b"00-abc"), *rec.headers, ("x-other", b"\xff")]
    assert Frame.from_record(None, rec.value, headers) == full_frame()


def test_frame_from_record_accepts_str_header_values_and_max_bytes() -> None:
    rec = full_frame().to_record()
    headers = [(k, v.decode()) for k, v in rec.headers]
    assert Frame.from_record(rec.key, rec.value, headers, max_bytes=len(rec.value)).seq == 42


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        (dict(encoding="gif"), "encoding", "unknown encoding 'gif'"),
        (dict(seq=-1), "seq", "seq must be an integer >= 0"),
        (dict(seq=True), "seq", "seq must be an integer"),
        (dict(stream_id=""), "stream_id", "stream_id must be a non-empty string"),
        (dict(frame_id=""), "frame_id", "frame_id must be a non-empty string"),
        (dict(captured_at_ms=-5), "captured_at_ms", "captured_at_ms must be an integer >= 0"),
        (dict(data="text"), "data", "data must be bytes"),
        (dict(width=-1), "width", "width must be an integer >= 0"),
        (dict(model=""), "model", "model must be a non-empty string or None"),
        (dict(encoding="raw-rgb8", width=None, height=None), "width", "needs width and height"),
        (dict(encoding="raw-rgb8", width=2, height=None), "height", "needs width and height"),
        (
            dict(encoding="raw-bgr8", width=2, height=2, data=b"x" * 11),
            "data",
            "raw-bgr8 frame of 2x2 needs 12 bytes",
        ),
    ],
)
def test_frame_constructor_rejects(kwargs: dict, field: str, text: str) -> None:
    base = dict(stream_id="cam", seq=0, data=b"img")
    base.update(kwargs)
    with pytest.raises(SchemaError) as info:
        Frame(**base)
    assert info.value.field == field
    assert text in info.value.message
    assert field in str(info.value)


def _good_record() -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    rec = Frame("cam-1", 5, b"jpegdata", frame_id="f-1", captured_at_ms=1000).to_record()
    return rec.key, rec.value, list(rec.headers)


def _set(headers: list, name: str, value: bytes | None) -> list:
    return [(k, value if k == name else v) for k, v in headers]


def _drop(headers: list, name: str) -> list:
    return [(k, v) for k, v in headers if k != name]


def _raw(width: bytes | None, height: bytes | None, size: int) -> tuple:
    key, _, headers = _good_record()
    headers = _set(headers, "fw-encoding", b"raw-rgb8")
    if width is not None:
        headers.append(("fw-width", width))
    if height is not None:
        headers.append(("fw-height", height))
    return key, b"\x01" * size, headers


HOSTILE = "9" * 5000


def _bad(kind: str) -> tuple:
    key, value, headers = _good_record()
    cases = {
        "no headers at all": (key, value, None),
        "missing fw-schema": (key, value, _drop(headers, "fw-schema")),
        "schema frame/2": (key, value, _set(headers, "fw-schema", b"frame/2")),
        "missing fw-frame-id": (key, value, _drop(headers, "fw-frame-id")),
        "missing fw-stream-id": (key, value, _drop(headers, "fw-stream-id")),
        "missing fw-seq": (key, value, _drop(headers, "fw-seq")),
        "missing fw-ts": (key, value, _drop(headers, "fw-ts")),
        "missing fw-encoding": (key, value, _drop(headers, "fw-encoding")),
        "not utf-8": (key, value, _set(headers, "fw-stream-id", b"cam\xff\xfe")),
        "duplicate header": (key, value, [*headers, ("fw-seq", b"6")]),
        "empty header": (key, value, _set(headers, "fw-frame-id", b"")),
        "null header": (key, value, _set(headers, "fw-frame-id", None)),
        "seq negative": (key, value, _set(headers, "fw-seq", b"-1")),
        "seq float": (key, value, _set(headers, "fw-seq", b"1.5")),
        "seq spaces": (key, value, _set(headers, "fw-seq", b" 1")),
        "seq unicode digit": (key, value, _set(headers, "fw-seq", "²".encode())),
        "ts text": (key, value, _set(headers, "fw-ts", b"yesterday")),
        "ts huge": (key, value, _set(headers, "fw-ts", HOSTILE.encode())),
        "ts over int64": (key, value, _set(headers, "fw-ts", b"9999999999999999999")),
        "width bad": (key, value, [*headers, ("fw-width", b"0x10")]),
        "height bad": (key, value, [*headers, ("fw-width", b"1"), ("fw-height", b"-2")]),
        "unknown encoding": (key, value, _set(headers, "fw-encoding", b"gif")),
        "raw without width": _raw(None, b"2", 12),
        "raw without height": _raw(b"2", None, 12),
        "raw size mismatch": _raw(b"2", b"2", 13),
        "empty value": (key, b"", headers),
        "null value": (key, None, headers),
        "value too large": (key, value, headers),
        "key mismatch": (b"cam-2", value, headers),
    }
    return cases[kind]


# kind -> (SchemaError.field, text the message must contain)
MALFORMED = {
    "no headers at all": ("fw-schema", "missing header fw-schema"),
    "missing fw-schema": ("fw-schema", "missing header fw-schema"),
    "schema frame/2": (
        "fw-schema",
        "unknown schema version 'frame/2' in fw-schema; supported: frame/1",
    ),
    "missing fw-frame-id": ("fw-frame-id", "missing required header fw-frame-id"),
    "missing fw-stream-id": ("fw-stream-id", "missing required header fw-stream-id"),
    "missing fw-seq": ("fw-seq", "missing required header fw-seq"),
    "missing fw-ts": ("fw-ts", "missing required header fw-ts"),
    "missing fw-encoding": ("fw-encoding", "missing required header fw-encoding"),
    "not utf-8": ("fw-stream-id", "header fw-stream-id is not valid UTF-8: b'cam\\xff\\xfe'"),
    "duplicate header": ("fw-seq", "header fw-seq given more than once"),
    "empty header": ("fw-frame-id", "header fw-frame-id is empty"),
    "null header": ("fw-frame-id", "header fw-frame-id has a null value"),
    "seq negative": ("fw-seq", "header fw-seq must be a non-negative decimal integer, got '-1'"),
    "seq float": ("fw-seq", "header fw-seq must be a non-negative decimal integer, got '1.5'"),
    "seq spaces": ("fw-seq", "header fw-seq must be a non-negative decimal integer, got ' 1'"),
    "seq unicode digit": ("fw-seq", "header fw-seq must be a non-negative decimal integer"),
    "ts text": ("fw-ts", "header fw-ts must be a non-negative decimal integer, got 'yesterday'"),
    "ts huge": ("fw-ts", "header fw-ts must be a non-negative decimal integer, got '9999"),
    "ts over int64": ("fw-ts", "header fw-ts is larger than 2**63-1"),
    "width bad": ("fw-width", "header fw-width must be a non-negative decimal integer, got '0x10'"),
    "height bad": ("fw-height", "header fw-height must be a non-negative decimal integer"),
    "unknown encoding": (
        "fw-encoding",
        "unknown encoding 'gif' in fw-encoding; known: jpeg, png, webp, raw-bgr8, raw-rgb8",
    ),
    "raw without width": ("fw-width", "encoding raw-rgb8 needs headers fw-width and fw-height"),
    "raw without height": (
        "fw-height",
        "encoding raw-rgb8 needs headers fw-width and fw-height (fw-height is missing)",
    ),
    "raw size mismatch": (
        "value",
        "raw-rgb8 frame of 2x2 needs 12 bytes (width*height*3), value has 13",
    ),
    "empty value": ("value", "empty record value"),
    "null value": ("value", "empty record value"),
    "value too large": ("value", "record value is 8 bytes, larger than max_bytes=4"),
    "key mismatch": ("key", "record key b'cam-2' differs from fw-stream-id 'cam-1'"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_frame_record_rejected(kind: str) -> None:
    field, text = MALFORMED[kind]
    key, value, headers = _bad(kind)
    max_bytes = 4 if kind == "value too large" else None
    with pytest.raises(SchemaError) as info:
        Frame.from_record(key, value, headers, max_bytes=max_bytes)
    err = info.value
    assert err.field == field
    assert text in err.message, err.message
    line = str(err)
    assert field in line and "\n" not in line
    assert len(line) < 200  # hostile values are cut, log lines stay short


def test_malformed_kinds_have_distinct_messages() -> None:
    messages = {}
    for kind in MALFORMED:
        key, value, headers = _bad(kind)
        with pytest.raises(SchemaError) as info:
            Frame.from_record(
                key, value, headers, max_bytes=4 if kind == "value too large" else None
            )
        messages[kind] = info.value.message
    same = {"no headers at all": "missing fw-schema", "null value": "empty value"}
    for a, b in same.items():
        assert messages.pop(a) == messages[b]
    assert len(set(messages.values())) == len(messages)


def test_schema_error_pickles_and_is_value_error() -> None:
    err = SchemaError("missing required header fw-seq", "fw-seq")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ValueError)
    assert (back.field, back.message, str(back)) == (err.field, err.message, str(err))
    assert str(SchemaError("must be >= 0", "latency_ms.total")) == "latency_ms.total: must be >= 0"
    assert str(SchemaError("whole message broken")) == "whole message broken"


def test_clip_bounds_hostile_values() -> None:
    assert len(schemas.clip("x" * 100_000)) <= 60
    assert len(schemas.clip(b"\n" * 100_000)) <= 60
    assert "\n" not in schemas.clip("a\nb")


# ------------------------------------------------------------------- header table file


def test_header_table_matches_constants() -> None:
    rows = HEADERS_JSON["headers"]
    assert HEADERS_JSON["schema"] == schemas.FRAME_SCHEMA
    names = [r["name"] for r in rows]
    assert names == list(REQUIRED_HEADERS + OPTIONAL_HEADERS)
    constants = {v for k, v in vars(frame_mod).items() if k.startswith("H_")}
    assert set(names) == constants
    assert [r["name"] for r in rows if r["required"] is True] == list(REQUIRED_HEADERS)
    assert {r["name"] for r in rows if r["type"] == "integer"} == set(INT_HEADERS)
    assert {r["type"] for r in rows} == {"string", "integer"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["fw-schema"]["values"] == [schemas.FRAME_SCHEMA]
    assert by_name["fw-encoding"]["values"] == list(ENCODINGS)
    assert {r["name"] for r in rows if "required_for" in r} == {"fw-width", "fw-height"}
    for r in rows:
        assert set(r) <= {"name", "required", "required_for", "type", "values", "meaning"}
        assert r["meaning"]
        if "required_for" in r:
            assert r["required_for"] == list(RAW_ENCODINGS)


def test_header_table_lists_what_to_record_writes() -> None:
    rec = full_frame().to_record()
    assert [n for n, _ in rec.headers] == [r["name"] for r in HEADERS_JSON["headers"]]


# ----------------------------------------------------------------------------- result/1


def make_result(**overrides) -> Result:
    kw = dict(
        frame_id="f-1",
        stream_id="cam-1",
        seq=7,
        captured_at=1_700_000_000_000,
        completed_at=1_700_000_000_042,
        model=ModelRef("resnet18", "3"),
        task="classification",
        predictions=[Prediction("cat", 0.9), Prediction("dog", 0.05)],
        latency_ms=Latency(queue=12.5, decode=1.25, batch_wait=3.0, inference=8.0, total=25.0),
        batch_size=4,
        source=Source("framewire.frames", 2, 1234),
    )
    kw.update(overrides)
    return Result(**kw)


RESULT_EXAMPLES = {
    "classification": make_result(),
    "detection with boxes": make_result(
        task="detection",
        predictions=[
            Prediction("person", 0.8, [1.0, 2.5, 100.0, 200.0]),
            Prediction("car", 0.4, [0, 0, 10, 10]),
            Prediction("dog", 0.3),
        ],
    ),
    "no source": make_result(source=None),
    "error": make_result(
        status="error", error="decode failed: not a JPEG", predictions=[], batch_size=0
    ),
    "ok with note": make_result(error="model warming up"),
    "integer latencies": make_result(latency_ms=Latency(0, 0, 0, 0, 0)),
    "no predictions": make_result(predictions=[]),
}


@pytest.mark.parametrize("name", list(RESULT_EXAMPLES))
def test_result_round_trip(name: str) -> None:
    r = RESULT_EXAMPLES[name]
    data = r.to_json()
    assert isinstance(data, bytes)
    assert data == json.dumps(json.loads(data), separators=(",", ":")).encode()  # compact
    assert Result.from_json(data) == r
    assert Result.from_json(data.decode()) == r
    assert Result.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("name", list(RESULT_EXAMPLES))
def test_result_examples_validate_against_json_schema(name: str) -> None:
    RESULT_VALIDATOR.validate(json.loads(RESULT_EXAMPLES[name].to_json()))


def test_result_to_dict_shape() -> None:
    d = RESULT_EXAMPLES["detection with boxes"].to_dict()
    assert d["schema"] == "result/1"
    assert "error" not in d
    assert d["predictions"][0] == {"label": "person", "score": 0.8, "box": [1.0, 2.5, 100.0, 200.0]}
    assert d["predictions"][2] == {"label": "dog", "score": 0.3}  # no "box" key
    assert d["latency_ms"] == {
        "queue": 12.5,
        "decode": 1.25,
        "batch_wait": 3.0,
        "inference": 8.0,
        "total": 25.0,
    }
    assert d["source"] == {"topic": "framewire.frames", "partition": 2, "offset": 1234}
    assert RESULT_EXAMPLES["no source"].to_dict()["source"] is None
    assert RESULT_EXAMPLES["error"].to_dict()["error"] == "decode failed: not a JPEG"
    # The nested dicts equal each dataclass's own to_dict and asdict (minus None box).
    r = make_result()
    assert d["model"] == ModelRef("resnet18", "3").to_dict()
    assert r.to_dict()["latency_ms"] == dataclasses.asdict(r.latency_ms)


def test_result_source_may_be_absent() -> None:
    d = make_result(source=None).to_dict()
    del d["source"]
    assert Result.from_dict(d).source is None
    RESULT_VALIDATOR.validate(d)


def test_result_ignores_unknown_fields() -> None:
    d = make_result().to_dict()
    d["future_field"] = {"x": 1}
    assert Result.from_dict(d) == make_result()
    RESULT_VALIDATOR.validate(d)


def test_result_to_json_rejects_nan() -> None:
    r = make_result(predictions=[Prediction("cat", float("nan"))])
    with pytest.raises(SchemaError, match="cannot encode as JSON"):
        r.to_json()


def _mutate(path: str, value=None, delete: bool = False):
    """A function that sets (or deletes) the dotted/indexed path in a result dict."""

    def apply(d: dict) -> dict:
        d = copy.deepcopy(d)
        parts = path.replace("]", "").replace("[", ".").split(".")
        target = d
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target[p]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        elif delete:
            del target[last]
        else:
            target[last] = value
        return d

    return apply


# (what to change, expected SchemaError.field, text in the message)
RESULT_REJECTS = [
    (_mutate("schema", "result/2"), "schema", "unknown schema 'result/2'; supported: result/1"),
    (_mutate("schema", delete=True), "schema", "missing required field schema"),
    (_mutate("frame_id", delete=True), "frame_id", "missing required field frame_id"),
    (_mutate("frame_id", ""), "frame_id", "frame_id must not be empty"),
    (_mutate("stream_id", 5), "stream_id", "stream_id must be a string, got integer 5"),
    (_mutate("seq", "7"), "seq", "seq must be an integer, got string '7'"),
    (_mutate("seq", -1), "seq", "seq must be >= 0"),
    (_mutate("seq", True), "seq", "got boolean True"),
    (_mutate("captured_at", 1.5), "captured_at", "must be an integer, got number 1.5"),
    (_mutate("completed_at", delete=True), "completed_at", "missing required field"),
    (_mutate("model", "resnet"), "model", "model must be an object"),
    (_mutate("model.name", delete=True), "model.name", "missing required field model.name"),
    (_mutate("model.version", 3), "model.version", "must be a string"),
    (_mutate("model.version", ""), "model.version", "must not be empty"),
    (
        _mutate("task", "segmentation"),
        "task",
        "task must be one of classification, detection; got 'segmentation'",
    ),
    (_mutate("predictions", {}), "predictions", "must be an array"),
    (_mutate("predictions.0", "cat"), "predictions[0]", "must be an object"),
    (_mutate("predictions.0.label", delete=True), "predictions[0].label", "missing required"),
    (
        _mutate("predictions.1.score", "high"),
        "predictions[1].score",
        "must be a finite number, got string 'high'",
    ),
    (_mutate("predictions.0.score", None), "predictions[0].score", "got null"),
    (_mutate("predictions.0.box", [1, 2, 3]), "predictions[0].box", "must have 4 numbers"),
    (_mutate("predictions.0.box", [1, 2, 3, "4"]), "predictions[0].box[3]", "finite number"),
    (_mutate("predictions.0.box", "1,2,3,4"), "predictions[0].box", "must be an array"),
    (
        _mutate("latency_ms.total", delete=True),
        "latency_ms.total",
        "missing required field latency_ms.total",
    ),
    (_mutate("latency_ms.decode", False), "latency_ms.decode", "got boolean False"),
    (_mutate("latency_ms", [1, 2, 3, 4, 5]), "latency_ms", "must be an object"),
    (_mutate("batch_size", -2), "batch_size", "batch_size must be >= 0"),
    (_mutate("source.partition", -1), "source.partition", "must be >= 0"),
    (_mutate("source.offset", "9"), "source.offset", "must be an integer"),
    (_mutate("source.topic", ""), "source.topic", "must not be empty"),
    (_mutate("source", "framewire.frames"), "source", "must be an object"),
    (_mutate("status", "maybe"), "status", "status must be one of ok, error; got 'maybe'"),
    (_mutate("status", delete=True), "status", "missing required field status"),
    (_mutate("status", "error"), "error", 'status "error" needs a non-empty error message'),
    (_mutate("error", 500), "error", "error must be a string, got integer 500"),
]


@pytest.mark.parametrize(("change", "field", "text"), RESULT_REJECTS)
def test_result_rejects(change, field: str, text: str) -> None:
    bad = change(RESULT_EXAMPLES["detection with boxes"].to_dict())
    with pytest.raises(SchemaError) as info:
        Result.from_dict(bad)
    assert info.value.field == field
    assert text in info.value.message, info.value.message
    assert field in str(info.value)
    # The JSON Schema rejects the same document.
    assert not RESULT_VALIDATOR.is_valid(bad)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "message must be an object, got array"),
    ],
)
def test_result_from_json_rejects_garbage(data: bytes, text: str) -> None:
    with pytest.raises(SchemaError, match=text) as info:
        Result.from_json(data)
    assert info.value.field is None


def test_result_from_json_converts_ints_to_floats() -> None:
    r = Result.from_json(make_result(latency_ms=Latency(1, 2, 3, 4, 10)).to_json())
    assert isinstance(r.latency_ms.total, float)
    assert isinstance(r.predictions[0].score, float)


# ------------------------------------------------------------------------------ event/1


EVENT_EXAMPLES = {
    "batch": dict(size=8, model="resnet18@3", queue_ms=12.0, decode_ms=3, inference_ms=9.5),
    "worker": dict(state="started", gpu="cuda:0", pid=1234),
    "model": dict(name="resnet18", version="3"),
    "rebalance": dict(assigned=["framewire.frames:0", "framewire.frames:1"], revoked=[]),
    "error": dict(stage="decode", reason="not a JPEG", frame_id="f-1"),
    "drift": dict(metric="mean_brightness_psi", value=0.31),
    "data_quality": dict(check="frozen", value=45, stream_id="cam-1"),
    "observation": dict(model="demo-shapes:1", frames=[{"stream_id": "cam-1", "brightness": 97.5}]),
    "retrain": dict(step="promoted", model="shapes", version="4", reason="drift: embedding"),
}


def test_event_examples_cover_every_type() -> None:
    assert set(EVENT_EXAMPLES) == set(EVENT_TYPES) == set(EVENT_FIELDS)


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_event_round_trip(etype: str) -> None:
    e = Event(etype, "gpu-0@host", dict(EVENT_EXAMPLES[etype]), ts=1_700_000_000_500)
    d = e.to_dict()
    assert list(d)[:4] == ["schema", "type", "ts", "worker"]
    assert d == {
        "schema": "event/1",
        "type": etype,
        "ts": 1_700_000_000_500,
        "worker": "gpu-0@host",
        **EVENT_EXAMPLES[etype],
    }
    data = e.to_json()
    assert isinstance(data, bytes) and b", " not in data
    assert Event.from_json(data) == e
    assert Event.from_dict(d) == e
    EVENT_VALIDATOR.validate(json.loads(data))


def test_event_defaults() -> None:
    e = Event("worker", "w", {"state": "stopped"})
    assert abs(e.ts - schemas.now_ms()) < 60_000
    assert Event("worker", "w", {"state": "stopped"}).fields is not e.fields
    assert [f.name for f in dataclasses.fields(Event)] == ["type", "worker", "fields", "ts"]


# (type, fields, expected field, text)
EVENT_REJECTS = [
    ("reboot", {}, "type", "type must be one of batch, worker"),
    ("batch", {**EVENT_EXAMPLES["batch"], "size": "8"}, "size", "size must be an integer"),
    ("batch", {**EVENT_EXAMPLES["batch"], "size": True}, "size", "got boolean True"),
    ("batch", {**EVENT_EXAMPLES["batch"], "queue_ms": "1"}, "queue_ms", "finite number"),
    (
        "batch",
        {k: v for k, v in EVENT_EXAMPLES["batch"].items() if k != "inference_ms"},
        "inference_ms",
        "missing required field inference_ms",
    ),
    ("worker", {"state": "sleeping"}, "state", "state must be one of started, stopped"),
    ("worker", {}, "state", "missing required field state"),
    ("model", {"name": "r"}, "version", "missing required field version"),
    ("model", {"name": 1, "version": "1"}, "name", "name must be a string"),
    ("rebalance", {"assigned": "p0", "revoked": []}, "assigned", "must be an array"),
    ("error", {"stage": "decode"}, "reason", "missing required field reason"),
    ("drift", {"metric": "psi", "value": None}, "value", "got null"),
    ("drift", {"metric": "psi", "value": False}, "value", "got boolean"),
]


@pytest.mark.parametrize(("etype", "fields", "field", "text"), EVENT_REJECTS)
def test_event_rejects(etype: str, fields: dict, field: str, text: str) -> None:
    with pytest.raises(SchemaError) as info:
        Event(etype, "w", fields, ts=1)
    assert info.value.field == field
    assert text in info.value.message, info.value.message
    # from_dict and the JSON Schema reject the same thing.
    doc = {"schema": "event/1", "type": etype, "ts": 1, "worker": "w", **fields}
    with pytest.raises(SchemaError) as info2:
        Event.from_dict(doc)
    assert info2.value.field == field
    assert not EVENT_VALIDATOR.is_valid(doc)


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (dict(schema="event/2"), "schema", "unknown schema 'event/2'; supported: event/1"),
        (dict(ts=-1), "ts", "ts must be >= 0"),
        (dict(ts="now"), "ts", "ts must be an integer"),
        (dict(worker=""), "worker", "worker must not be empty"),
        (dict(worker=None), "worker", "worker must be a string, got null"),
        (dict(type=3), "type", "type must be a string"),
    ],
)
def test_event_from_dict_rejects_common_keys(change: dict, field: str, text: str) -> None:
    doc = {
        "schema": "event/1",
        "type": "model",
        "ts": 1,
        "worker": "w",
        "name": "n",
        "version": "v",
        **change,
    }
    with pytest.raises(SchemaError) as info:
        Event.from_dict(doc)
    assert info.value.field == field
    assert text in info.value.message
    assert not EVENT_VALIDATOR.is_valid(doc)


def test_event_missing_common_key() -> None:
    for key in ("schema", "type", "ts", "worker"):
        doc = {
            "schema": "event/1",
            "type": "model",
            "ts": 1,
            "worker": "w",
            "name": "n",
            "version": "v",
        }
        del doc[key]
        with pytest.raises(SchemaError, match=f"missing required field {key}"):
            Event.from_dict(doc)
        assert not EVENT_VALIDATOR.is_valid(doc)


@pytest.mark.parametrize("key", ["schema", "type", "ts", "worker"])
def test_event_fields_cannot_override_common_keys(key: str) -> None:
    with pytest.raises(SchemaError, match="clashes with the common key") as info:
        Event("model", "w", {"name": "n", "version": "v", key: "x"})
    assert info.value.field == key
    e = Event("model", "w", {"name": "n", "version": "v"})
    e.fields[key] = "x"  # a late edit is caught when serialising
    with pytest.raises(SchemaError, match="clashes"):
        e.to_dict()


def test_event_rejects_nan_on_construction() -> None:
    with pytest.raises(SchemaError, match="finite number, got number nan"):
        Event("drift", "w", {"metric": "psi", "value": float("nan")})


# --------------------------------------------------------------------------- feedback/1


FEEDBACK_EXAMPLES = {
    "minimal": Feedback("0b4f7c1e-8a70-4a35-9d3c-2f1f3b0c9e11", "cat", "operator:alice", ts=5),
    "with box and note": Feedback(
        "f-2", "person", "gateway", ts=1_700_000_000_000, box=[1, 2.5, 100, 200],
        note="two people, labelled the nearer one\nsecond line is fine in a note",
    ),
    "at every limit": Feedback(
        "f" * 200, "ü" * 200, "s" * 200, ts=2**63 - 1, box=[0, 0, 1e9, 1e9], note="n" * 2000
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FEEDBACK_EXAMPLES))
def test_feedback_round_trip_and_json_schema(name: str) -> None:
    f = FEEDBACK_EXAMPLES[name]
    data = f.to_json()
    assert isinstance(data, bytes)
    compact = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False).encode()
    assert data == compact
    assert len(data) <= schemas.MAX_FEEDBACK_BYTES
    assert Feedback.from_json(data) == f
    assert Feedback.from_json(data.decode()) == f
    d = json.loads(data)
    assert list(d)[:5] == ["schema", "frame_id", "label", "source", "ts"]
    FEEDBACK_VALIDATOR.validate(d)
    key, value, headers = f.to_record()
    assert (key, value, headers) == (f.frame_id.encode(), data, [])


def test_feedback_defaults_and_optional_fields() -> None:
    f = Feedback("f-1", "cat", "synthetic")
    assert abs(f.ts - schemas.now_ms()) < 60_000
    assert (f.box, f.note) == (None, None)
    d = f.to_dict()
    assert "box" not in d and "note" not in d
    assert Feedback("f", "c", "s", box=[1, 2, 3, 4]).box == [1.0, 2.0, 3.0, 4.0]
    assert [x.name for x in dataclasses.fields(Feedback)] == [
        "frame_id", "label", "source", "ts", "box", "note"
    ]  # fmt: skip


def test_feedback_ignores_unknown_fields_and_accepts_null_options() -> None:
    d = {**FEEDBACK_EXAMPLES["minimal"].to_dict(), "future": 1, "box": None, "note": None}
    assert Feedback.from_dict(d) == FEEDBACK_EXAMPLES["minimal"]


def _fb(**change) -> dict:
    d = FEEDBACK_EXAMPLES["with box and note"].to_dict()
    for key, value in change.items():
        if value is _DELETE:
            del d[key]
        else:
            d[key] = value
    return d


_DELETE = object()

# (document, SchemaError.field, text in the message); the JSON Schema rejects each too.
FEEDBACK_REJECTS = [
    (_fb(schema="feedback/2"), "schema", "unknown schema 'feedback/2'; supported: feedback/1"),
    (_fb(schema=_DELETE), "schema", "missing required field schema"),
    (_fb(frame_id=_DELETE), "frame_id", "missing required field frame_id"),
    (_fb(frame_id=""), "frame_id", "frame_id must not be empty"),
    (_fb(frame_id="f" * 201), "frame_id", "at most 200 characters, got 201"),
    (_fb(frame_id="a\nb"), "frame_id", "must not contain control characters"),
    (_fb(label=7), "label", "label must be a string, got integer 7"),
    (_fb(label=""), "label", "label must not be empty"),
    (_fb(label="x" * 201), "label", "at most 200 characters"),
    (_fb(label="cat\x00"), "label", "control characters"),
    (_fb(source=_DELETE), "source", "missing required field source"),
    (_fb(source="x" * 201), "source", "at most 200 characters"),
    (_fb(ts="now"), "ts", "ts must be an integer, got string 'now'"),
    (_fb(ts=-1), "ts", "ts must be >= 0"),
    (_fb(ts=2**63), "ts", "at most 2**63-1"),
    (_fb(ts=1.5), "ts", "must be an integer"),
    (_fb(box=[1, 2, 3]), "box", "must have 4 numbers"),
    (_fb(box="1,2,3,4"), "box", "box must be an array"),
    (_fb(box=[1, 2, 3, "4"]), "box[3]", "finite number"),
    (_fb(box=[-1, 2, 3, 4]), "box[0]", "box[0] must be >= 0"),
    (_fb(note=5), "note", "note must be a string"),
    (_fb(note="n" * 2001), "note", "at most 2000 characters"),
]


@pytest.mark.parametrize(("doc", "field", "text"), FEEDBACK_REJECTS)
def test_feedback_rejects(doc: dict, field: str, text: str) -> None:
    with pytest.raises(SchemaError) as info:
        Feedback.from_dict(doc)
    assert info.value.field == field
    assert text in info.value.message, info.value.message
    line = str(info.value)
    assert field in line and "\n" not in line and len(line) < 200
    assert not FEEDBACK_VALIDATOR.is_valid(doc)


def test_feedback_box_order_is_checked_in_python_only() -> None:
    # JSON Schema cannot compare two items; its description says so.
    doc = _fb(box=[10, 0, 5, 4])
    with pytest.raises(SchemaError, match="x1 < x2 and y1 < y2") as info:
        Feedback.from_dict(doc)
    assert info.value.field == "box"
    assert "x1 < x2" in FEEDBACK_SCHEMA_JSON["description"]


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        (None, "value", "empty record value"),
        (b"{not json", None, "not valid JSON"),
        (b"[1]", None, "message must be an object, got array"),
        (b" " * (schemas.MAX_FEEDBACK_BYTES + 1), "value", "larger than 16384"),
    ],
)
def test_feedback_from_json_rejects_garbage(data, field, text: str) -> None:
    with pytest.raises(SchemaError, match=text) as info:
        Feedback.from_json(data)
    assert info.value.field == field


def test_feedback_constructor_rejects_like_from_dict() -> None:
    with pytest.raises(SchemaError, match="label must not be empty"):
        Feedback("f", "", "s")
    with pytest.raises(SchemaError, match="source must be a string, got null"):
        Feedback("f", "cat", None)  # type: ignore[arg-type]


# ---------------------------------------------- JSON Schema files == the Python types


def test_json_schemas_are_valid_draft_2020_12() -> None:
    for doc in (RESULT_SCHEMA_JSON, EVENT_SCHEMA_JSON, FEEDBACK_SCHEMA_JSON):
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(doc)


_JSON_TYPES = {str: "string", int: "integer", float: "number", list: "array", bool: "boolean"}


def _resolve(node: dict) -> dict:
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/")
        return RESULT_SCHEMA_JSON["$defs"][ref.rsplit("/", 1)[1]]
    if "oneOf" in node:  # nullable object: [{"type": "null"}, {"$ref": ...}]
        (inner,) = [n for n in node["oneOf"] if n != {"type": "null"}]
        return _resolve(inner)
    return node


def _assert_object_matches(node: dict, cls: type, where: str) -> None:
    """properties and required of one JSON Schema object equal the dataclass's fields;
    recurse into fields whose type is a dataclass (or a list of them)."""
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    props = dict(node["properties"])
    props.pop("schema", None)  # the version tag is on the wire, not in the dataclass
    assert sorted(props) == sorted(fields), where
    # Required on the wire = every field whose type does not admit None.
    required = {name for name in fields if type(None) not in typing.get_args(hints[name])}
    assert set(node["required"]) - {"schema"} == required, where
    for name in fields:
        hint = hints[name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
        prop = props[name]
        if dataclasses.is_dataclass(base):
            _assert_object_matches(_resolve(prop), base, f"{where}.{name}")
        elif typing.get_origin(base) is list:
            (item,) = typing.get_args(base)
            assert prop["type"] == "array", f"{where}.{name}"
            if dataclasses.is_dataclass(item):
                _assert_object_matches(_resolve(prop["items"]), item, f"{where}.{name}[]")
            else:
                assert prop["items"]["type"] == _JSON_TYPES[item], f"{where}.{name}"
        elif base in _JSON_TYPES:
            if "enum" in prop:
                assert all(isinstance(v, base) for v in prop["enum"])
            else:
                assert prop["type"] == _JSON_TYPES[base], f"{where}.{name}"
        else:
            raise AssertionError(f"no JSON mapping for {where}.{name}: {hint}")


def test_result_json_schema_matches_dataclasses() -> None:
    _assert_object_matches(RESULT_SCHEMA_JSON, Result, "result")
    props = RESULT_SCHEMA_JSON["properties"]
    assert props["schema"] == {"const": schemas.RESULT_SCHEMA}
    assert tuple(props["task"]["enum"]) == schemas.TASKS
    assert tuple(props["status"]["enum"]) == schemas.STATUSES


def test_event_json_schema_matches_event_fields() -> None:
    props = EVENT_SCHEMA_JSON["properties"]
    assert set(EVENT_SCHEMA_JSON["required"]) == set(props) == set(schemas.COMMON_KEYS)
    assert props["schema"] == {"const": schemas.EVENT_SCHEMA}
    assert tuple(props["type"]["enum"]) == EVENT_TYPES
    # The common keys are the Event dataclass fields (minus the fields dict) + "schema".
    assert set(props) == {f.name for f in dataclasses.fields(Event)} - {"fields"} | {"schema"}
    branches = {}
    for rule in EVENT_SCHEMA_JSON["allOf"]:
        etype = rule["if"]["properties"]["type"]["const"]
        assert rule["if"]["required"] == ["type"]
        branches[etype] = rule["then"]
    assert set(branches) == set(EVENT_TYPES)
    for etype, table in EVENT_FIELDS.items():
        then = branches[etype]
        assert set(then["required"]) == set(table) == set(then["properties"]), etype
        for name, kind in table.items():
            assert then["properties"][name]["type"] == _JSON_TYPES[kind], (etype, name)
    assert tuple(branches["worker"]["properties"]["state"]["enum"]) == schemas.WORKER_STATES


def test_public_api_is_reexported() -> None:
    for name in schemas.__all__:
        assert hasattr(schemas, name), name
    for module in ("errors", "frame", "result", "event", "feedback"):
        mod = __import__(f"schemas.{module}", fromlist=["__all__"])
        assert set(mod.__all__) <= set(schemas.__all__), module


def test_feedback_json_schema_matches_dataclass() -> None:
    _assert_object_matches(FEEDBACK_SCHEMA_JSON, Feedback, "feedback")
    props = FEEDBACK_SCHEMA_JSON["properties"]
    assert props["schema"] == {"const": schemas.FEEDBACK_SCHEMA}
    limits = {"frame_id": schemas.MAX_TEXT_ID_CHARS, "label": schemas.MAX_LABEL_CHARS,
              "source": schemas.MAX_SOURCE_CHARS, "note": schemas.MAX_NOTE_CHARS}  # fmt: skip
    for name, most in limits.items():
        assert props[name]["maxLength"] == most, name
