"""The reference :class:`~riskstream.ports.StateStore`: plain dicts behind one lock.

It defines the semantics the Redis store must match (the contract suite in
``tests/contract`` runs over both), and it backs the embedded demo and unit tests,
where state only has to outlive a detector, not the process.

Semantics every store follows:

- :meth:`~InMemoryStateStore.claim` bumps the partition's epoch (1 on first claim)
  and returns it with everything saved so far.
- :meth:`~InMemoryStateStore.save` is all-or-nothing.  It is fenced unless
  ``epoch`` equals the current epoch, including on a never-claimed partition.
- Snapshots are incremental (``changed`` upserts, ``deleted`` removes, other keys
  stay); the offset and the counters are replaced whole, because they are the
  running totals *as of* that offset and a stale counter must not linger.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from riskstream.errors import FencedError
from riskstream.ports import PartitionState, StateStore, TopicPartition

__all__ = ["InMemoryStateStore", "check_save_arguments", "fenced_error"]


def check_save_arguments(
    offset: int, changed: Mapping[str, bytes], deleted: Iterable[str]
) -> tuple[str, ...]:
    """Reject caller bugs before anything is written; return ``deleted`` as a tuple.

    A key both changed and deleted in one save has no single right answer (which
    came last?), so both stores refuse it rather than silently pick one.
    """
    if offset < 0:
        raise ValueError(f"offset must be >= 0 (the next offset to consume), got {offset}")
    deleted = tuple(deleted)
    both = [key for key in deleted if key in changed]  # (not set(changed): 20,000 keys)
    if both:
        raise ValueError(
            f"keys both changed and deleted in one save: {sorted(both)[:5]}; "
            "put each key in at most one of `changed` and `deleted`"
        )
    return deleted


def fenced_error(
    scope: str, partition: TopicPartition, epoch: int, current: int | None
) -> FencedError:
    """The one wording of a fenced save, so operators see the same text from any store."""
    topic, number = partition
    if current is None:
        now = "the partition was never claimed; claim it first and save with its epoch"
    else:
        now = (
            f"the current epoch is {current}: another consumer claimed the partition "
            "since, so this instance must stop processing it"
        )
    return FencedError(
        f"save refused for scope {scope!r}, partition {topic}[{number}] (nothing was "
        f"written): it carries epoch {epoch} but {now}."
    )


def _slot_key(scope: str, partition: TopicPartition) -> tuple[str, str, int]:
    return scope, partition[0], partition[1]


@dataclass
class _Slot:
    epoch: int = 0  # claims so far; 0 until the first
    offset: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, bytes] = field(default_factory=dict)


class InMemoryStateStore:
    """Thread-safe, process-local state store; everything is lost when it is dropped."""

    forkable = False  # a forked process's saves would land in its own copy

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str, int], _Slot] = {}

    def claim(self, scope: str, partition: TopicPartition) -> PartitionState:
        return self._read(scope, partition, claim=True)

    def peek(self, scope: str, partition: TopicPartition) -> PartitionState:
        return self._read(scope, partition, claim=False)

    def _read(self, scope: str, partition: TopicPartition, *, claim: bool) -> PartitionState:
        with self._lock:
            slot = self._slots.get(_slot_key(scope, partition)) or _Slot()
            if claim:
                self._slots[_slot_key(scope, partition)] = slot
                slot.epoch += 1
            # Copies: the caller must not see (or cause) later mutations.
            return PartitionState(
                epoch=slot.epoch,
                offset=slot.offset,
                counters=dict(slot.counters),
                snapshots=dict(slot.snapshots),
            )

    def saved_elsewhere(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        unreplicated: bool = False,
    ) -> None:
        raise TypeError(
            "InMemoryStateStore is not shared with forked processes (forkable is False): "
            "save here instead"
        )

    def save(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        counters: Mapping[str, int],
        changed: Mapping[str, bytes],
        deleted: Iterable[str] = (),
    ) -> None:
        deleted = check_save_arguments(offset, changed, deleted)
        # Copy before taking the lock: a conversion error must not leave half a save.
        new_counters = {name: int(value) for name, value in counters.items()}
        new_snapshots = {key: bytes(value) for key, value in changed.items()}
        with self._lock:
            slot = self._slots.get(_slot_key(scope, partition))
            if slot is None or epoch != slot.epoch:
                raise fenced_error(scope, partition, epoch, slot.epoch if slot else None)
            slot.snapshots.update(new_snapshots)
            for key in deleted:
                slot.snapshots.pop(key, None)
            slot.offset = offset
            slot.counters = new_counters

    def partitions(self, scope: str) -> list[TopicPartition]:
        with self._lock:
            return sorted((t, p) for s, t, p in self._slots if s == scope)

    def state_bytes(self, scope: str, partition: TopicPartition) -> int:
        """Payload size of the partition's snapshots (keys as UTF-8 plus values)."""
        with self._lock:
            slot = self._slots.get(_slot_key(scope, partition))
            if slot is None:
                return 0
            return sum(len(k.encode()) + len(v) for k, v in slot.snapshots.items())

    def close(self) -> None:
        return None


if TYPE_CHECKING:  # mypy proves the class implements the port

    def _implements_port(store: InMemoryStateStore) -> StateStore:
        return store
