"""Redelivered events: the ids a partition has seen lately, checkpointed with it.

Producers retry, and pipelines upstream replay: the same reading can arrive many
times, and sixty copies of one reading look like a stuck sensor.  The schemas say
``event_id`` is there to de-duplicate, so each partition remembers the ids of its
last ``capacity`` events and drops an event whose id it holds.

The ids are kept in chunks, one per checkpoint: a checkpoint writes only the ids
that came since the last one (one state key per chunk) and deletes the chunks that
fell out of the window, so saving costs what is new, not the whole window, and a
restart restores exactly the ids the saved offset had seen.  The window is between
``capacity`` and ``capacity`` plus one checkpoint's events long.  Per event: one
dict lookup and one insert.

>>> ids = RecentIds(capacity=2)
>>> ids.seen("a"), ids.seen("b"), ids.seen("a")
(False, False, True)
>>> changed, deleted = ids.take_changed()
>>> sorted(changed), deleted
(['\\x1aevent-ids|000000000000'], [])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import orjson

from riskstream.errors import SnapshotError

__all__ = ["IDS_PREFIX", "RecentIds"]

IDS_PREFIX = "\x1aevent-ids|"
"""The partition state keys of the id chunks (no monitor name can start with it)."""


class RecentIds:
    __slots__ = ("_chunks", "_current", "_index", "_kept", "_seq", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._index: dict[str, int] = {}  # id -> the chunk it is in
        self._current: list[str] = []  # ids since the last checkpoint (chunk self._seq)
        self._chunks: deque[tuple[int, list[str]]] = deque()  # saved chunks, oldest first
        self._kept = 0  # ids in the saved chunks
        self._seq = 0

    def __len__(self) -> int:
        return self._kept + len(self._current)

    def __contains__(self, event_id: str) -> bool:
        """Whether ``event_id`` is in the window (``seen`` without remembering it)."""
        return event_id in self._index

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` is in the window (a redelivery); else remember it."""
        index = self._index
        if event_id in index:
            return True
        index[event_id] = self._seq
        self._current.append(event_id)
        return False

    def take_changed(self) -> tuple[dict[str, bytes], list[str]]:
        """The chunk to save (the ids since the last call) and the chunk keys to delete."""
        changed: dict[str, bytes] = {}
        if self._current:
            changed[_key(self._seq)] = orjson.dumps(self._current)
            self._chunks.append((self._seq, self._current))
            self._kept += len(self._current)
            self._current = []
            self._seq += 1
        deleted: list[str] = []
        while self._chunks and self._kept - len(self._chunks[0][1]) >= self.capacity:
            seq, ids = self._chunks.popleft()
            self._kept -= len(ids)
            index = self._index
            for event_id in ids:
                if index.get(event_id) == seq:
                    del index[event_id]
            deleted.append(_key(seq))
        return changed, deleted

    def unsave(self, changed: Mapping[str, bytes]) -> None:
        """After a save that may not have landed: write its chunk again next time (the
        caller deletes the chunks it deleted again)."""
        for key in changed:
            if not key.startswith(IDS_PREFIX):  # a detector's state, saved in the same call
                continue
            seq = int(key[len(IDS_PREFIX) :])
            if self._chunks and self._chunks[-1][0] == seq:
                _, ids = self._chunks.pop()
                self._kept -= len(ids)
                self._current = ids + self._current
                self._seq = seq
                for event_id in ids:
                    self._index[event_id] = seq

    def load(self, snapshots: Mapping[str, bytes]) -> None:
        """Restore the chunks a checkpoint saved."""
        chunks = sorted(
            (int(key[len(IDS_PREFIX) :]), raw)
            for key, raw in snapshots.items()
            if key.startswith(IDS_PREFIX)
        )
        for seq, raw in chunks:
            ids = orjson.loads(raw)
            if not isinstance(ids, list):
                raise SnapshotError(f"event-id chunk {seq} is not a list: reset the partition")
            ids = [str(i) for i in ids]
            self._chunks.append((seq, ids))
            self._kept += len(ids)
            for event_id in ids:
                self._index[event_id] = seq
        if chunks:
            self._seq = chunks[-1][0] + 1


def _key(seq: int) -> str:
    return f"{IDS_PREFIX}{seq:012d}"
