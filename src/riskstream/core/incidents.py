"""Turn findings into incident records: the contract downstream systems read."""

from __future__ import annotations

from typing import Any

from riskstream.core.monitors import Finding
from riskstream.core.timeutil import format_time

__all__ = ["INCIDENT_OPENED", "INCIDENT_RESOLVED", "INCIDENT_UPDATED", "incident_from_finding"]

# The CloudEvent types on the incidents topic.
INCIDENT_OPENED = "io.riskstream.incident.opened"
INCIDENT_UPDATED = "io.riskstream.incident.updated"  # a later alarm of the same episode
INCIDENT_RESOLVED = "io.riskstream.incident.resolved"  # a person resolved it


def incident_from_finding(finding: Finding) -> dict[str, Any]:
    """The incident's data as plain JSON-ready values (see schemas/incident.schema.json).

    The id is the finding's deterministic id, so a replay after a crash re-emits
    the same incident id and subscribers can de-duplicate.
    """
    a = finding.alarm
    spec = finding.monitor
    return {
        "incident_id": finding.finding_id,
        "type": spec.incident_type,
        "severity": spec.severity,
        "status": "open",
        "subject": finding.subject,
        "monitor": spec.name,
        "stream_key": finding.stream_key,
        "detected_at": format_time(a.detected_at),
        "onset_at": format_time(a.onset_at),
        "evidence": {
            "detector": spec.detector,
            "params": dict(spec.params),
            "value": spec.value.path,
            "before": {
                "count": a.reference.count,
                "mean": a.reference.mean,
                "std": a.reference_std,
            },
            "after": {"count": a.after.count, "mean": a.after.mean},
            "samples": a.index,
            "onset_sample": a.onset,
            "delay_samples": a.index - a.onset + 1,
            **(
                {
                    "onset_interval": {
                        "from": format_time(a.onset_range[0]),
                        "to": format_time(a.onset_range[1]),
                    },
                    "statistic": a.alarm.statistic,
                    "threshold": a.alarm.threshold,
                }
                if a.onset_range is not None
                else {}
            ),
            **({"group_gap": finding.detail} if finding.detail else {}),
            **({"episode": finding.episode} if finding.episode else {}),
            **({"fdr": finding.fdr} if finding.fdr else {}),
            **({"stream_limit": finding.limit} if finding.limit else {}),
        },
        **_reach(finding),
    }


def _reach(finding: Finding) -> dict[str, Any]:
    if finding.users is None:
        return {}
    users, complete = finding.users
    radius: dict[str, Any] = {"affected_users": users}
    if not complete:
        radius["affected_users_is_lower_bound"] = True
    return {"blast_radius": radius}
