"""The reference :class:`~riskstream.core.labels.PredictionStore`: a dict behind a lock.

It defines the semantics the Redis store must match (``tests/contract`` runs one
suite over both) and backs the embedded demo and unit tests.  Records are kept as
orjson bytes, as Redis keeps them, so both stores hand back the same copies.
Time comes from an injected clock (``time.monotonic`` by default), so tests move
it instead of sleeping.  Expired records are dropped as they are met and, in
expiry order, whenever a put finds some due: memory stays bounded by what the
TTL keeps alive, at O(log n) per put.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from riskstream.core.labels import PredictionStore

__all__ = ["InMemoryPredictionStore", "check_ttl", "decode_record", "encode_record"]


def check_ttl(ttl_s: float) -> int:
    """The TTL in whole milliseconds (at least 1); a caller bug if not a number > 0."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not 0 < ttl_s < math.inf:
        raise ValueError(f"ttl_s must be a number of seconds > 0, got {ttl_s!r}")
    return max(1, math.ceil(ttl_s * 1000.0))


def encode_record(prediction_id: str, record: Mapping[str, Any]) -> bytes:
    """A record as JSON bytes; a record that is not JSON-able is a caller bug."""
    if not isinstance(prediction_id, str):
        raise TypeError(f"prediction_id must be a str, got {type(prediction_id).__name__}")
    try:
        return orjson.dumps(record)
    except TypeError as exc:
        raise TypeError(f"prediction {prediction_id!r}: record is not JSON-able: {exc}") from None


def decode_record(raw: bytes) -> dict[str, Any]:
    record = orjson.loads(raw)
    if not isinstance(record, dict):
        raise ValueError(f"a stored prediction record is not a JSON object: {raw[:80]!r}")
    return record


class InMemoryPredictionStore:
    """Thread-safe, process-local prediction store; everything is lost when it is dropped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, tuple[float, bytes]] = {}  # id -> (expires at, JSON)
        self._expiry: list[tuple[float, str]] = []  # a heap; stale entries are skipped

    def __len__(self) -> int:
        """Records held, expired ones not yet dropped included."""
        return len(self._records)

    def put(self, prediction_id: str, record: Mapping[str, Any], ttl_s: float) -> None:
        self.put_many([(prediction_id, record)], ttl_s)

    def put_many(self, records: Iterable[tuple[str, Mapping[str, Any]]], ttl_s: float) -> None:
        ttl = check_ttl(ttl_s) / 1000.0
        # Encode before taking the lock: a bad record must not leave half a batch.
        encoded = [(pid, encode_record(pid, record)) for pid, record in records]
        with self._lock:
            now = self._clock()
            self._sweep(now)
            expires = now + ttl
            for pid, raw in encoded:
                self._records[pid] = (expires, raw)
                heapq.heappush(self._expiry, (expires, pid))

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        with self._lock:
            raw = self._live(prediction_id, self._clock())
        return None if raw is None else decode_record(raw)

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            now = self._clock()
            found = {
                pid: raw for pid in prediction_ids if (raw := self._live(pid, now)) is not None
            }
        return {pid: decode_record(raw) for pid, raw in found.items()}

    def close(self) -> None:
        return None

    def _live(self, prediction_id: str, now: float) -> bytes | None:
        entry = self._records.get(prediction_id)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._records[prediction_id]
            return None
        return entry[1]

    def _sweep(self, now: float) -> None:
        heap, records = self._expiry, self._records
        while heap and heap[0][0] <= now:
            expires, pid = heapq.heappop(heap)
            entry = records.get(pid)
            if entry is not None and entry[0] == expires:
                del records[pid]


if TYPE_CHECKING:  # mypy proves the class implements the port

    def _implements_port(store: InMemoryPredictionStore) -> PredictionStore:
        return store
