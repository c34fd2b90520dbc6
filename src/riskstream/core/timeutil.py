"""Data-time helpers: events carry RFC 3339 times; the core works in epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_time"]


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time with an offset.

    >>> parse_time("2026-11-26T10:00:00.250Z")
    1795687200.25
    """
    return datetime.fromisoformat(text).timestamp()


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds, the form riskstream writes.

    >>> format_time(1795687200.25)
    '2026-11-26T10:00:00.250Z'
    """
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
