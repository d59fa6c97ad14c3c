"""`framewire monitor report`: the HTML page of a model's drift (mlops/monitor/report.py)
on window reports of observations drawn from the demo model's reference, stationary and
then shifted (tests/test_monitor.py's draw and run), and the command's paths that need no
broker. The monitor on a real topic is tests/test_monitor_stream.py's.
"""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from framewire.cli import cli
from mlops.monitor import report
from mlops.monitor.checks import Thresholds
from tests.test_monitor import MODEL, draw, run

LIMITS = Thresholds(window=300, confirm=2)
NAME = MODEL.rpartition(":")[0]
VOID = {"meta", "img", "br", "hr", "input", "link"}


class Page(HTMLParser):
    """The page's text per <h2> section, its images, and any tag closed out of order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.misnested: list[str] = []
        self.images: list[dict[str, Any]] = []
        self.sections: dict[str, str] = {}
        self._heading: str | None = None
        self._section = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in VOID:
            return
        self.open.append(tag)
        if tag == "h2":
            self._heading = ""

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.misnested.append(tag)
        if tag == "h2" and self._heading is not None:
            self._section = self._heading.split(" (")[0]
            self.sections[self._section] = ""
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data
        elif self._section:
            self.sections[self._section] += data


def shifted_reports(seed: int, calm: int, shifted: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    frames = draw(rng, 300 * calm) + draw(rng, 300 * shifted, brightness_shift=-40,
                                          embedding_shift=0.5)  # fmt: skip
    monitor, _ = run(frames, LIMITS)
    return report.as_dicts(monitor.reports)


@pytest.fixture(scope="module")
def drifted() -> tuple[list[dict[str, Any]], Page]:
    rows = shifted_reports(11, calm=4, shifted=4)
    return rows, Page(report.render(NAME, rows, LIMITS, since_ms=1_000_000))


def test_a_shift_is_an_episode_and_a_stationary_range_has_none(drifted) -> None:
    rows, page = drifted
    assert len(rows) == 8 and not page.misnested and page.open == []
    episodes = page.sections["Drift episodes"]
    assert "brightness_ks" in episodes and "embedding_shift" in episodes
    assert "predictions_psi" not in episodes  # the classes were drawn unchanged
    found = {e.metric: e for e in report.episodes(rows, LIMITS.confirm)}
    assert found["brightness_ks"].first == 5 and found["brightness_ks"].ongoing
    assert "drifting" in page.sections["Statistics"]

    calm = shifted_reports(12, calm=8, shifted=0)
    quiet = Page(report.render(NAME, calm, LIMITS))
    assert report.episodes(calm, LIMITS.confirm) == []
    assert "None." in quiet.sections["Drift episodes"]
    assert "drifting" not in quiet.sections["Statistics"]


def test_every_image_is_an_inline_png(drifted) -> None:
    _, page = drifted
    # One chart per statistic (7: PSI, JS, four KS, embedding) and the live accuracy.
    assert len(page.images) == 8
    for image in page.images:
        prefix, _, data = image["src"].partition(",")
        assert prefix == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"


def test_outside_text_is_escaped_and_every_part_renders() -> None:
    rows = shifted_reports(13, calm=2, shifted=4)
    evil = "<script>alert(1)</script>"
    for i, row in enumerate(rows):
        # Two versions (legends name them: a `$` must not start matplotlib's mathtext),
        # window end times and per-stream accuracy.
        row["model"] = f"{evil}:{'1' if i < 4 else '2$x'}"
        row["ts"] = 1_700_000_000_000 + 60_000 * i
        row["accuracy_by_stream"] = {evil: [7, 10], "cam-1": [9, 10]}
        row["quality"] = [{"stream_id": evil, "check": "blank", "share": 0.9}]
    chosen = report.select(rows, evil, until_ms=1_700_000_000_000 + 60_000 * 2)
    assert len(chosen) == 3  # the fourth window ended after --until
    text = report.render(evil, rows, LIMITS, since_ms=1_700_000_000_000)
    assert "<script>" not in text and "&lt;script&gt;" in text
    page = Page(text)
    assert not page.misnested
    streams = page.sections["Live accuracy"]
    assert streams.index(evil) < streams.index("cam-1")  # worst first: 0.7, then 0.9
    # Both versions drift (windows 3-4 and 5-6); the times column says when.
    assert page.sections["Drift episodes"].count("brightness_ks") == 2
    assert "2023-11-14 22:15:20 UTC to 2023-11-14 22:16:20 UTC" in page.sections["Drift episodes"]
    assert f"{evil}blank6" in page.sections["Data quality"]


# -- the command, where no broker is needed ----------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["--log-format", "json", "monitor", "report", *args])


def test_bad_times_are_one_line_errors() -> None:
    out = invoke("--model", NAME, "--since", "yesterday")
    assert out.exit_code == 1 and "--since: expected an ISO-8601 time" in out.output
    out = invoke("--model", NAME, "--since", "1h", "--until", "2h")
    assert out.exit_code == 1 and "--until (2h) is not after --since (1h)" in out.output
    assert "Traceback" not in out.output
