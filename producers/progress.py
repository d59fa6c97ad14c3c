"""A progress line for long runs: frames sent, frames/s, failures and drops."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from foundation.log import get_logger

log = get_logger(__name__)


class Progress:
    """Redraws one status line on a terminal; on a pipe, logs a line now and then instead
    (a carriage-return line in a log file is noise)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.5 if self.tty else 10.0)
        self._next = time.monotonic() + self.interval_s
        self._drawn = False

    def update(self, sent: int, failed: int, dropped: int, elapsed_s: float) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        line = format_line(sent, failed, dropped, elapsed_s)
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            self.stream.flush()
            self._drawn = True
        else:
            log.info("publishing", sent=sent, failed=failed, dropped=dropped,
                     fps=round(sent / elapsed_s, 1) if elapsed_s > 0 else 0.0)

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def format_line(sent: int, failed: int, dropped: int, elapsed_s: float) -> str:
    fps = sent / elapsed_s if elapsed_s > 0 else 0.0
    return (f"sent {sent:,}  {fps:,.1f} frames/s  failed {failed:,}  dropped {dropped:,}  "
            f"{elapsed_s:,.0f}s")
