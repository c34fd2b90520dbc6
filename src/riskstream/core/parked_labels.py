"""Labels that came before their prediction, kept until it arrives.

Live, a label comes days after its prediction.  But Kafka orders records only
within a partition: when a processor catches up on a backlog, or a backfill
loads both topics at once, the label topic can be read ahead of the inference
topic, and every label would find no prediction yet.  So a label without its
prediction waits here (per label partition, checkpointed with it) and is joined
as soon as the prediction is stored.

A label waits at most ``horizon_s`` of data time (the predictions' TTL: after
that its prediction would be gone anyway) behind the newest label of the
partition, and at most ``max_size`` wait; beyond either it is given up, and
counted as unmatched by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from riskstream.core.timeutil import parse_time
from riskstream.errors import SnapshotError

__all__ = ["PARKED_KEY", "ParkedLabels"]

PARKED_KEY = "\x1aparked-labels"
"""The partition state key they are saved under (no monitor name can start with it)."""
SNAPSHOT_VERSION = 1
KEPT = ("event_id", "time", "prediction_id", "model_id", "label", "source")
"""What a parked label keeps: what joining it reads.  The schema lets a producer add any
other field, 64 KiB of them in one event: 100,000 parked labels kept whole were 6 GB
of memory, and one snapshot over Redis's 512 MB limit, which no checkpoint could save."""


class ParkedLabels:
    __slots__ = ("_newest", "_size", "_waiting", "dirty", "horizon_s", "max_size")

    def __init__(self, horizon_s: float, max_size: int = 100_000) -> None:
        self.horizon_s = horizon_s
        self.max_size = max_size
        self._waiting: dict[str, list[dict[str, Any]]] = {}  # prediction id -> labels, in order
        self._newest = float("-inf")  # data time of the newest label parked
        self._size = 0
        self.dirty = False

    def __len__(self) -> int:
        return self._size

    def park(self, label: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Keep ``label``; the labels given up to make room or past the horizon."""
        kept = {k: label[k] for k in KEPT if k in label}
        self._waiting.setdefault(str(label["prediction_id"]), []).append(kept)
        self._size += 1
        self._newest = max(self._newest, parse_time(str(label["time"])))
        self.dirty = True
        return self._give_up()

    def ids(self) -> list[str]:
        return list(self._waiting)

    def waiting_for(self, ids: Iterable[str]) -> list[str]:
        """Those of ``ids`` some parked label waits for."""
        waiting = self._waiting
        return [pid for pid in ids if pid in waiting]

    def take(self, found: Iterable[str]) -> list[dict[str, Any]]:
        """The labels of the predictions now found, in the order they were parked."""
        wanted = set(found)
        taken = [label for pid in self._waiting if pid in wanted for label in self._waiting[pid]]
        for pid in wanted.intersection(self._waiting):
            self._size -= len(self._waiting.pop(pid))
            self.dirty = True
        return taken

    def _give_up(self) -> list[dict[str, Any]]:
        """Drop from the front (the longest waiting) while past the horizon or too many.

        Labels arrive roughly in data time, so the front holds the oldest; one that
        arrived out of order may wait a little longer than the horizon, never forever.
        """
        oldest = self._newest - self.horizon_s
        dropped: list[dict[str, Any]] = []
        while self._waiting:
            pid = next(iter(self._waiting))
            labels = self._waiting[pid]
            if self._size <= self.max_size and parse_time(str(labels[0]["time"])) >= oldest:
                break
            dropped.append(labels.pop(0))
            self._size -= 1
            if not labels:
                del self._waiting[pid]
        return dropped

    def snapshot(self) -> bytes:
        return orjson.dumps([SNAPSHOT_VERSION, self._newest, self._waiting])

    def load(self, raw: bytes) -> None:
        snap = orjson.loads(raw)
        if not snap or snap[0] != SNAPSHOT_VERSION:
            raise SnapshotError(f"parked labels version {snap[:1]} is not {SNAPSHOT_VERSION}")
        _, newest, waiting = snap
        self._newest = float(newest) if newest is not None else float("-inf")
        self._waiting = {str(k): list(v) for k, v in waiting.items()}
        self._size = sum(map(len, self._waiting.values()))
        self.dirty = False
