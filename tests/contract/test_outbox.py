"""The flag store's outbox, run over every backend (in-memory, real Redis, Redis Cluster).

What the containment worker relies on: the events of an applied change wait in the
outbox, exactly as the change gave them, written with it or not at all; a duplicate
or a conflict adds none; they come back in the order their changes were applied,
from any store on the namespace (a restarted worker); ``delivered`` removes them;
and the outbox keeps at most its limit, dropping the oldest and saying which.
"""

from __future__ import annotations

import pytest

from riskstream.adapters.memory.flags import InMemoryFlagStore
from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.core.outbox import MAX_OUTBOX, OutboxEvent
from riskstream.core.routing import FlagChange, RoutingFlag, change_id
from riskstream.errors import ContainmentError
from riskstream.ports import ApplyResult, Outbox

Store = InMemoryFlagStore | RedisFlagStore

T0 = 1_795_687_200.0


def _event(event_id: str, model_id: str, body: str = "{}") -> OutboxEvent:
    return OutboxEvent(
        event_id, "routing-changes", model_id.encode(), body.encode(),
        (("ce_id", event_id.encode()), ("ce_subject", model_id.encode())),
    )  # fmt: skip


def _apply(store: Store, model_id: str, tag: str, *events: OutboxEvent) -> ApplyResult:
    """One change on the model's flag as it is now, carrying ``events`` (default: one
    routing event named after the change)."""
    current = store.get(model_id)
    expected = 0 if current is None else current.revision
    cid = change_id(tag, expected)
    flag = RoutingFlag(model_id, f"v{expected + 1}", revision=expected + 1, updated_at=T0)
    change = FlagChange(cid, expected, flag, events or (_event(cid, model_id, f'"{tag}"'),))
    return store.apply(change, at=T0 + expected)


def _reopened(store: Store) -> Store:
    """Another store on the same data (a restarted worker); the memory store is its own."""
    if isinstance(store, RedisFlagStore):
        return RedisFlagStore(store._client, store.namespace)
    return store


def test_an_empty_outbox(flag_store: Store) -> None:
    assert flag_store.outbox() == Outbox([], 0)
    assert flag_store.outbox_limit == MAX_OUTBOX
    flag_store.delivered([])
    flag_store.delivered(["never-there"])  # ignored


def test_an_applied_change_leaves_its_events_exactly_as_given_in_order(
    flag_store: Store,
) -> None:
    body = '{"model_id": "a", "note": "\\u00e9t\\u00e9 \\u2192 ok"}'
    first = _event("e-1", "a", body)
    second = OutboxEvent("e-2", "incidents", None, b'{"incident_id": "x"}')
    assert _apply(flag_store, "a", "one", first, second).outcome == "applied"
    assert _apply(flag_store, "b", "two").outcome == "applied"
    assert _apply(flag_store, "a", "three").outcome == "applied"

    waiting = _reopened(flag_store).outbox()

    assert waiting.size == 4
    assert waiting.events[:2] == [first, second]  # bytes for bytes, the change's order
    assert [e.event_id for e in waiting.events[2:]] == [change_id("two", 0), change_id("three", 1)]
    assert flag_store.outbox(limit=1) == Outbox([first], 4)


def test_a_duplicate_or_a_conflict_adds_no_event(flag_store: Store) -> None:
    flag = RoutingFlag("a", "v1", revision=1, updated_at=T0)
    change = FlagChange("c-1", 0, flag, (_event("c-1", "a"),))
    assert flag_store.apply(change, T0).outcome == "applied"
    flag_store.delivered(["c-1"])
    again = FlagChange("c-1", 0, flag, (_event("c-1", "a", '"other"'),))
    assert flag_store.apply(again, T0).outcome == "duplicate"
    stale = FlagChange("c-2", 0, flag, (_event("c-2", "a"),))
    assert flag_store.apply(stale, T0).outcome == "conflict"
    assert flag_store.outbox() == Outbox([], 0)


def test_delivered_events_leave_and_the_rest_keep_their_order(flag_store: Store) -> None:
    for n in range(5):
        _apply(flag_store, f"m{n}", f"t{n}")
    ids = [e.event_id for e in flag_store.outbox().events]

    _reopened(flag_store).delivered([ids[1], ids[3], "unknown"])

    assert [e.event_id for e in flag_store.outbox().events] == [ids[0], ids[2], ids[4]]
    flag_store.delivered(ids)
    assert flag_store.outbox() == Outbox([], 0)


def test_a_full_outbox_drops_the_oldest_and_names_them(flag_store: Store) -> None:
    flag_store.outbox_limit = 3
    results = [_apply(flag_store, "a", f"t{n}") for n in range(5)]
    assert [r.dropped for r in results[:3]] == [(), (), ()]
    assert results[3].dropped == (change_id("t0", 0),)
    assert results[4].dropped == (change_id("t1", 1),)
    waiting = flag_store.outbox()
    assert waiting.size == 3
    assert [e.event_id for e in waiting.events] == [change_id(f"t{n}", n) for n in (2, 3, 4)]
    assert len(flag_store.audit()) == 5  # the changes themselves are all recorded


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        ((_event("x", "a"), _event("x", "a")), "distinct, non-empty ids"),
        ((_event("", "a"),), "distinct, non-empty ids"),
        ((OutboxEvent("x", "t", None, b"\xff"),), "no UTF-8"),
        (tuple(_event(f"x{n}", "a") for n in range(17)), "at most 16"),
    ],
)
def test_events_a_store_cannot_keep_refuse_the_whole_change(
    flag_store: Store, events: tuple[OutboxEvent, ...], problem: str
) -> None:
    flag = RoutingFlag("a", "v1", revision=1, updated_at=T0)
    with pytest.raises(ContainmentError, match=problem):
        flag_store.apply(FlagChange("c-1", 0, flag, events), T0)
    assert flag_store.get("a") is None and flag_store.audit() == []
    assert flag_store.outbox() == Outbox([], 0)
