"""Change events read after their incident are listed on it, once (issue 15, item 4)."""

from __future__ import annotations

from typing import Any

from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.incidents import InMemoryIncidentStore
from riskstream.core.enrichment import Enrichment
from riskstream.core.incident_records import record_incident, resolve
from riskstream.core.timeutil import format_time, parse_time
from riskstream.services.backfill import SuspectBackfill

T0 = parse_time("2026-11-26T13:00:00Z")
LINEAGE = {"ingest/line-2": ["line-2/temp-03"], "line-2/temp-03": ["anomaly-line-2"]}


def incident(
    incident_id: str = "inc-1", subject: str = "anomaly-line-2", **extra: Any
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "type": "model-output-flat",
        "severity": "critical",
        "status": "open",
        "subject": subject,
        "monitor": "model-output-flat",
        "stream_key": subject,
        "onset_at": format_time(T0),
        "detected_at": format_time(T0 + 600),
        "suspected_changes": [],
        **extra,
    }


def change(event_id: str, subject: str, minutes: float, kind: str = "deploy") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "time": format_time(T0 + minutes * 60),
        "kind": kind,
        "subject": subject,
        "version": "v2",
        "actor": "ci",
        "description": "a change",
    }


class Harness:
    """The backfill with the worker's fold: an update is recorded as containment does."""

    def __init__(self) -> None:
        self.store = InMemoryIncidentStore()
        self.published: list[dict[str, Any]] = []
        self.backfill = SuspectBackfill(
            Enrichment(lineage=LINEAGE, lookback_s=3600.0),
            InMemoryChangeLog(7200.0, clock=lambda: T0 + 86_400),
            self.store,
            self.publish,
        )

    def publish(self, update: dict[str, Any]) -> None:
        self.published.append(update)
        self.receive(update)

    def receive(self, data: dict[str, Any]) -> None:
        """The incidents topic's path: fold into the record, then check its suspects."""
        self.store.update(str(data["incident_id"]), lambda r: record_incident(r, data, T0 + 900))
        self.backfill.on_incident(data)

    def suspects(self, incident_id: str = "inc-1") -> list[str]:
        record = self.store.get(incident_id)
        assert record is not None
        return [c["event_id"] for c in record.incident.get("suspected_changes") or ()]


def test_a_change_read_after_its_incident_is_listed_once() -> None:
    h = Harness()
    h.receive(incident())
    # written to the change topic after the incident was raised, dated before its onset
    updates = h.backfill.on_change(change("pipe", "ingest/line-2", -15, "data-pipeline"))
    assert len(updates) == 1 and len(h.published) == 1
    assert h.suspects() == ["pipe"]
    assert updates[0]["suspected_changes"][0]["lead_seconds"] == 900.0
    # redelivered (a restarted worker reads it again): nothing new, listed once
    assert h.backfill.on_change(change("pipe", "ingest/line-2", -15, "data-pipeline")) == []
    assert h.suspects() == ["pipe"] and len(h.published) == 1
    record = h.store.get("inc-1")
    assert record is not None
    late = [e for e in record.timeline if e.key == "suspect:pipe"]
    assert len(late) == 1 and "listed as it arrived" in late[0].detail


def test_a_change_read_before_its_incident_is_added_when_the_incident_comes() -> None:
    h = Harness()
    assert h.backfill.on_change(change("d1", "anomaly-line-2", -5)) == []  # no incident yet
    h.receive(incident())  # raised by a processor that had not read d1
    assert h.suspects() == ["d1"] and len(h.published) == 1


def test_the_detectors_next_update_does_not_drop_a_backfilled_suspect() -> None:
    h = Harness()
    h.receive(incident())
    h.backfill.on_change(change("d1", "anomaly-line-2", -5))
    grown = incident(evidence={"episode": {"alarms": 2}})  # made from a log without d1
    h.store.update("inc-1", lambda r: record_incident(r, grown, T0 + 1000))
    assert h.suspects() == ["d1"]


def test_only_changes_in_the_incidents_window_and_lineage_are_listed() -> None:
    h = Harness()
    h.receive(incident())
    assert h.backfill.on_change(change("far", "anomaly-line-2", -61)) == []  # before look-back
    assert h.backfill.on_change(change("late", "anomaly-line-2", 11)) == []  # after detection
    assert h.backfill.on_change(change("other", "line-1/temp-01", -5)) == []  # not upstream
    assert h.suspects() == []
    h.backfill.on_change(change("near", "anomaly-line-2", -1))
    h.backfill.on_change(change("up", "line-2/temp-03", -30, "config"))
    assert h.suspects() == ["near", "up"]  # nearest the onset first


def test_resolved_incidents_are_left_as_they_were_closed() -> None:
    h = Harness()
    h.receive(incident())
    h.store.update("inc-1", lambda r: None if r is None else resolve(r, "ops", T0 + 700, ""))
    assert h.backfill.on_change(change("d1", "anomaly-line-2", -5)) == []
    assert h.suspects() == []
