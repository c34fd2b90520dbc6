"""An in-process message bus with Kafka's shape: topics, groups, offsets, assignment.

It lets the embedded default (``riskstream demo``, ``riskstream replay``) and unit
tests run the same services as production without a broker.  Each topic has one
partition; a consumer reads its topics in the order records were produced across
all of them (as a replay file is ordered), which a single Kafka partition per
subject also gives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from riskstream.ports import AssignHandler, Record, RevokeHandler, TopicPartition

__all__ = ["InMemoryBus"]


class InMemoryBus:
    """One global append-only log; per-topic offsets; per-group commits."""

    def __init__(self) -> None:
        self._log: list[Record] = []
        self._sizes: dict[str, int] = defaultdict(int)
        self._committed: dict[tuple[str, TopicPartition], int] = {}

    def producer(self) -> _MemoryProducer:
        return _MemoryProducer(self)

    def consumer(self, group: str) -> _MemoryConsumer:
        return _MemoryConsumer(self, group)

    def records(self, topic: str) -> list[Record]:
        """Everything ever written to ``topic``, in order (for tests and the demo)."""
        return [r for r in self._log if r.topic == topic]

    def size(self, topic: str) -> int:
        return self._sizes[topic]

    def append(
        self, topic: str, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        offset = self._sizes[topic]
        self._sizes[topic] = offset + 1
        self._log.append(Record(topic, 0, offset, key, value, tuple(headers)))


class _MemoryProducer:
    def __init__(self, bus: InMemoryBus) -> None:
        self._bus = bus

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._bus.append(topic, value, key, headers)

    def flush(self, timeout: float = 10.0) -> None:
        return None


class _MemoryConsumer:
    def __init__(self, bus: InMemoryBus, group: str) -> None:
        self._bus = bus
        self._group = group
        self._topics: frozenset[str] = frozenset()
        self._start: dict[str, int] = {}
        self._cursor = 0  # index into the global log
        self._on_revoke: RevokeHandler | None = None
        self._held: set[str] = set()

    def subscribe(
        self, topics: Sequence[str], on_assign: AssignHandler, on_revoke: RevokeHandler
    ) -> None:
        self._topics = frozenset(topics)
        self._on_revoke = on_revoke
        assigned = [(t, 0) for t in topics]
        starts = on_assign(assigned)
        self._start = {t: starts.get((t, 0)) or 0 for t in topics}
        self._cursor = 0

    def poll_batch(self, max_records: int, timeout: float) -> list[Record]:
        out: list[Record] = []
        log, i = self._bus._log, self._cursor
        while i < len(log) and len(out) < max_records:
            r = log[i]
            i += 1
            if (
                r.topic in self._topics
                and r.offset >= self._start[r.topic]
                and r.topic not in self._held
            ):
                out.append(r)
                self._start[r.topic] = r.offset + 1
        self._cursor = i
        return out

    def hold(self, partition: TopicPartition, offset: int | None) -> None:
        self._held.add(partition[0])

    def release(self, partition: TopicPartition, offset: int | None) -> None:
        """Deliver the topic again from ``offset``: rewind the cursor to its first record
        there; records of other topics it passes again are skipped by their offsets."""
        topic = partition[0]
        self._held.discard(topic)
        self._start[topic] = offset or 0
        log = self._bus._log
        first = next(
            (i for i, r in enumerate(log) if r.topic == topic and r.offset >= (offset or 0)),
            len(log),
        )
        self._cursor = min(self._cursor, first)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self._bus._committed[(self._group, tp)] = offset

    def high_watermark(self, partition: TopicPartition) -> int | None:
        return self._bus.size(partition[0])

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {tp: self._bus._committed.get((self._group, tp)) for tp in partitions}

    def close(self) -> None:
        if self._on_revoke is not None:
            self._on_revoke([(t, 0) for t in sorted(self._topics)], False)
            self._on_revoke = None
