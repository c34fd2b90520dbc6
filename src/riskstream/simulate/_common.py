"""What the simulators share: the result type, record assembly, arrivals, rounding."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.timeutil import format_time

__all__ = [
    "KINDS",
    "START",
    "Recorder",
    "Simulation",
    "arrivals",
    "change_event",
    "change_summary",
    "check_positive",
    "cumulative",
    "kumaraswamy",
    "ms",
    "time_fields",
]

START = 1_795_680_000.0
"""Default start of the simulated traffic: 2026-11-26T08:00:00Z."""

KINDS = ("inference", "sensor", "label", "change")
"""Topic kinds of the records; the caller maps each to a topic name (``config.topics``)."""

Record = tuple[str, str, dict[str, Any]]


@dataclass(slots=True)
class Simulation:
    """A generated scenario: Kafka records in data-time order and the ground truth.

    ``records`` are ``(topic_kind, key, event)`` with ``topic_kind`` one of
    :data:`KINDS`; label events sit at their own (arrival) time.  ``truth`` is
    JSON-able: what failed, where, from when, and what caused it.
    """

    records: list[Record]
    truth: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Records per topic kind (every kind present, zeros included)."""
        seen = Counter(kind for kind, _, _ in self.records)
        return {kind: seen.get(kind, 0) for kind in KINDS}


def ms(t: float) -> float:
    """``t`` rounded to the millisecond, the resolution of the events' times."""
    return round(t, 3)


class Recorder:
    """Collects records with their data time; :meth:`records` sorts them stably."""

    def __init__(self) -> None:
        self._items: list[tuple[float, int, str, str, dict[str, Any]]] = []

    def add(self, at: float, kind: str, key: str, event: dict[str, Any]) -> None:
        """Add an event whose ``time`` is ``format_time(at)`` (``at`` already in ms)."""
        self._items.append((at, len(self._items), kind, key, event))

    def records(self) -> list[Record]:
        self._items.sort(key=lambda item: (item[0], item[1]))
        return [(kind, key, event) for _, _, kind, key, event in self._items]

    def span(self) -> tuple[float, float]:
        times = [item[0] for item in self._items]
        return min(times), max(times)


def arrivals(rng: random.Random, rate: float, start: float, end: float) -> Iterator[float]:
    """Poisson arrival times (``rate`` per second) in ``[start, end)``, to the millisecond."""
    t = start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        yield ms(t)


def check_positive(**values: float) -> None:
    """ValueError naming the first option that is not a finite number > 0."""
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")


def change_event(
    event_id: str, at: float, kind: str, subject: str, version: str, actor: str, description: str
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "time": format_time(at),
        "kind": kind,
        "subject": subject,
        "version": version,
        "actor": actor,
        "description": description,
    }


def change_summary(event: dict[str, Any]) -> dict[str, Any]:
    """The truth's view of a change event."""
    return {k: event[k] for k in ("event_id", "kind", "subject", "version", "time")}


def time_fields(name: str, at: float) -> dict[str, Any]:
    """``{name: RFC 3339, name_epoch: seconds}`` for the truth."""
    return {name: format_time(at), f"{name}_epoch": at}


def kumaraswamy(rng: random.Random, a: float, b: float) -> float:
    """A draw in (0, 1) from Kumaraswamy(a, b): Beta-like, but one uniform and two powers.

    Kumaraswamy(1, b) is exactly Beta(1, b); ``random.betavariate`` costs ~10x more.
    """
    return float((1.0 - (1.0 - rng.random()) ** (1.0 / b)) ** (1.0 / a))


def cumulative(weights: tuple[float, ...]) -> list[float]:
    """``cum_weights`` for ``rng.choices``, computed once rather than per call."""
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out
