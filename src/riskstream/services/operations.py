"""What a person does about incidents, in one place for the API, the console and the CLI.

Every write names who did it: acknowledging and resolving go on the incident's
timeline and into the hash-chained audit trail; approvals and manual flag
changes go through the containment service, which audits them the same way.
Resolving also publishes the incident again with ``status: resolved``, so the
containment worker reverts what it did and notification receivers close the page.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from riskstream.codec import encode_cloudevent
from riskstream.core.approvals import PendingAction
from riskstream.core.audit import AuditEntry, AuditReport
from riskstream.core.incident_records import (
    IncidentFilter,
    IncidentRecord,
    acknowledge,
    resolve,
)
from riskstream.core.incidents import INCIDENT_RESOLVED
from riskstream.core.reports import render
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.routing import MODES, RoutingFlag
from riskstream.core.timeutil import format_time
from riskstream.errors import ContainmentError, InputError, NotFoundError
from riskstream.ports import IncidentStore, Producer
from riskstream.services.containment import ContainmentService

__all__ = ["ACTION_STATUSES", "INCIDENT_RESOLVED", "OperatorService"]

SCANNED = 2000  # the latest incidents a filtered list looks through, at least

ACTION_STATUSES = ("pending", "approved", "rejected", "expired", "applied")


class OperatorService:
    """The acts a person may do (list, acknowledge, resolve, approve, set a flag, report),
    each recorded with who did it; the API, the console and the CLI all go through it."""

    def __init__(
        self,
        containment: ContainmentService,
        incidents: IncidentStore,
        producer: Producer,
        incidents_topic: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._containment = containment
        self._incidents = incidents
        self._producer = producer
        self._topic = incidents_topic
        self._clock = clock

    # -- incidents ------------------------------------------------------------------

    def incidents(
        self, where: IncidentFilter | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        """The latest incidents that match, most recently detected first (among the
        latest max(10 x limit, SCANNED) incidents: a list, not an archive search)."""
        where = where or IncidentFilter()
        scanned = self._incidents.recent(max(limit * 10, SCANNED))
        return [r for r in scanned if where.matches(r)][:limit]

    def incident(self, incident_id: str) -> IncidentRecord:
        record = self._incidents.get(incident_id)
        if record is None:
            raise NotFoundError(
                f"no incident {incident_id!r}: list them with `riskstream incidents list`"
            )
        return record

    def acknowledge(self, incident_id: str, by: str, note: str = "") -> IncidentRecord:
        record = self.incident(incident_id)
        if record.acknowledged_by is not None:
            return record
        at = self._clock()
        updated = self._update(incident_id, lambda r: acknowledge(r, _named(by), at, note))
        self._audit(updated, "incident.acknowledged", by, note)
        return updated

    def resolve(self, incident_id: str, by: str, note: str = "") -> IncidentRecord:
        """Close it, revert the actions marked ``revert_on_resolve``, tell subscribers."""
        record = self.incident(incident_id)
        if record.status == "resolved":
            return record
        at = self._clock()
        updated = self._update(incident_id, lambda r: resolve(r, _named(by), at, note))
        self._audit(updated, "incident.resolved", by, note)
        resolved = {**updated.incident, "status": "resolved"}
        self._containment.on_resolved(resolved)
        headers, value = encode_cloudevent(
            INCIDENT_RESOLVED, f"{incident_id}:resolved", format_time(at),
            updated.subject, resolved,
        )  # fmt: skip
        self._producer.produce(self._topic, value, incident_id.encode(), headers)
        self._producer.flush()
        return self.incident(incident_id)

    # -- actions and flags -------------------------------------------------------

    def actions(
        self, status: str | None = "pending", incident_id: str | None = None
    ) -> list[PendingAction]:
        """Actions held for approval (``status=None``: all), of one incident if given."""
        if status is not None and status not in ACTION_STATUSES:
            raise InputError(f"status {status!r}: use one of {', '.join(ACTION_STATUSES)}")
        found = self._containment.actions(status)
        return [a for a in found if incident_id is None or a.incident_id == incident_id]

    def action(self, action_id: str) -> PendingAction:
        pending = self._containment.action(action_id)
        if pending is None:
            raise NotFoundError(
                f"no action {action_id!r}: list them with `riskstream actions list --status all`"
            )
        return pending

    def decide(self, action_id: str, approve: bool, by: str, note: str = "") -> PendingAction:
        """Approve (carried out at once) or reject; the separate-approver rule applies."""
        status = "approved" if approve else "rejected"
        self.action(action_id)  # an unknown id is "not found", not a refused decision
        return self._containment.decide(action_id, status, _named(by), note)

    def flags(self) -> dict[str, RoutingFlag]:
        return self._containment.flags()

    def flag(self, model_id: str) -> RoutingFlag:
        flag = self.flags().get(model_id)
        if flag is None:
            raise NotFoundError(
                f"no routing flag for {model_id!r}: the serving layer uses its own default "
                "until containment or a person sets one"
            )
        return flag

    def set_flag(
        self,
        model_id: str,
        by: str,
        reason: str,
        *,
        version: str | None = None,
        mode: str | None = None,
        traffic_fraction: float | None = None,
    ) -> RoutingFlag:
        """A manual override; refuses values the serving layer could not act on."""
        if version is None and mode is None and traffic_fraction is None:
            raise InputError("say what to change: a version, a mode or a traffic_fraction")
        if version is not None and not version.strip():
            raise InputError("version must not be empty")
        if mode is not None and mode not in MODES:
            raise InputError(f"mode {mode!r}: use one of {', '.join(MODES)}")
        if traffic_fraction is not None and not 0.0 <= traffic_fraction <= 1.0:
            raise InputError(f"traffic_fraction {traffic_fraction}: give a share from 0 to 1")
        return self._containment.override(
            model_id, _named(by), reason,
            version=version, mode=mode, traffic_fraction=traffic_fraction,
        )  # fmt: skip

    def report(self, incident_id: str, kind: str, fmt: str, settings: ReportSettings) -> str:
        """An Article 73 draft or a post-mortem skeleton of the incident, as of now."""
        record = self.incident(incident_id)
        flag = self.flags().get(record.subject)
        return render(kind, fmt, record, settings, self._clock(), flag)

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        return self._containment.audit(start, count)

    def verify_audit(self) -> AuditReport:
        return self._containment.verify_audit()

    def ping(self) -> None:
        """One cheap read of the stores; raises StateStoreError when they do not answer."""
        self._incidents.recent(1)

    # -- internals ----------------------------------------------------------------

    def _update(
        self, incident_id: str, change: Callable[[IncidentRecord], IncidentRecord]
    ) -> IncidentRecord:
        updated = self._incidents.update(incident_id, lambda r: None if r is None else change(r))
        if updated is None:
            raise NotFoundError(f"incident {incident_id!r} disappeared while being updated")
        return updated

    def _audit(self, record: IncidentRecord, event: str, by: str, note: str) -> None:
        self._containment.record_event(
            record.subject,
            {"event": event, "incident_id": record.incident_id, "note": note},
            _named(by),
            f"{record.incident_id}:{event}",
        )


def _named(by: str) -> str:
    """Who did it, or an error: an anonymous write has no place in an audit trail."""
    if not by or not by.strip():
        raise ContainmentError("say who you are (--by NAME, or the API token's user)")
    return by.strip()
