"""Data-time helpers: events carry RFC 3339 times; the core works in epoch seconds.

:func:`format_time` never raises: it formats whatever epoch a stored state or a
finding holds (an old checkpoint may hold a time no input check would pass
today), clamping what lies outside the calendar to its ends.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["FIRST_EPOCH", "LAST_EPOCH", "format_time", "parse_time"]

FIRST_EPOCH = datetime(1, 1, 1, tzinfo=UTC).timestamp()
"""0001-01-01T00:00:00Z, the first instant :func:`format_time` can write."""
LAST_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""9999-12-31T23:59:59Z, the last it writes."""


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time with an offset.

    Raises ValueError (or OverflowError) for a time the calendar cannot hold, such
    as year 0; the processor dead-letters those (see :mod:`riskstream.core.admission`).

    >>> parse_time("2026-11-26T10:00:00.250Z")
    1795687200.25
    """
    return datetime.fromisoformat(text).timestamp()


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds, the form riskstream writes.

    Times beyond the calendar (year 0, past 9999, ±infinity) are written as its
    first or last instant, and NaN as the first: formatting must never fail.

    >>> format_time(1795687200.25)
    '2026-11-26T10:00:00.250Z'
    >>> format_time(parse_time("9999-12-31T23:59:59-23:59"))
    '9999-12-31T23:59:59.000Z'
    >>> format_time(float("nan"))
    '0001-01-01T00:00:00.000Z'
    """
    if not FIRST_EPOCH <= epoch <= LAST_EPOCH:  # also NaN
        epoch = LAST_EPOCH if epoch > LAST_EPOCH else FIRST_EPOCH
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
