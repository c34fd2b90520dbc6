"""The containment service: incidents in, routing flags out, each action at most once.

It sees ports and the core only, so the faust worker, the embedded demo and the
tests run this same code.

At most once: every (incident, action) has a deterministic change id, and the flag
store refuses a change id it has applied before — so an incident redelivered after
a crash (the flag written, the offset not yet committed) finds its change already
applied, and only the routing-change event is published again, with the same id.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from riskstream.codec import encode_cloudevent
from riskstream.core.approvals import PendingAction
from riskstream.core.audit import AuditEntry, AuditReport
from riskstream.core.incident_records import (
    DETECTION_ACTOR,
    Correlation,
    IncidentRecord,
    correlate,
    headline,
    note_action,
    record_incident,
    with_entry,
)
from riskstream.core.playbooks import (
    Action,
    ContainmentPolicy,
    last_known_good,
    select_playbook,
    target_flag,
)
from riskstream.core.routing import FlagChange, RoutingFlag, change_id
from riskstream.core.timeutil import format_time, parse_time
from riskstream.errors import ContainmentError
from riskstream.metrics import ContainmentMetrics
from riskstream.ports import ApprovalStore, FlagStore, IncidentStore, Producer

__all__ = ["CONTAINMENT_ACTOR", "ROUTING_CHANGED", "ContainmentService"]

log = logging.getLogger(__name__)

CONTAINMENT_ACTOR = "riskstream/containment"
ROUTING_CHANGED = "io.riskstream.routing.changed"
_INCIDENT_FIELDS = ("incident_id", "type", "severity", "subject", "onset_at", "summary")


class ContainmentService:
    """Applies the containment policy to incidents: picks the playbook, changes routing
    flags (each change at most once), parks actions that need approval, reverts on
    resolve, and records every step on the incident and in the audit trail.

    It sees only ports, so the faust worker, the embedded demo and the tests share it.
    """

    def __init__(
        self,
        policy: ContainmentPolicy,
        flags: FlagStore,
        approvals: ApprovalStore,
        producer: Producer,
        metrics: ContainmentMetrics,
        clock: Callable[[], float] = time.time,
        incidents: IncidentStore | None = None,
        correlation: Correlation | None = None,
    ) -> None:
        self._policy = policy
        self._flags = flags
        self._approvals = approvals
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._incidents = incidents
        self._correlation = correlation or Correlation()
        self._audit_entries: list[AuditEntry] = []  # read incrementally; the trail only grows

    # -- inputs -----------------------------------------------------------------

    def on_incident(self, incident: Mapping[str, Any]) -> list[str]:
        """Carry out the matching playbook; one outcome per action, in order."""
        received = self._clock()
        self._metrics.incidents.inc()
        incident_id = str(incident["incident_id"])
        self._record_new(incident_id, incident, received)
        if incident.get("status") == "resolved":
            return self.on_resolved(incident)
        self._catch_up_deploys(incident)
        playbook = select_playbook(self._policy.playbooks, incident)
        if playbook is None:
            log.info("incident %s: no playbook matches", incident_id)
            return []
        outcomes = []
        for index, action in enumerate(playbook.actions):
            outcome = self._start(index, action, incident)
            self._metrics.actions.labels(action.kind, outcome.split(":")[0]).inc()
            self._note_action(
                incident_id, CONTAINMENT_ACTOR, action.kind, outcome, change_id(incident_id, index)
            )
            outcomes.append(outcome)
        self._metrics.time_to_flag.observe(self._clock() - received)
        return outcomes

    def on_change_event(self, event: Mapping[str, Any]) -> str | None:
        """A deploy (or rollback) by someone else: record the new version in the flag.

        The audit trail of these changes is where "last known-good" comes from.
        """
        if event.get("kind") != "deploy" or not event.get("version"):
            return None
        model_id, version = str(event["subject"]), str(event["version"])
        at = parse_time(str(event["time"]))
        actor = str(event.get("actor") or "unknown")
        reason = f"deploy {version} by {actor}: {event.get('description', '')}".strip(": ")

        def wanted(current: RoutingFlag | None) -> RoutingFlag:
            base = current or RoutingFlag(model_id=model_id, active_version=version)
            return base.evolve(
                active_version=version, mode="normal", traffic_fraction=1.0, reason=reason,
                incident_id=None, actor=actor, revision=base.revision + 1, updated_at=at,
                expires_at=None,
            )  # fmt: skip

        return self._write(change_id(str(event["event_id"]), 0, "deploy"), model_id, wanted, at)

    def on_resolved(self, incident: Mapping[str, Any]) -> list[str]:
        """Undo the actions marked ``revert_on_resolve``, unless someone changed the flag since."""
        playbook = select_playbook(self._policy.playbooks, incident)
        if playbook is None:
            return []
        incident_id = str(incident["incident_id"])
        by_change = {e.change_id: e for e in self._audit()}
        outcomes = []
        for index, action in enumerate(playbook.actions):
            applied = by_change.get(change_id(incident_id, index))
            if not action.revert_on_resolve or applied is None:
                continue
            current = self._flags.get(applied.model_id)
            if current is None or current.revision != applied.after.get("revision"):
                outcomes.append("kept: the flag changed since; not reverting over it")
                continue
            before = applied.before
            revert_id = change_id(incident_id, index, "revert")

            def wanted(cur: RoutingFlag | None, before: Any = before) -> RoutingFlag:
                assert cur is not None
                restored = RoutingFlag.from_data(before) if before else cur.evolve(mode="normal")
                return restored.evolve(
                    reason=f"incident {incident_id} resolved: reverted",
                    actor=CONTAINMENT_ACTOR, revision=cur.revision + 1,
                    updated_at=self._clock(), incident_id=incident_id,
                )  # fmt: skip

            outcome = self._write(revert_id, applied.model_id, wanted, self._clock())
            self._metrics.actions.labels(action.kind, "reverted").inc()
            self._note_action(
                incident_id, CONTAINMENT_ACTOR, f"revert {action.kind}", outcome, revert_id
            )
            outcomes.append(f"reverted: {outcome}")
        return outcomes

    # -- approvals ----------------------------------------------------------------

    def decide(self, action_id: str, status: str, by: str, note: str = "") -> PendingAction:
        """Approve or reject a pending action; an approved one is carried out at once."""
        decided = self._approvals.decide(action_id, status, by, self._clock(), note)
        self._metrics.actions.labels(decided.action["kind"], status).inc()
        self._refresh_pending_gauge()
        self._decided(decided)
        if status == "approved":
            outcome = self._carry_out(decided, actor=by)
            if outcome.startswith("failed"):
                raise ContainmentError(f"approved, but not applied: {outcome[len('failed: ') :]}")
        return decided

    def expire_due(self) -> list[PendingAction]:
        """Expire pending actions past their deadline; apply those whose playbook says so."""
        now = self._clock()
        expired = []
        for pending in self._approvals.list("pending"):
            if pending.expires_at is None or pending.expires_at > now:
                continue
            try:
                decided = self._approvals.decide(
                    pending.action_id, "expired", "riskstream/timeout", now, "approval timed out"
                )
            except ContainmentError:  # decided meanwhile by a person: theirs stands
                continue
            self._metrics.actions.labels(pending.action["kind"], "expired").inc()
            self._decided(decided)
            if decided.on_timeout == "apply":
                self._carry_out(decided, actor="riskstream/timeout")
            expired.append(decided)
        self._refresh_pending_gauge()
        return expired

    def lapse_flags(self) -> list[str]:
        """Undo flag changes whose ``ttl`` has run out; the models whose flag was restored.

        The flag goes back to what it was before the change that set the expiry,
        unless someone changed it since (then it carries no expiry of ours any more).
        """
        now = self._clock()
        restored = []
        for model_id, flag in self._flags.all().items():
            if flag.expires_at is None or flag.expires_at > now:
                continue
            setting = next(
                (e for e in reversed(self._audit())
                 if e.model_id == model_id and e.after.get("revision") == flag.revision),
                None,
            )  # fmt: skip
            before = setting.before if setting is not None else None
            cid = f"{setting.change_id if setting else f'{model_id}:{flag.revision}'}:lapsed"

            def wanted(
                cur: RoutingFlag | None, before: Any = before, flag: RoutingFlag = flag
            ) -> RoutingFlag:
                assert cur is not None
                back = (
                    RoutingFlag.from_data(before)
                    if before
                    else cur.evolve(mode="normal", traffic_fraction=1.0)
                )
                return back.evolve(
                    reason=f"lapsed after its ttl: {flag.reason}", actor=CONTAINMENT_ACTOR,
                    revision=cur.revision + 1, updated_at=now, expires_at=None,
                    incident_id=flag.incident_id,
                )  # fmt: skip

            outcome = self._write(cid, model_id, wanted, now)
            if flag.incident_id:
                self._note_action(flag.incident_id, CONTAINMENT_ACTOR, "ttl lapsed", outcome, cid)
            restored.append(model_id)
        return restored

    def override(
        self,
        model_id: str,
        by: str,
        reason: str,
        *,
        version: str | None = None,
        mode: str | None = None,
        traffic_fraction: float | None = None,
    ) -> RoutingFlag:
        """A person sets a model's flag by hand: audited under their name, published."""
        if not reason.strip():
            raise ContainmentError("a manual flag change needs a reason, for the audit trail")
        cid = f"manual:{model_id}:{uuid.uuid4().hex}"
        now = self._clock()

        def wanted(current: RoutingFlag | None) -> RoutingFlag:
            if current is None and version is None:
                raise ContainmentError(f"{model_id} has no flag yet: give a version to create one")
            base = current or RoutingFlag(model_id=model_id, active_version=str(version))
            changes: dict[str, Any] = {"mode": mode, "traffic_fraction": traffic_fraction}
            changes["active_version"] = version
            return base.evolve(
                **{k: v for k, v in changes.items() if v is not None},
                reason=f"manual: {reason}", actor=by, incident_id=None,
                revision=base.revision + 1, updated_at=now, expires_at=None,
            )  # fmt: skip

        self._write(cid, model_id, wanted, now)
        flag = self._flags.get(model_id)
        assert flag is not None
        return flag

    def record_event(self, model_id: str, event: dict[str, object], by: str, key: str) -> bool:
        """An operator's act (acknowledge, resolve…) in the hash-chained audit trail."""
        return self._flags.record_event(key, model_id, by, self._clock(), event)

    def flags(self) -> dict[str, RoutingFlag]:
        """Every model's routing flag as it stands."""
        return self._flags.all()

    def pending(self) -> list[PendingAction]:
        """Actions waiting for a person."""
        return self._approvals.list("pending")

    def actions(self, status: str | None = None) -> list[PendingAction]:
        """Actions held for approval, in any state (``None``: all)."""
        return self._approvals.list(status)

    def action(self, action_id: str) -> PendingAction | None:
        return self._approvals.get(action_id)

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        return self._flags.audit(start, count)

    def verify_audit(self) -> AuditReport:
        return self._flags.verify_audit()

    # -- internals ----------------------------------------------------------------

    def _record(
        self, incident_id: str, change: Callable[[IncidentRecord | None], IncidentRecord | None]
    ) -> None:
        if self._incidents is not None:
            self._incidents.update(incident_id, change)

    def _catch_up_deploys(self, incident: Mapping[str, Any]) -> None:
        """Record the subject's suspected deploys this worker has not read yet.

        Incidents and change events come on different topics, so an incident can
        overtake the deploy that caused it; "last known-good" would then be the
        version just deployed.  The incident lists that deploy among its suspects,
        so it is recorded first (the same change id as the change event's, so
        whichever comes second is a duplicate).  A deploy older than the flag's
        last change is not replayed over it.
        """
        subject = incident.get("subject")
        for change in incident.get("suspected_changes") or ():
            if change.get("kind") != "deploy" or change.get("subject") != subject:
                continue
            current = self._flags.get(str(subject))
            if current is not None and current.updated_at >= parse_time(str(change["time"])):
                continue
            self.on_change_event(change)

    def _record_new(self, incident_id: str, incident: Mapping[str, Any], at: float) -> None:
        """Record the incident; a new one joins the group of a related open one."""
        if self._incidents is None:
            return
        group = None
        if self._incidents.get(incident_id) is None:
            group = correlate(incident, self._incidents.recent(200), self._correlation)
        self._record(incident_id, lambda r: record_incident(r, incident, at, group))
        if group is not None:
            detail = f"related incident {incident_id}: {headline(incident)}"
            self._record(
                group,
                lambda r: None if r is None else with_entry(
                    r, at, "correlated", DETECTION_ACTOR, detail, f"member:{incident_id}"
                ),
            )  # fmt: skip

    def _note_action(self, incident_id: str, actor: str, what: str, outcome: str, key: str) -> None:
        at = self._clock()
        self._record(
            incident_id,
            lambda r: (
                None
                if r is None
                else note_action(r, at, actor, what, outcome, f"{key}:{outcome.split(':')[0]}")
            ),
        )

    def _decided(self, decided: PendingAction) -> None:
        """The decision on the incident's timeline and in the audit trail."""
        at = decided.decided_at or self._clock()
        by = decided.decided_by or "unknown"
        what = f"{decided.action['kind']} {decided.status}"
        detail = f"{what}{': ' + decided.note if decided.note else ''}"
        self._record(
            decided.incident_id,
            lambda r: (
                None
                if r is None
                else with_entry(r, at, decided.status, by, detail, f"decision:{decided.action_id}")
            ),
        )
        event: dict[str, object] = {
            "event": f"action.{decided.status}", "action_id": decided.action_id,
            "incident_id": decided.incident_id, "action": decided.action["kind"],
            "note": decided.note,
        }  # fmt: skip
        self._flags.record_event(f"{decided.action_id}:decision", decided.model_id, by, at, event)

    def _start(self, index: int, action: Action, incident: Mapping[str, Any]) -> str:
        incident_id = str(incident["incident_id"])
        cid = change_id(incident_id, index)
        if not action.changes_routing:
            log.warning(
                "incident %s: notify %s: %s on %s", incident_id, action.channel,
                incident.get("type"), incident.get("subject"),
            )  # fmt: skip
            return "notified"
        over_limit = self._over_limits(str(incident["subject"]), action)
        if action.approval.required or over_limit:
            now = self._clock()
            timeout = action.approval.timeout_s
            pending = PendingAction(
                action_id=cid,
                incident_id=incident_id,
                model_id=str(incident["subject"]),
                action=action.to_data(),
                requested_by=CONTAINMENT_ACTOR,
                requested_at=now,
                expires_at=None if timeout is None else now + timeout,
                on_timeout=action.approval.on_timeout,
                separate_approver=action.approval.separate_approver,
                note=over_limit,
                labels={k: str(incident[k]) for k in _INCIDENT_FIELDS if k in incident},
            )
            self._approvals.add(pending)  # False on redelivery: already pending
            self._refresh_pending_gauge()
            return f"pending: {over_limit or 'approval required'}"
        return self._apply(cid, action, incident, CONTAINMENT_ACTOR)

    def _carry_out(self, pending: PendingAction, actor: str) -> str:
        outcome = self._apply(
            pending.action_id, Action.from_data(pending.action), pending.labels, actor
        )
        if outcome.startswith("failed"):  # on_incident counts only the outcomes it starts with
            self._metrics.actions.labels(pending.action["kind"], "failed").inc()
        self._note_action(
            pending.incident_id, actor, str(pending.action["kind"]), outcome, pending.action_id
        )
        # An approved action is marked applied; one applied on timeout stays "expired"
        # (the audit trail shows riskstream/timeout as who changed the flag).
        if pending.status == "approved" and not outcome.startswith("failed"):
            self._approvals.mark_applied(pending.action_id)
        return outcome

    def _apply(self, cid: str, action: Action, incident: Mapping[str, Any], actor: str) -> str:
        model_id = str(incident["subject"])
        onset = parse_time(str(incident["onset_at"])) if incident.get("onset_at") else self._clock()
        known_good = last_known_good(self._history(model_id), onset)
        policy = self._policy.model(model_id)

        def wanted(current: RoutingFlag | None) -> RoutingFlag:
            return target_flag(action, incident, current, policy, known_good, self._clock(), actor)

        try:
            return self._write(cid, model_id, wanted, self._clock())
        except ContainmentError as exc:
            log.error(
                "incident %s: %s not applied: %s", incident.get("incident_id"), action.kind, exc
            )
            return f"failed: {exc}"

    def _write(
        self,
        cid: str,
        model_id: str,
        wanted: Callable[[RoutingFlag | None], RoutingFlag],
        at: float,
    ) -> str:
        """Compare-and-set until the change lands or is found applied already."""
        for _ in range(10):
            current = self._flags.get(model_id)
            new = wanted(current)
            result = self._flags.apply(FlagChange(cid, current.revision if current else 0, new), at)
            if result.outcome == "conflict":
                continue
            flag = new if result.outcome == "applied" else (result.current or new)
            self._publish(cid, flag)
            return result.outcome
        raise ContainmentError(f"{model_id}: the flag kept changing under 10 attempts; try again")

    def _publish(self, cid: str, flag: RoutingFlag) -> None:
        data = flag.to_data()
        headers, value = encode_cloudevent(
            ROUTING_CHANGED, cid, format_time(flag.updated_at), flag.model_id, data
        )
        self._producer.produce(
            self._policy.routing_changes_topic, value, flag.model_id.encode(), headers
        )
        self._producer.flush()

    def _history(self, model_id: str) -> list[tuple[float, str | None, str]]:
        return [
            (e.at, (e.before or {}).get("active_version"), str(e.after.get("active_version")))  # type: ignore[misc]
            for e in self._audit()
            if e.model_id == model_id and "active_version" in e.after
        ]

    def _over_limits(self, model_id: str, action: Action) -> str:
        """Why an automatic action must wait for a person instead, or '' if it may go."""
        limits = self._policy.limits
        if action.fraction > limits.max_traffic_fraction:
            return (
                f"over the automatic limit: {action.fraction:.0%} of traffic "
                f"> {limits.max_traffic_fraction:.0%}"
            )
        since = self._clock() - limits.window_s
        touched = {
            e.model_id for e in self._audit() if e.actor == CONTAINMENT_ACTOR and e.at >= since
        }
        if model_id not in touched and len(touched) >= limits.max_models:
            return (
                f"over the automatic limit: {len(touched)} models changed in the last "
                f"{limits.window_s:.0f} s (max {limits.max_models})"
            )
        return ""

    def _audit(self) -> list[AuditEntry]:
        """The audit trail, fetching only the entries appended since the last call."""
        last = self._audit_entries[-1].seq if self._audit_entries else 0
        self._audit_entries.extend(self._flags.audit(last))
        self._metrics.audit_length.set(len(self._audit_entries))
        return self._audit_entries

    def _refresh_pending_gauge(self) -> None:
        pending = self._approvals.list("pending")
        deadlines = [p.expires_at for p in pending if p.expires_at is not None]
        self._metrics.pending.set(len(pending))
        self._metrics.oldest_pending.set(min((p.requested_at for p in pending), default=0))
        self._metrics.next_deadline.set(min(deadlines, default=0))
