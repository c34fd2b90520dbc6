"""What an operator does to saved detector state: reset a monitor, or one stream.

A monitor whose definition changed restarts its streams by itself (unless
``processor.on_monitor_change: refuse``), and a stream held after a failure stays
held until someone looks: this is how they are released.  It works on the state
store alone, partition by partition, with the store's own fenced, atomic save —
so run it with the processors stopped: claiming a partition fences its running
owner, which then stops processing that partition until it is restarted.
"""

from __future__ import annotations

from dataclasses import dataclass

from riskstream.core.state_keys import StateKind
from riskstream.core.state_keys import parse as parse_state_key
from riskstream.ports import StateStore, TopicPartition

__all__ = ["ResetResult", "held_streams", "reset_state"]


@dataclass(frozen=True, slots=True)
class ResetResult:
    partition: TopicPartition
    deleted: int  # state keys deleted


def _belongs(state_key: str, monitor: str, stream: str | None) -> bool:
    name, kind, key = parse_state_key(state_key)
    if name != monitor:
        return False
    if stream is None:
        return True
    return key == stream and kind not in (StateKind.EPISODE, StateKind.SPEC)


def reset_state(
    store: StateStore, scope: str, monitor: str, stream: str | None = None
) -> list[ResetResult]:
    """Delete ``monitor``'s saved state (or one stream's) in every partition of ``scope``;
    its streams then start afresh, released from any hold.  Partitions holding none of
    it are not touched (nor claimed)."""
    results: list[ResetResult] = []
    for tp in store.partitions(scope):
        if not any(_belongs(k, monitor, stream) for k in store.peek(scope, tp).snapshots):
            continue
        saved = store.claim(scope, tp)
        keys = [k for k in saved.snapshots if _belongs(k, monitor, stream)]
        if keys and saved.offset is not None:
            store.save(scope, tp, saved.epoch, saved.offset, saved.counters, {}, keys)
        results.append(ResetResult(tp, len(keys)))
    return results


def held_streams(store: StateStore, scope: str) -> list[tuple[TopicPartition, str, str, bytes]]:
    """Every quarantined stream: (partition, monitor, stream key, its record as saved)."""
    out = []
    for tp in store.partitions(scope):
        for state_key, raw in store.peek(scope, tp).snapshots.items():
            name, kind, key = parse_state_key(state_key)
            if kind is StateKind.HELD:
                out.append((tp, name, key, raw))
    return out
