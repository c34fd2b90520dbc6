"""Suspected changes that arrive after their incident: listed once they come (backfills).

A processor lists, on each incident it raises, the change events it has read by
then (:func:`riskstream.core.enrichment.enrich`).  But partitions have no order
between them: reading a backlog, it may raise an incident from one batch while the
deploy that caused it waits, unread, in a later one.  Whether a suspect is listed
must not depend on how a backlog was read.  So the containment worker, which keeps
the incident records, checks both ways round:

- a change event arrives: every unresolved incident on its subject or downstream of
  it, whose window (the look-back before the onset, up to detection) holds the
  change's time and which does not list it yet, is updated;
- an incident arrives: the changes in the shared change log that its window holds
  and that it does not list yet are added (the worker read them before the processor did).

An update goes through the normal path: an ``incident.updated`` event on the
incidents topic, which the worker folds into the record (suspects merged by event
id, never dropped: :func:`riskstream.core.incident_records.merge_suspects`) and every
subscriber reads.  It is made only when the record lacks the change, so a
redelivered change event or a restarted worker publishes nothing new; a crash
between publishing and recording publishes the same update again, which folds
into the same record.  Resolved incidents are left as they were closed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from riskstream.codec import encode_cloudevent
from riskstream.core.enrichment import Enrichment, downstream_of, suspected_changes, upstream_of
from riskstream.core.incident_records import IncidentRecord, merge_suspects
from riskstream.core.incidents import INCIDENT_UPDATED
from riskstream.core.timeutil import parse_time
from riskstream.ports import ChangeLog, IncidentStore, Producer

__all__ = ["SuspectBackfill", "publisher"]

log = logging.getLogger(__name__)


def publisher(producer: Producer, topic: str) -> Callable[[dict[str, Any]], None]:
    """Publish an incident update on the incidents topic, as the processor does."""

    def publish(incident: dict[str, Any]) -> None:
        headers, value = encode_cloudevent(
            INCIDENT_UPDATED,
            str(incident["incident_id"]),
            str(incident["detected_at"]),
            str(incident["subject"]),
            incident,
        )
        producer.produce(topic, value, str(incident["subject"]).encode(), headers)
        producer.flush()

    return publish


class SuspectBackfill:
    """Lists late change events on the incidents they belong to (the module says how)."""

    def __init__(
        self,
        enrichment: Enrichment,
        changes: ChangeLog,
        incidents: IncidentStore,
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self._enrichment = enrichment
        self._changes = changes
        self._incidents = incidents
        self._publish = publish

    def on_change(self, change: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A change event: the incidents raised before it came that must list it, updated.

        Returns the updates published."""
        self._changes.add(change)
        subject = str(change.get("subject"))
        at = parse_time(str(change["time"]))
        subjects = [subject, *downstream_of(subject, self._enrichment.lineage)]
        # Detected at or after the change: an incident detected before it cannot list it.
        found = self._incidents.near(subjects, at, math.inf)
        return [u for r in found if (u := self._update(r, [change])) is not None]

    def on_incident(self, incident: Mapping[str, Any]) -> list[dict[str, Any]]:
        """An incident event (once recorded): the changes already read that it lacks, added."""
        record = self._incidents.get(str(incident["incident_id"]))
        if record is None or record.status == "resolved":
            return []
        window = self._window(record.incident)
        if window is None:
            return []
        subjects, start, end = window
        update = self._update(record, self._changes.between(subjects, start, end))
        return [] if update is None else [update]

    def _window(self, incident: Mapping[str, Any]) -> tuple[list[str], float, float] | None:
        """The subjects and the time span whose changes the incident lists."""
        if not incident.get("onset_at") or not incident.get("detected_at"):
            return None
        subject = str(incident.get("subject"))
        onset = parse_time(str(incident["onset_at"]))
        subjects = [subject, *upstream_of(subject, self._enrichment.lineage)]
        return (
            subjects,
            onset - self._enrichment.lookback_s,
            parse_time(str(incident["detected_at"])),
        )

    def _update(
        self, record: IncidentRecord, changes: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any] | None:
        """Publish ``record``'s incident with the ``changes`` it should list and lacks."""
        if record.status == "resolved":
            return None
        incident = record.incident
        window = self._window(incident)
        if window is None:
            return None
        subjects, start, end = window
        onset = start + self._enrichment.lookback_s
        listed = {str(c.get("event_id")) for c in incident.get("suspected_changes") or ()}
        fresh = [c for c in changes if str(c.get("event_id")) not in listed]
        late = suspected_changes(fresh, subjects, onset, end, self._enrichment.lookback_s)
        if not late:
            return None
        merged, _ = merge_suspects(incident.get("suspected_changes") or [], late)
        update = {**incident, "suspected_changes": merged}
        self._publish(update)
        log.info(
            "incident %s: listed %d change event(s) read after it was raised: %s",
            record.incident_id, len(late), ", ".join(str(c.get("event_id")) for c in late),
        )  # fmt: skip
        return update
