"""One progress report for the long commands (``demo``, ``replay``, ``simulate``) and the
benchmarks in ``bench/``.

On a terminal a single line redraws itself with the count, the rate and the time
left; piped or redirected, plain lines go out at most once per ``every_s`` seconds,
so a log file holds a readable history instead of carriage returns.

>>> import io
>>> ticks = iter([0.0, 2.0, 4.0])
>>> out = io.StringIO()
>>> bar = Progress("replay", total=1000, stream=out, clock=lambda: next(ticks))
>>> bar.update(500)
>>> print(out.getvalue(), end="")
replay: 500/1,000 events (250/s, 2 s left)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from riskstream.logs import printable

__all__ = ["Progress"]

_BAR = 20
_REDRAW_S = 0.1


class Progress:
    """Count work done; report it on ``stream`` (default: stderr) for a person."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: IO[str] | None = None,
        unit: str = "events",
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        stream = stream or sys.stderr
        # An escaping wrapper would print the bar's carriage return as "\r": write past it
        # (the label and notes are escaped here instead).
        self._stream: IO[str] = getattr(stream, "unescaped", stream)
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self.label, self.total, self.unit = printable(label), total, unit
        self._every = _REDRAW_S if self._tty else every_s
        self._clock = clock
        self._started = self._last = clock()
        self._drawn = False
        self._shown: int | None = None  # the count last reported

    def update(self, done: int, note: str = "") -> None:
        """Report ``done`` items so far, if it is time to (``note``: extra text)."""
        now = self._clock()
        if now - self._last < self._every:
            return
        self._last = now
        self._shown = done
        self._write(self.line(done, now - self._started, note))

    def print(self, text: str) -> None:
        """A line of its own (a warning, say) that the bar does not overwrite."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._drawn = False
        self._stream.write(printable(text) + "\n")
        self._stream.flush()

    def close(self, done: int | None = None, note: str = "") -> None:
        """End the bar's line (drawing ``done`` last, if given) so what follows starts clean.

        Piped, ``done`` gets a last line of its own only if lines were written and the
        last one said less: a log that showed progress shows where it ended, and a
        command too quick for any line stays quiet.
        """
        if done is not None and (self._tty or self._shown not in (None, done)):
            self._write(self.line(done, self._clock() - self._started, note))
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def line(self, done: int, elapsed: float, note: str = "") -> str:
        """The text of one report: count of total, rate, and time left when known."""
        rate = done / elapsed if elapsed > 0 else 0.0
        count = f"{done:,}" if self.total is None else f"{done:,}/{self.total:,}"
        bar = ""
        if self._tty and self.total:
            filled = min(_BAR, _BAR * done // self.total)
            bar = "[" + "#" * filled + "." * (_BAR - filled) + "] "
        left = ""
        if self.total is not None and rate > 0 and done < self.total:
            left = f", {(self.total - done) / rate:,.0f} s left"
        extra = f", {printable(note)}" if note else ""
        shown = f"{rate:,.0f}" if rate >= 10 or rate == 0 else f"{rate:.2g}"  # 0.25/s, not 0/s
        return f"{self.label}: {bar}{count} {self.unit} ({shown}/s{left}){extra}"

    def _write(self, text: str) -> None:
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K")
            self._drawn = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
