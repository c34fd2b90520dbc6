"""How a partition's state keys name what they hold.

A state key is ``monitor + SEPARATOR + rest``; ``rest`` is a stream key, or a mark
(a control character, which cannot occur in a monitor name or a stream key) followed
by what it marks.  :func:`parse` is the one place that tells them apart.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = [
    "CLOCK_MARK",
    "COLD_MARK",
    "EPISODE_MARK",
    "FDR_MARK",
    "GAP_MARK",
    "HELD_MARK",
    "LIMITS_KEY",
    "SPEC_MARK",
    "STATE_KEY_SEPARATOR",
    "USERS_MARK",
    "StateKey",
    "StateKind",
    "parse",
]

STATE_KEY_SEPARATOR = "\x1f"
"""Between monitor name and stream key in a state key (cannot occur in either)."""

GAP_MARK = "\x1e"
"""Marks the state key of a monitor's group rates, apart from its streams' keys."""

FDR_MARK = "\x1b"
"""Marks the state key of a monitor's false-discovery control (one per partition)."""

USERS_MARK = "\x1c"
"""Marks the state key of a stream's recent users (see :mod:`riskstream.core.reach`)."""

EPISODE_MARK = "\x1d"
"""Marks the state key of a subject's open incident episode (see :mod:`.episodes`)."""

CLOCK_MARK = "\x1a"
"""Marks the state key of a missing-data monitor's partition clock (see :mod:`.silence`)."""

LIMITS_KEY = STATE_KEY_SEPARATOR + "\x19"
"""The state key of a partition's stream limits: its idle clock and, per monitor, the
events dropped at the cap and the streams evicted (see :mod:`.limits`)."""
HELD_MARK = "\x17"
"""Marks the state key of a quarantined stream's record (see :mod:`.monitors`)."""

SPEC_MARK = "\x18"
"""Marks the state key of a monitor's fingerprint (one per partition): what its state means."""


COLD_MARK = "\x16"
"""Marks the state key of a stream's cold part, beside its packed snapshot (the part that
rarely moves, saved only when it does: see :meth:`.streams.StreamDetector.pack`)."""


class StateKind(Enum):
    STREAM = "stream"
    GROUP_RATES = "group-rates"
    FDR = "fdr"
    USERS = "users"
    EPISODE = "episode"
    CLOCK = "clock"
    HELD = "held"
    SPEC = "spec"
    COLD = "cold"


_BY_MARK = {
    GAP_MARK: StateKind.GROUP_RATES,
    USERS_MARK: StateKind.USERS,
    EPISODE_MARK: StateKind.EPISODE,
    CLOCK_MARK: StateKind.CLOCK,
    HELD_MARK: StateKind.HELD,
    COLD_MARK: StateKind.COLD,
}


class StateKey(NamedTuple):
    monitor: str
    kind: StateKind
    key: str  # the stream (or subject) key, without its mark


def parse(state_key: str) -> StateKey:
    """What a state key holds.

    >>> parse("drift\x1fs1")
    StateKey(monitor='drift', kind=<StateKind.STREAM: 'stream'>, key='s1')
    >>> parse("rates\x1f\x1em|g").kind
    <StateKind.GROUP_RATES: 'group-rates'>
    """
    monitor, _, rest = state_key.partition(STATE_KEY_SEPARATOR)
    if rest == FDR_MARK:
        return StateKey(monitor, StateKind.FDR, "")
    if rest == SPEC_MARK:
        return StateKey(monitor, StateKind.SPEC, "")
    kind = _BY_MARK.get(rest[:1])
    if kind is None:
        return StateKey(monitor, StateKind.STREAM, rest)
    return StateKey(monitor, kind, rest[1:])
