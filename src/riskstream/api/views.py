"""What the API sends: the service's records as JSON, times as RFC 3339.

Stores keep epoch seconds; people and other programs read RFC 3339, the form
every event carries.  Audit entries are the exception: they go out exactly as
hashed (``at`` in epoch seconds), so a client can verify the chain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from riskstream.core.approvals import PendingAction
from riskstream.core.audit import AuditEntry, entry_to_data
from riskstream.core.incident_records import IncidentRecord, TimelineEntry, headline
from riskstream.core.monitors import MonitorSpec
from riskstream.core.reports.facts import ticket_links
from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import format_time

__all__ = ["action_view", "audit_view", "flag_view", "incident_view", "monitor_view", "summary"]


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else format_time(epoch)


def summary(record: IncidentRecord) -> dict[str, Any]:
    """One row of the incidents list."""
    incident = record.incident
    return {
        "incident_id": record.incident_id,
        "headline": headline(incident),
        "severity": record.severity,
        "type": incident.get("type"),
        "subject": record.subject,
        "monitor": incident.get("monitor"),
        "stream_key": incident.get("stream_key"),
        "status": record.status,
        "acknowledged_by": record.acknowledged_by,
        "detected_at": incident.get("detected_at"),
        "onset_at": incident.get("onset_at"),
    }


def _entry(entry: TimelineEntry) -> dict[str, Any]:
    return {"at": format_time(entry.at), "kind": entry.kind, "actor": entry.actor,
            "detail": entry.detail}  # fmt: skip


def incident_view(
    record: IncidentRecord,
    actions: list[PendingAction],
    story: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole record: the incident's data (evidence and all), the timeline, its actions,
    and the story of its group, root first (``null`` when it stands alone)."""
    return {
        **summary(record),
        "acknowledged_at": _time(record.acknowledged_at),
        "resolved_by": record.resolved_by,
        "resolved_at": _time(record.resolved_at),
        "received_at": format_time(record.received_at),
        "incident": dict(record.incident),
        "timeline": [_entry(e) for e in record.timeline],
        "actions": [action_view(a) for a in actions],
        "tickets": ticket_links(record),
        "story": dict(story) if story else None,
    }


def action_view(pending: PendingAction) -> dict[str, Any]:
    data = pending.to_data()
    for key in ("requested_at", "expires_at", "decided_at"):
        data[key] = _time(data[key])
    return data


def flag_view(flag: RoutingFlag) -> dict[str, Any]:
    return flag.to_data()


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {**entry_to_data(entry), "time": format_time(entry.at)}


def monitor_view(spec: MonitorSpec) -> dict[str, Any]:
    """A monitor as configured; ``subjects`` is null where it watches every subject."""
    subjects = spec.where.get(spec.subject)
    value = spec.value
    return {
        "name": spec.name,
        "kind": spec.reads,
        "detector": spec.detector,
        "params": dict(spec.params),
        "value": {"path": value.path, "above": value.above, "equals": value.equals},
        "key": list(spec.key),
        "subject_field": spec.subject,
        "subjects": None if subjects is None else list(subjects),
        "where": {path: list(values) for path, values in spec.where.items()},
        "warmup": spec.settings.warmup,
        "severity": spec.severity,
        "incident_type": spec.incident_type,
    }
