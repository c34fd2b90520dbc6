"""What an incident needs beyond the alarm: cascade, suspects, reach, cost, regulation.

A detector says *that* a stream changed.  The people reading the incident need
to know what else it drags down (lineage: one parent incident with the
downstream models as children, not an alert storm), what changed just before
(the deploys and pipeline changes nearest the onset), how far it reaches, what
it may cost, and whether a regulator must hear of it by a deadline.  All of it is
computed here from the incident, the config and recent change events — pure code.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.timeutil import format_time, parse_time

__all__ = [
    "Costs",
    "Enrichment",
    "Regulation",
    "downstream_of",
    "enrich",
    "suspected_changes",
    "upstream_of",
]

DAY = 86_400.0
MAX_SUSPECTS = 20


@dataclass(frozen=True, slots=True)
class Costs:
    """Cost figures for subjects matching ``pattern`` (shell-style)."""

    pattern: str
    per_event: float = 0.0
    per_hour: float = 0.0
    currency: str = "EUR"


@dataclass(frozen=True, slots=True)
class Regulation:
    """EU AI Act Article 73 defaults; configurable because legal advice differs."""

    high_risk: frozenset[str] = frozenset()  # model ids (or patterns) of high-risk systems
    serious_types: frozenset[str] = frozenset()  # incident types that may be serious incidents
    deadline_days: float = 15.0
    death_deadline_days: float = 10.0
    widespread_deadline_days: float = 2.0
    death_types: frozenset[str] = frozenset()
    widespread_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Enrichment:
    lineage: Mapping[str, Sequence[str]] = field(default_factory=dict)  # upstream -> downstream
    lookback_s: float = 6 * 3600.0
    costs: Sequence[Costs] = ()
    regulation: Regulation = field(default_factory=Regulation)
    correlation_window_s: float = 3600.0  # incidents on related subjects this close: one group


def downstream_of(subject: str, lineage: Mapping[str, Sequence[str]]) -> list[str]:
    """Everything fed, directly or not, by ``subject``, nearest first (cycle-safe).

    >>> downstream_of("s", {"s": ["a"], "a": ["b", "s"], "b": []})
    ['a', 'b']
    """
    seen, order, queue = {subject}, [], deque([subject])
    while queue:
        for child in lineage.get(queue.popleft(), ()):
            if child not in seen:
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order


def upstream_of(subject: str, lineage: Mapping[str, Sequence[str]]) -> list[str]:
    """Everything that feeds ``subject``, nearest first."""
    reverse: dict[str, list[str]] = {}
    for up, downs in lineage.items():
        for down in downs:
            reverse.setdefault(down, []).append(up)
    return downstream_of(subject, reverse)


SUSPECT_FIELDS = ("event_id", "kind", "subject", "version", "actor", "description", "time")
"""What an incident's suspects show of a change event, and all a ChangeLog keeps of one."""


