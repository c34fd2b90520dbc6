"""What an event must pass before any detector state sees it: a time it can work with.

The schemas accept any RFC 3339 time, but a time the calendar cannot hold (year 0)
would crash the processor on every restart at the same offset, and one far ahead of
the wall clock (a reading dated 2099) would move clocks that later readings are
judged on.  So each event's time is checked against the wall clock, once, before it
is applied: too old, unreadable or too far ahead, the event is dead-lettered with
the reason and the limit that refused it.  Wall clock, not data time: data time is
what is being checked.

>>> limits = TimeLimits(max_age_s=86_400.0, max_ahead_s=60.0)
>>> now = parse_time("2026-11-26T10:00:00Z")
>>> event_time("2026-11-26T10:00:30Z", now, limits) - now
30.0
>>> try:
...     event_time("2099-01-01T00:00:00Z", now, limits)
... except Refused as exc:
...     print(exc.reason, str(exc)[:60])
time_ahead time 2099-01-01T00:00:00Z is 72.1 years ahead of the wall cl
"""

from __future__ import annotations

from dataclasses import dataclass

from riskstream.core.timeutil import format_time, parse_time

__all__ = ["Refused", "TimeLimits", "event_time"]

YEAR_S = 365.25 * 86_400.0


class Refused(ValueError):
    """An event that must not be applied; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """How far behind and ahead of the wall clock an event's time may be, in seconds."""

    max_age_s: float = 10 * YEAR_S
    max_ahead_s: float = 86_400.0


def _span(seconds: float) -> str:
    if seconds >= 2 * YEAR_S:
        return f"{seconds / YEAR_S:.1f} years"
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    return f"{seconds:.0f} s"


def event_time(text: str, now: float, limits: TimeLimits) -> float:
    """The epoch seconds of an event's ``time``, or :class:`Refused` saying why not.

    Reasons: ``time_out_of_range`` (unreadable, or older than ``max_age_s``) and
    ``time_ahead`` (more than ``max_ahead_s`` ahead of ``now``).
    """
    try:
        t = parse_time(text)
    except (ValueError, OverflowError, TypeError) as exc:
        raise Refused("time_out_of_range", f"time {text!r} cannot be used: {exc}") from None
    if t > now + limits.max_ahead_s:
        raise Refused(
            "time_ahead",
            f"time {text} is {_span(t - now)} ahead of the wall clock ({format_time(now)}); "
            f"at most {_span(limits.max_ahead_s)} ahead is accepted "
            "(processor.max_time_ahead_s)",
        )
    if t < now - limits.max_age_s:
        raise Refused(
            "time_out_of_range",
            f"time {text} is {_span(now - t)} before the wall clock ({format_time(now)}); "
            f"at most {_span(limits.max_age_s)} back is accepted (processor.max_time_age_days)",
        )
    return t
