"""A blameless post-mortem skeleton, seeded with what the record already knows.

The meeting should spend its hour on *why*, not on rebuilding the timeline.  So
the skeleton carries the timeline, the impact and the roles, and starts each of
the five whys from the evidence: what moved, when it began, the changes that
landed just before, how long detection took, how far it reached.  The answers,
the lessons and the action items are placeholders: only the people can write them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from riskstream.core.incident_records import IncidentRecord, headline
from riskstream.core.reports.facts import (
    current_routing,
    evidence_summary,
    placeholders,
    reach_summary,
    reporting_deadline,
    suspect_summary,
    ticket_links,
    to_fill,
    version_at_onset,
)
from riskstream.core.reports.settings import RACI_ROLES, ReportSettings
from riskstream.core.reports.story import Story, root_change_seed
from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import format_time, parse_time

__all__ = ["BLAMELESS", "postmortem_report"]

BLAMELESS = (
    "Blameless: we ask how the system — code, data, process, incentives — let this "
    "happen, never who is to blame. People acted on what they knew at the time."
)


def postmortem_report(
    record: IncidentRecord,
    settings: ReportSettings,
    as_of: float,
    flag: RoutingFlag | None = None,
    story: Story | None = None,
) -> dict[str, Any]:
    """The skeleton as plain data.  Of a member of a grouped ``story``, it is the
    story's post-mortem: it opens on the root, its timeline holds every member's,
    and the whys walk from an effect up to the root."""
    asked = record.incident_id
    if story is not None and len(story.members) > 1:
        record = story.root(record)
        records = [story.records.get(str(m["incident_id"])) for m in story.members]
        members = [r for r in records if r is not None] or [record]
    else:
        story, members = None, [record]
    inc = record.incident
    onset, detected = (_at(inc, k) for k in ("onset_at", "detected_at"))
    applied = [
        e.at
        for r in members
        for e in r.timeline
        if e.kind == "action" and e.detail.endswith(": applied")
    ]
    contained = min(applied) if applied else None
    report: dict[str, Any] = {
        "kind": "postmortem",
        "title": f"Post-mortem: {headline(inc)}",
        "incident_id": record.incident_id,
        "tickets": ticket_links(record),
        "as_of": format_time(as_of),
        "blameless": BLAMELESS,
        **({"story": story.outline(asked)} if story is not None else {}),
        "summary": {
            "what": headline(inc),
            "subject": record.subject,
            "type": inc.get("type"),
            "severity": inc.get("severity"),
            "status": record.status,
            "onset_estimated": inc.get("onset_at"),
            "detected": inc.get("detected_at"),
            "first_contained": None if contained is None else format_time(contained),
            "resolved": None if record.resolved_at is None else format_time(record.resolved_at),
            "hours_onset_to_detection": _hours(onset, detected),
            "narrative": to_fill("two or three sentences: what happened, to whom, how it ended"),
        },
        "impact": {
            "reach": reach_summary(inc.get("blast_radius") or {}),
            "blast_radius": inc.get("blast_radius") or {},
            "regulatory": reporting_deadline(inc, as_of),
            "on_people": to_fill("what it meant for the people served, in their terms"),
        },
        "timeline": _timeline(members),
        "current_routing": current_routing(flag),
        "roles": _roles(settings, record.subject),
        "five_whys": _five_whys(record, onset, detected, story, asked),
        "went_well": to_fill("what helped: detection, runbooks, people, tools"),
        "went_wrong": to_fill("what slowed us down or made it worse"),
        "lucky": to_fill("where we got lucky (and should not count on it again)"),
        "action_items": [
            {
                "goal": goal,
                "action": to_fill("what, concretely"),
                "owner": to_fill("who"),
                "due": to_fill("by when"),
                "ticket": to_fill("tracking link"),
            }
            for goal in ("prevent it", "detect it sooner", "contain it faster")
        ],
    }
    report["to_fill"] = placeholders(report)
    return report


def _roles(settings: ReportSettings, model_id: str) -> dict[str, Any]:
    found = settings.raci_for(model_id)
    where = "config: raci.default or raci.<model pattern>"
    if found is None:
        return {role: to_fill(f"who is {role} ({where})") for role in RACI_ROLES} | {"source": None}
    pattern, raci = found
    roles: dict[str, Any] = {
        role: list(getattr(raci, role)) or to_fill(f"who is {role} (config: raci.{pattern})")
        for role in RACI_ROLES
    }
    return roles | {"source": f"raci.{pattern}"}


def _timeline(records: list[IncidentRecord]) -> list[dict[str, Any]]:
    """One record's timeline as recorded; a story's, merged in time, each entry saying
    whose it is."""
    if len(records) == 1:
        return [
            {"at": format_time(e.at), "kind": e.kind, "by": e.actor, "what": e.detail}
            for e in records[0].timeline
        ]
    merged = sorted(((e, r) for r in records for e in r.timeline), key=lambda x: x[0].at)
    return [
        {"at": format_time(e.at), "kind": e.kind, "by": e.actor,
         "what": f"{r.subject} ({r.incident_id[:12]}): {e.detail}"}
        for e, r in merged
    ]  # fmt: skip


def _five_whys(
    record: IncidentRecord,
    onset: float | None,
    detected: float | None,
    story: Story | None = None,
    asked: str = "",
) -> list[Any]:
    inc = record.incident
    ev: Mapping[str, Any] = inc.get("evidence") or {}
    value, where = ev.get("value") or "the value", inc.get("stream_key") or record.subject
    suspects = [suspect_summary(c) for c in inc.get("suspected_changes") or ()]
    version = version_at_onset(inc)
    first_action = next((e for e in record.timeline if e.kind == "action"), None)
    before, after = ((ev.get(k) or {}).get("mean") for k in ("before", "after"))
    moved = "move"
    if isinstance(before, int | float) and isinstance(after, int | float):
        moved = f"move from {before:.4g} to {after:.4g}"
    seeds = [
        (f"Why did `{value}` on {where} {moved}?", evidence_summary(inc)),
        (
            f"Why did it begin around {inc.get('onset_at', 'the onset')}?",
            "Changes nearest the onset: " + "; ".join(suspects)
            if suspects
            else "No change events on it or upstream near the onset: was there a change "
            "riskstream does not hear of (data, upstream, traffic mix)?",
        ),
        (
            f"Why did detection take {_hours(onset, detected)} h after the onset?",
            f"{ev.get('detector', '?')} ({_params(ev.get('params') or {})}); "
            f"{ev.get('delay_samples', '?')} samples from onset to detection",
        ),
        (
            "Why did it reach as far as it did before it was contained?",
            reach_summary(inc.get("blast_radius") or {})
            + (f"; first containment: {first_action.detail}" if first_action else ""),
        ),
        (
            "Why did the checks before release not catch it?",
            f"Version in service at the onset: {version}" if version else "Version unknown",
        ),
    ]
    if story is not None:  # from an effect up to the root, then why the root changed
        root_why = (
            f"Why did {record.subject} change around {inc.get('onset_at', 'the onset')}?",
            f"{evidence_summary(inc)}. {root_change_seed(record)}",
        )
        seeds = [*story.whys(asked), root_why, *seeds[2:]]
    return [
        {"why": why, "seed": seed, "answer": to_fill("the answer, and the next why it raises")}
        for why, seed in seeds
    ]


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "default parameters"


def _at(incident: Mapping[str, Any], key: str) -> float | None:
    value = incident.get(key)
    return parse_time(str(value)) if value else None


def _hours(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round((end - start) / 3600.0, 1)
