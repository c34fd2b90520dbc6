"""Gathering what riskstream holds about a candidate target, for the checks in
:mod:`riskstream.core.targets`.

Two sources, both already kept for other reasons, both honest about what they
say: the incident store (incidents that name the target and are not resolved)
and the flag audit trail (when the target served the model, and what it was left
for).  Nothing is inferred beyond them: a target neither source mentions has no
evidence, and the verdict says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from riskstream.core.audit import AuditEntry
from riskstream.core.incident_records import IncidentRecord, headline
from riskstream.core.playbooks import Candidate
from riskstream.core.targets import Evidence, OpenIncident, Served, names_target
from riskstream.core.timeutil import parse_time
from riskstream.ports import IncidentStore

__all__ = ["EVIDENCE_WINDOW_S", "gather", "open_naming"]

EVIDENCE_WINDOW_S = 30 * 86_400.0
"""How far back (data time, before the incident at hand) incidents are read: an
incident still open after a month is still open, but the read stays bounded."""


def open_naming(
    store: IncidentStore | None,
    model_id: str,
    target: str,
    around: Mapping[str, Any],
    exclude: set[str],
) -> list[IncidentRecord]:
    """Incidents not resolved that name ``target`` of ``model_id``, detected within
    the window before the incident ``around`` (or after it)."""
    if store is None:
        return []
    try:
        at = parse_time(str(around["detected_at"]))
    except (KeyError, ValueError):
        at = 0.0
    found = store.near({model_id, target}, at - EVIDENCE_WINDOW_S, float("inf"))
    return [
        r
        for r in found
        if r.status != "resolved"
        and r.incident_id not in exclude
        and names_target(r.incident, model_id, target)
    ]


def gather(
    model_id: str,
    candidate: Candidate,
    incident: Mapping[str, Any],
    store: IncidentStore | None,
    history: Sequence[AuditEntry],
) -> Evidence:
    """The evidence about one candidate of the action taken for ``incident``."""
    if candidate.problem:
        return Evidence(model_id, candidate.version, candidate.label, problem=candidate.problem)
    target = candidate.version
    trigger = str(incident.get("incident_id", ""))
    records = open_naming(store, model_id, target, incident, {trigger})
    opened = [OpenIncident(r.incident_id, headline(r.incident)) for r in records]
    served = _served(history, target)
    for stretch in served:  # left for an incident that is still open: not healthy yet
        left = stretch.left_for_incident
        if left is None or left == trigger or any(o.incident_id == left for o in opened):
            continue
        record = store.get(left) if store is not None else None
        if record is not None and record.status != "resolved":
            words = f"containment moved {model_id} away from it for this incident"
            opened.append(OpenIncident(left, words))
    return Evidence(model_id, target, candidate.label, tuple(opened), tuple(served))


def _served(history: Sequence[AuditEntry], target: str) -> list[Served]:
    """The stretches of the audit trail in which ``target`` served the whole model."""
    stretches: list[Served] = []
    serving = False
    for entry in history:
        after = entry.after
        if "active_version" not in after:
            continue  # an audit event, not a flag change
        now = (
            after.get("active_version") == target
            and float(str(after.get("traffic_fraction", 1.0))) >= 1.0
            and after.get("mode") in ("normal", "fallback")
        )
        if serving and not now:
            left_for = after.get("incident_id")
            reason = str(after.get("reason", "")).split(":")[0]
            stretches.append(Served(reason, str(left_for) if left_for else None))
        serving = now
    if serving:
        stretches.append(Served(""))
    return stretches