def kept_of_change(change: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``change`` an incident's suspects show (SUSPECT_FIELDS), less nulls.

    The schema lets a producer add any other field (64 KiB of them in one event), and
    the change log kept them all: 100,000 such events, 6 GB of Redis, read again by
    every incident's enrichment.

    >>> kept_of_change({"event_id": "c1", "kind": "deploy", "extra": "x" * 60_000})
    {'event_id': 'c1', 'kind': 'deploy'}
    """
    return {k: change[k] for k in SUSPECT_FIELDS if change.get(k) is not None}


def suspected_changes(
    changes: Iterable[Mapping[str, Any]],
    subjects: Sequence[str],
    onset: float,
    detected: float,
    lookback_s: float,
) -> list[dict[str, Any]]:
    """Change events on ``subjects`` from ``lookback_s`` before the onset until detection,
    nearest to the onset first.

    >>> chg = [{"event_id": "c1", "time": "2026-01-01T00:00:00Z", "kind": "deploy", "subject": "m"},
    ...        {"event_id": "c2", "time": "2026-01-01T00:50:00Z", "kind": "prompt", "subject": "m"},
    ...        {"event_id": "c3", "time": "2026-01-01T00:55:00Z", "kind": "deploy", "subject": "x"}]
    >>> onset = parse_time("2026-01-01T01:00:00Z")
    >>> [c["event_id"] for c in suspected_changes(chg, ["m"], onset, onset + 60, 7200)]
    ['c2', 'c1']
    """
    wanted = set(subjects)
    found = []
    for change in changes:
        if change.get("subject") not in wanted:
            continue
        at = parse_time(str(change["time"]))
        if onset - lookback_s <= at <= detected:
            found.append((abs(onset - at), at, change))
    found.sort(key=lambda item: (item[0], item[1]))
    return [
        {**kept_of_change(c), "lead_seconds": round(onset - at, 3)}
        for _, at, c in found[:MAX_SUSPECTS]
    ]


def _child_id(parent_id: str, subject: str) -> str:
    return hashlib.sha256(f"{parent_id}\x1fchild\x1f{subject}".encode()).hexdigest()[:32]


def _matches(subject: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(subject, p) for p in patterns)


def enrich(
    incident: dict[str, Any], config: Enrichment, changes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Add cascade, suspects, reach, cost and regulation to ``incident`` (in place).

    Returns the child incidents of the downstream models, in lineage order; each
    child names its parent, and the parent lists its children.
    """
    subject = str(incident["subject"])
    onset, detected = parse_time(incident["onset_at"]), parse_time(incident["detected_at"])
    upstream = upstream_of(subject, config.lineage)
    incident["suspected_changes"] = suspected_changes(
        changes, [subject, *upstream], onset, detected, config.lookback_s
    )
    events = int(incident.get("evidence", {}).get("after", {}).get("count", 0))
    hours = max(detected - onset, 0.0) / 3600.0
    radius: dict[str, Any] = {
        **incident.get("blast_radius", {}),
        "affected_events": events,
        "segments": [incident.get("stream_key")],
        "hours_since_onset": round(hours, 3),
    }
    for cost in config.costs:
        if _matches(subject, [cost.pattern]):
            radius["estimated_cost"] = {
                "amount": round(events * cost.per_event + hours * cost.per_hour, 2),
                "currency": cost.currency,
                "basis": f"{events} events x {cost.per_event} + {hours:.2f} h x {cost.per_hour}",
            }
            break
    incident["blast_radius"] = radius
    downstream = downstream_of(subject, config.lineage)
    children = [_child(incident, child, config) for child in downstream]
    if children:
        incident["children"] = [c["incident_id"] for c in children]
        radius["downstream"] = downstream
    _regulate(incident, config.regulation)
    return children


def _child(parent: dict[str, Any], subject: str, config: Enrichment) -> dict[str, Any]:
    child = {
        "incident_id": _child_id(parent["incident_id"], subject),
        "type": "upstream-failure",
        "severity": parent["severity"],
        "status": "open",
        "subject": subject,
        "monitor": parent["monitor"],
        "stream_key": parent["stream_key"],
        "detected_at": parent["detected_at"],
        "onset_at": parent["onset_at"],
        "parent_id": parent["incident_id"],
        "evidence": {
            **parent.get("evidence", {}),
            "summary": f"{subject} is fed by {parent['subject']}, which is failing "
            f"({parent['type']})",
            "upstream": parent["subject"],
            "upstream_incident": parent["incident_id"],
        },
        "suspected_changes": parent.get("suspected_changes", []),
    }
    _regulate(child, config.regulation)
    return child


def _regulate(incident: dict[str, Any], rules: Regulation) -> None:
    subject, kind = str(incident["subject"]), str(incident["type"])
    # A type listed as a death or a widespread one is a serious incident type too, and
    # of the deadlines that apply the shortest binds (Article 73(3), (4)).
    serious = rules.serious_types | rules.death_types | rules.widespread_types
    if not _matches(subject, rules.high_risk) or kind not in serious:
        return
    applies = (
        (rules.serious_types, rules.deadline_days),
        (rules.death_types, rules.death_deadline_days),
        (rules.widespread_types, rules.widespread_deadline_days),
    )
    days = min(within for types, within in applies if kind in types)
    # The clock starts when the provider becomes aware: detection, here.
    due = parse_time(incident["detected_at"]) + days * DAY
    incident["regulatory"] = {
        "framework": "EU AI Act",
        "article": "73",
        "risk_class": "high",
        "potential_serious_incident": True,
        "report_within_days": days,
        "report_deadline": format_time(due),
        "human_approval_required": True,
    }
