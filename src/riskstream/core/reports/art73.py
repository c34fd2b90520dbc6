"""A draft serious-incident report for the market surveillance authority (EU AI Act Art. 73).

A compliance officer has days, not weeks, and must not file a guess.  So the draft
fills in what the record and the config know — provider, AI system, what moved
and when, who may be affected, what was done, the deadline — and marks every
field only a person can answer with a placeholder (``{"to_fill": prompt}``), listed
again at the end so none is missed.

The fields follow Article 73 and the Commission's draft reporting template:
provider and system identity, the incident and its Article 3(49) category, dates
of occurrence and awareness, persons affected, causal link, corrective measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from riskstream.core.incident_records import IncidentRecord, headline
from riskstream.core.reports.facts import (
    corrective_actions,
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
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.reports.story import Story
from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import format_time

__all__ = ["ART73_TITLE", "art73_report"]

ART73_TITLE = "Serious incident report (EU AI Act, Article 73)"
_CATEGORIES = (
    "which harm of Article 3(49): (a) death or serious harm to a person's health, "
    "(b) serious and irreversible disruption of critical infrastructure, (c) infringement "
    "of Union law protecting fundamental rights, (d) serious harm to property or the "
    "environment"
)


def _known(value: object, prompt: str) -> Any:
    return value if value not in (None, "", [], {}) else to_fill(prompt)


def art73_report(
    record: IncidentRecord,
    settings: ReportSettings,
    as_of: float,
    flag: RoutingFlag | None = None,
    story: Story | None = None,
) -> dict[str, Any]:
    """The report as plain data; ``as_of`` is when it is read (for the days left).

    Of a member of a grouped ``story``, it opens on the story's root (what began
    first and explains the rest), then reports the AI system asked about."""
    if story is not None and len(story.members) < 2:
        story = None
    inc = record.incident
    model = record.subject
    system = settings.system(model)
    provider = settings.provider
    reg = inc.get("regulatory") or {}
    radius = inc.get("blast_radius") or {}
    cfg = f"models.{model}"
    report: dict[str, Any] = {
        "kind": "art73",
        "title": ART73_TITLE,
        "incident_id": record.incident_id,
        "tickets": ticket_links(record),
        "as_of": format_time(as_of),
        **({"story": story.outline(record.incident_id)} if story is not None else {}),
        "report_type": to_fill(
            "initial or complete report: an initial, incomplete report may be filed first "
            "to meet the deadline (Article 73(5))"
        ),
        "provider": {
            "name": _known(provider.name, "the provider's legal name (config: provider.name)"),
            "address": _known(provider.address, "postal address (config: provider.address)"),
            "contact": _known(
                provider.contact, "who the authority should contact (config: provider.contact)"
            ),
        },
        "ai_system": {
            "model_id": model,
            "name": _known(system.name, f"the system's trade name (config: {cfg}.name)"),
            "version": _known(
                version_at_onset(inc),
                "the version in service at the onset (no deploy event of it was seen)",
            ),
            "intended_purpose": _known(
                system.intended_purpose, f"intended purpose (config: {cfg}.intended_purpose)"
            ),
            "risk_class": _known(
                system.risk_class or reg.get("risk_class"),
                f"risk class, e.g. high (config: {cfg}.risk_class)",
            ),
            "eu_database_id": _known(
                system.eu_database_id,
                f"registration number in the EU database, Article 71 "
                f"(config: {cfg}.eu_database_id)",
            ),
        },
        "incident": {
            "type": inc.get("type"),
            "severity": inc.get("severity"),
            "headline": headline(inc),
            "evidence": evidence_summary(inc),
            "monitor": inc.get("monitor"),
            "stream_key": inc.get("stream_key"),
            "status": record.status,
            "potential_serious_incident": bool(reg.get("potential_serious_incident")),
            "serious_incident_category": to_fill(_CATEGORIES),
            "harm": to_fill(
                "what happened to people or property, as far as known: cases reviewed, "
                "consequences, whether anyone was harmed"
            ),
        },
        "when": {
            "onset_estimated": inc.get("onset_at"),
            "detected": inc.get("detected_at"),
            "provider_aware": inc.get("detected_at"),
            "recorded": format_time(record.received_at),
            "acknowledged": None
            if record.acknowledged_at is None
            else {"by": record.acknowledged_by, "at": format_time(record.acknowledged_at)},
        },
        "affected": {
            "summary": reach_summary(radius),
            "segments": radius.get("segments") or [],
            "affected_events": radius.get("affected_events"),
            "hours_since_onset": radius.get("hours_since_onset"),
            "downstream": radius.get("downstream") or [],
            "estimated_cost": radius.get("estimated_cost"),
            "persons_affected": to_fill(_persons_prompt(radius)),
            "member_states": to_fill(
                "the Member State(s) where it occurred: the report goes to their market "
                "surveillance authority"
            ),
        },
        "causes": {
            **({"root_cause": _root_cause(story)} if story is not None else {}),
            "suspected_changes": [
                {**change, "summary": suspect_summary(change)}
                for change in inc.get("suspected_changes") or ()
            ],
            "causal_link": to_fill(
                "the causal link between the AI system and the harm, or what the "
                "investigation still has to establish"
            ),
        },
        "corrective_actions": {
            "taken": corrective_actions(record),
            "current_routing": current_routing(flag),
            "further_measures": to_fill("measures planned to prevent a recurrence, with dates"),
            "evidence_preserved": to_fill(
                "confirm the version in service, its inputs and logs are kept unaltered "
                "for the investigation (Article 73(6))"
            ),
        },
        "deadline": _known(
            reporting_deadline(inc, as_of),
            "riskstream did not mark this a potential serious incident (see the config's "
            "regulation section): decide whether Article 73 applies, and by when",
        ),
    }
    report["to_fill"] = placeholders(report)
    return report


def _persons_prompt(radius: Mapping[str, Any]) -> str:
    """What to ask about people: seeded with the users the monitor counted, if it did."""
    users = radius.get("affected_users")
    if users is None:
        return (
            "how many people were affected: the affected events are predictions or "
            "answers, not yet people"
        )
    bound = "at least " if radius.get("affected_users_is_lower_bound") else ""
    return (
        f"how many people were affected: riskstream counted {bound}{users} distinct users "
        "between the estimated onset and detection; confirm who was harmed"
    )


def _root_cause(story: Story) -> dict[str, Any]:
    """The story's root, with the changes nearest its onset (the system's own are below)."""
    root = story.records.get(story.root_id)
    changes = root.incident.get("suspected_changes") or () if root is not None else ()
    return {
        "incident_id": story.root_id,
        "subject": story.data.get("root_subject"),
        "what": headline(root.incident) if root is not None else story.members[0]["type"],
        "onset_estimated": story.members[0]["onset_at"],
        "why_root": story.data.get("why"),
        "suspected_changes": [{**c, "summary": suspect_summary(c)} for c in changes],
    }
