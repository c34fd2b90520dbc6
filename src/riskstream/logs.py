"""Text that reaches a person's log or terminal carries no control characters.

Log lines and terminal output hold values that came from outside: request paths,
event fields, operators' notes.  A newline in one forges a log line (a fake
approval in the API's log); an escape sequence rewrites the screen or a window
title.  So every such character is shown escaped (``\\x1b``, ``\\n``, ``\\u202e``):

- :func:`escape_logs` makes every log record's message escaped, whichever handler
  or formatter prints it (faust installs its own), by the record factory;
- :func:`printable` is what the CLI applies to all it prints for a person
  (``--json`` output is JSON, whose encoder escapes control characters itself).
"""

from __future__ import annotations

import logging
import re
from typing import Any, TextIO

__all__ = ["EscapingWriter", "escape_logs", "printable"]

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide
# text (bidi overrides and isolates, line and paragraph separators).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with its control characters escaped (newlines kept if asked).

    >>> printable("GET /x\\n2026 INFO approved \\x1b[2J")
    'GET /x\\\\n2026 INFO approved \\\\x1b[2J'
    >>> printable("a\\nb\\x07", keep_newlines=True)
    'a\\nb\\\\x07'
    """
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(_escaped, text)


class _EscapedRecord(logging.LogRecord):
    def getMessage(self) -> str:
        return printable(super().getMessage())


def escape_logs() -> None:
    """Escape control characters in every log message of this process, from now on."""
    factory = logging.getLogRecordFactory()
    if factory is not _EscapedRecord:
        logging.setLogRecordFactory(_EscapedRecord)


class EscapingWriter:
    """A text stream that escapes control characters (not newlines) on the way out."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep_newlines=True))
        return len(text)

    @property
    def unescaped(self) -> TextIO:
        """The wrapped stream, for a writer that escapes its own text (the progress bar)."""
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
