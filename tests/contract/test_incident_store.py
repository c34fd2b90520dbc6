"""The IncidentStore contract over every backend, and audit events in the flag store."""

from __future__ import annotations

import threading

from riskstream.adapters.memory.flags import InMemoryFlagStore
from riskstream.adapters.memory.incidents import InMemoryIncidentStore
from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.core.incident_records import (
    IncidentRecord,
    acknowledge,
    note_action,
    record_incident,
)
from riskstream.core.routing import FlagChange, RoutingFlag

Store = InMemoryIncidentStore | RedisIncidentStore
T0 = 1_795_687_200.0


def _incident(incident_id: str, detected: str = "2026-11-26T10:05:00.000Z") -> dict[str, object]:
    return {
        "incident_id": incident_id,
        "type": "sensor-drift",
        "severity": "warning",
        "status": "open",
        "subject": "line-2/temp-03",
        "monitor": "sensor-drift",
        "stream_key": "line-2/temp-03",
        "detected_at": detected,
        "onset_at": "2026-11-26T10:00:00.000Z",
        "evidence": {"detector": "page-hinkley", "before": {"mean": 1.0}, "after": {"mean": 2.0}},
    }


def test_a_record_round_trips_and_lists_newest_first(incident_store: Store) -> None:
    for n, minute in enumerate(("05", "15", "10")):
        data = _incident(f"i{n}", f"2026-11-26T10:{minute}:00.000Z")
        incident_store.update(f"i{n}", lambda r, d=data: record_incident(r, d, T0))
    got = incident_store.get("i1")
    assert got is not None and got.incident["detected_at"] == "2026-11-26T10:15:00.000Z"
    assert [k.kind for k in got.timeline] == ["onset", "detected"]
    assert [r.incident_id for r in incident_store.recent()] == ["i1", "i2", "i0"]
    assert [r.incident_id for r in incident_store.recent(2)] == ["i1", "i2"]
    assert incident_store.get("nope") is None


def test_recent_pages_after_an_incident_reading_only_the_page(incident_store: Store) -> None:
    """A list used to read 10 x its page and find its cursor among them; now a page is
    read after its cursor, however deep (ties in time: the greater id first)."""
    for n, minute in enumerate(("05", "15", "10", "10", "01")):
        data = _incident(f"i{n}", f"2026-11-26T10:{minute}:00.000Z")
        incident_store.update(f"i{n}", lambda r, d=data: record_incident(r, d, T0))
    order = ["i1", "i3", "i2", "i0", "i4"]
    assert [r.incident_id for r in incident_store.recent()] == order
    for after in order:
        page = incident_store.recent(2, after)
        place = order.index(after)
        assert [r.incident_id for r in page] == order[place + 1 : place + 3], after
    assert incident_store.recent(2, "nope") == []
    assert incident_store.recent(0, "i1") == []


def test_near_finds_a_subjects_incidents_within_a_time_range(incident_store: Store) -> None:
    """What correlating a new incident reads instead of the latest records (issue 12)."""
    for n, (subject, minute) in enumerate((("a", "05"), ("a", "50"), ("b", "10"), ("c", "12"))):
        data = {**_incident(f"n{n}", f"2026-11-26T10:{minute}:00.000Z"), "subject": subject}
        incident_store.update(f"n{n}", lambda r, d=data: record_incident(r, d, T0))
    since = incident_store.get("n0").detected_at  # type: ignore[union-attr]
    found = incident_store.near(["a", "b", "nobody"], since, since + 10 * 60)
    assert sorted(r.incident_id for r in found) == ["n0", "n2"]
    assert incident_store.near([], since, since + 3600) == []


def test_update_returning_none_writes_nothing(incident_store: Store) -> None:
    assert incident_store.update("i9", lambda r: None) is None
    assert incident_store.get("i9") is None and incident_store.recent() == []


def test_folds_are_idempotent_across_redelivery(incident_store: Store) -> None:
    data = _incident("i1")
    for _ in range(2):
        incident_store.update("i1", lambda r: record_incident(r, data, T0))
        incident_store.update(
            "i1", lambda r: note_action(r, T0 + 1, "rs", "rollback", "applied", "c1")
        )
    record = incident_store.get("i1")
    assert record is not None
    assert [e.kind for e in record.timeline] == ["onset", "detected", "action"]
    assert record.status == "contained"


def test_concurrent_updates_all_land(incident_store: Store) -> None:
    incident_store.update("i1", lambda r: record_incident(r, _incident("i1"), T0))

    def act(n: int) -> None:
        incident_store.update(
            "i1",
            lambda r: (
                None if r is None else note_action(r, T0 + n, "rs", f"a{n}", "applied", f"k{n}")
            ),
        )

    threads = [threading.Thread(target=act, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acker = threading.Thread(
        target=lambda: incident_store.update(
            "i1", lambda r: None if r is None else acknowledge(r, "ana", T0 + 9, "")
        )
    )
    acker.start()
    acker.join()
    record = incident_store.get("i1")
    assert isinstance(record, IncidentRecord)
    assert sum(e.kind == "action" for e in record.timeline) == 8
    assert record.acknowledged_by == "ana"


def test_audit_events_join_the_hash_chain(
    flag_store: InMemoryFlagStore | RedisFlagStore,
) -> None:
    flag = RoutingFlag(model_id="m", active_version="v1", revision=1, updated_at=T0)
    assert flag_store.apply(FlagChange("c1", 0, flag), T0).outcome == "applied"
    event: dict[str, object] = {"event": "incident.acknowledged", "incident_id": "i1"}
    assert flag_store.record_event("i1:ack", "m", "ana", T0 + 1, event) is True
    assert flag_store.record_event("i1:ack", "m", "ana", T0 + 2, event) is False
    entries = flag_store.audit()
    assert [(e.seq, e.actor, e.before) for e in entries][1] == (2, "ana", None)
    assert entries[1].after == event and entries[1].prev_hash == entries[0].hash
    assert flag_store.verify_audit().ok and flag_store.verify_audit().length == 2
    assert flag_store.get("m") == flag  # the flag itself is untouched


def test_near_with_a_limit_gives_each_subjects_earliest(incident_store: Store) -> None:
    """Correlation reads a bounded number per subject: a flood on one subject must not
    make each new incident read all the others."""
    for n in range(6):
        for subject in ("a", "b"):
            data = {
                **_incident(f"{subject}{5 - n}", f"2026-11-26T10:{10 + n}:00.000Z"),
                "subject": subject,
            }
            incident_store.update(data["incident_id"], lambda r, d=data: record_incident(r, d, T0))
    since = T0 - 86_400
    found = incident_store.near(["a", "b"], since, since + 2 * 86_400, limit=2)
    assert sorted(r.incident_id for r in found) == ["a4", "a5", "b4", "b5"]  # detected first
    assert len(incident_store.near(["a"], since, since + 2 * 86_400)) == 6
