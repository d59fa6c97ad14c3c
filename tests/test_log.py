import json
import logging

import pytest
import structlog

from foundation.log import bound_context, configure_logging, get_logger


@pytest.fixture(autouse=True)
def restore_logging():
    """configure_logging replaces the root handler; put the test runner's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_carry_the_frame_ids(capsys):
    configure_logging("info", "json")
    log = get_logger("test")
    with bound_context(stream_id="cam-1", frame_id="f-42"):
        log.info("frame decoded", decode_ms=1.5)
        logging.getLogger("celery.test").warning("from the standard library")
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "frame decoded"
    assert (lines[0]["stream_id"], lines[0]["frame_id"], lines[0]["decode_ms"]) == (
        "cam-1", "f-42", 1.5,
    )
    assert lines[1]["event"] == "from the standard library"
    assert lines[1]["stream_id"] == "cam-1" and lines[1]["level"] == "warning"
    assert "stream_id" not in lines[2]


def test_console_format_is_readable(capsys):
    configure_logging("info", "console")
    get_logger("test").info("hello", stream_id="cam-1")
    err = capsys.readouterr().err
    assert "hello" in err and "stream_id" in err and not err.lstrip().startswith("{")
