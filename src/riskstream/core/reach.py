"""Who an incident reached: distinct users among a stream's events since the onset.

Blast radius in events is free (the detector counts samples); in *people* it
needs memory, because the onset is only known after the alarm.  So a stream
whose monitor names a ``users`` field keeps its last ``capacity`` users as 32-bit
hashes in a ring.  At the alarm, the users of the samples from the estimated
onset on are counted; if the onset lies further back than the ring reaches, the
count is a lower bound and says so.

crc32 rather than Python's ``hash``: a restarted processor must count the same
users in the same snapshot, and ``hash`` of a str changes per process.  At 1,024
users the chance of any two colliding is about 1 in 10,000, so the count may be
one low — close enough for a headcount.
"""

from __future__ import annotations

import base64
import zlib
from array import array
from typing import Any

from riskstream.errors import ConfigError, SnapshotError

__all__ = ["RecentUsers"]

SNAPSHOT_VERSION = 1
_NONE = 0  # the hash slot of a sample without a user (crc32 of a real id is never 0 here)


class RecentUsers:
    __slots__ = ("_filled", "_next", "_ring")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ConfigError(f"users_window must be at least 1, got {capacity}")
        self._ring = array("I", bytes(4 * capacity))
        self._next = 0  # where the next sample's user goes
        self._filled = 0

    def add(self, user: object) -> None:
        """One more sample, and its user (``None``: the event named none)."""
        h = _NONE if user is None else (zlib.crc32(str(user).encode()) or 1)
        ring = self._ring
        ring[self._next] = h
        self._next = (self._next + 1) % len(ring)
        if self._filled < len(ring):
            self._filled += 1

    def distinct_last(self, samples: int) -> tuple[int, bool]:
        """Distinct users among the last ``samples`` samples, and whether all were kept.

        >>> r = RecentUsers(4)
        >>> for u in ("a", "b", "a", None, "c"): r.add(u)
        >>> r.distinct_last(3), r.distinct_last(9)
        ((2, True), (3, False))
        """
        n = min(max(samples, 0), self._filled)
        ring, size = self._ring, len(self._ring)
        seen = {ring[(self._next - 1 - i) % size] for i in range(n)}
        seen.discard(_NONE)
        return len(seen), n == samples

    def snapshot(self) -> list[Any]:
        return [
            SNAPSHOT_VERSION,
            len(self._ring),
            self._next,
            self._filled,
            base64.b64encode(self._ring.tobytes()).decode(),
        ]

    @classmethod
    def restore(cls, snap: list[Any]) -> RecentUsers:
        if not snap or snap[0] != SNAPSHOT_VERSION:
            raise SnapshotError(f"users snapshot version {snap[:1]} is not {SNAPSHOT_VERSION}")
        _, capacity, next_, filled, ring = snap
        users = cls(int(capacity))
        users._ring = array("I", base64.b64decode(ring))
        users._next, users._filled = int(next_), int(filled)
        return users
