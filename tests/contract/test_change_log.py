"""The ChangeLog contract: what one processor records, every processor finds."""

from __future__ import annotations

import uuid

import pytest

from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.redis.changes import RedisChangeLog
from riskstream.core.timeutil import format_time, parse_time

Log = InMemoryChangeLog | RedisChangeLog
T0 = parse_time("2026-11-26T10:00:00Z")


def _change(n: int, subject: str, minutes: float) -> dict[str, object]:
    return {"event_id": f"c{n}", "time": format_time(T0 + minutes * 60), "kind": "deploy",
            "subject": subject, "version": f"v{n}"}  # fmt: skip


def test_changes_recorded_by_one_are_found_by_the_other(change_logs: tuple[Log, Log]) -> None:
    writer, reader = change_logs
    writer.add(_change(1, "bot", 0))
    writer.add(_change(2, "ingest", 10))
    reader.add(_change(3, "bot", 20))
    reader.add(_change(3, "bot", 20))  # read twice (a redelivery): kept once
    found = reader.between(["bot", "ingest"], T0, T0 + 15 * 60)
    assert [c["event_id"] for c in found] == ["c1", "c2"]
    assert [c["event_id"] for c in writer.between(["bot"], T0, T0 + 3600)] == ["c1", "c3"]
    assert writer.between(["other"], T0, T0 + 3600) == []


def test_changes_older_than_the_retention_are_dropped(change_logs: tuple[Log, Log]) -> None:
    writer, reader = change_logs
    writer.add(_change(1, "bot", 0))
    writer.add(_change(2, "bot", 30))
    writer.add(_change(3, "bot", 61))  # retention 3600 s: c1 is now too old
    assert [c["event_id"] for c in reader.between(["bot"], 0, 2 * T0)] == ["c2", "c3"]


def test_a_flood_of_change_events_keeps_the_newest(change_logs: tuple[Log, Log]) -> None:
    """The log was bounded by time alone: a flood of change events filled it, and each
    incident's enrichment read them all."""
    writer, reader = change_logs
    writer._max = reader._max = 3  # MAX_CHANGES (100,000) in production
    for n in range(6):
        writer.add(_change(n, "bot", n))
    assert [c["event_id"] for c in reader.between(["bot"], 0, 2 * T0)] == ["c3", "c4", "c5"]


def test_only_what_suspects_show_is_kept_of_a_change(change_logs: tuple[Log, Log]) -> None:
    """The schema lets a producer add any field, and the log kept them all: a flood of
    change events with 60 KB of extras each (100,000 kept) put 6 GB in Redis, and every
    incident's enrichment read them again."""
    writer, reader = change_logs
    writer.add({**_change(1, "bot", 0), "actor": "ci", "padding": "x" * 60_000, "n": None})
    (found,) = reader.between(["bot"], T0 - 60, T0 + 60)
    assert found == {"event_id": "c1", "time": format_time(T0), "kind": "deploy",
                     "subject": "bot", "version": "v1", "actor": "ci"}  # fmt: skip


def _twin(log: Log) -> Log:
    """A new, empty log of ``log``'s kind (on its Redis, under another namespace)."""
    if isinstance(log, InMemoryChangeLog):
        return InMemoryChangeLog(3600.0)
    return RedisChangeLog(log._client, f"twin-{uuid.uuid4().hex[:8]}", 3600.0)


def test_adding_many_keeps_what_adding_each_in_turn_keeps(change_logs: tuple[Log, Log]) -> None:
    """A processor stores each batch's change events with one call (a flood of them, one
    call each, went at ~1.3k events/s and held up every other topic); what is kept must
    not depend on how they were grouped: redeliveries, order, retention, the cap."""
    writer, reader = change_logs
    one_by_one = _twin(writer)
    writer._max = one_by_one._max = 3
    batches: list[list[dict[str, object]]] = [
        [_change(1, "bot", 0), _change(2, "ingest", 10), _change(1, "bot", 0)],
        [_change(3, "bot", 5), {**_change(4, "bot", 20), "padding": "x" * 1000}],
        [],
        # c5 is 60 minutes past c1, c0 and c3: they go; c2 (10) stays, but four are left:
        # the cap keeps the newest three.
        [_change(2, "ingest", 10), _change(5, "bot", 70), _change(6, "ingest", 65),
         _change(0, "bot", 1)],
    ]  # fmt: skip
    for batch in batches:
        writer.add_many(batch)
        for change in batch:
            one_by_one.add(change)
        every = ["bot", "ingest"]
        assert reader.between(every, 0, 2 * T0) == one_by_one.between(every, 0, 2 * T0)
    found = reader.between(["bot", "ingest"], 0, 2 * T0)
    assert [c["event_id"] for c in found] == ["c4", "c6", "c5"]
    assert "padding" not in found[0]
    assert [c["event_id"] for c in reader.between(["ingest"], T0, T0 + 3600 * 2)] == ["c6"]


def test_adding_many_with_one_unreadable_time_keeps_none(change_logs: tuple[Log, Log]) -> None:
    """The processor then adds them one by one to dead-letter just the bad one."""
    writer, reader = change_logs
    with pytest.raises((ValueError, KeyError)):
        writer.add_many([_change(1, "bot", 0), {**_change(2, "bot", 1), "time": "yesterday"}])
    assert reader.between(["bot"], 0, 2 * T0) == []
    writer.add_many([_change(1, "bot", 0)])
    assert [c["event_id"] for c in reader.between(["bot"], 0, 2 * T0)] == ["c1"]
