"""An incident in words, for the person paged at 3 a.m.

Every notification shape carries the same text: a one-line headline (what,
where, how bad, how much it moved) and a few detail lines in the order a
responder asks — what changed, since when, what probably caused it, who is hit,
and whether a regulator's clock is running.  Fields an incident lacks are left
out rather than shown empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from riskstream.core.timeutil import parse_time

__all__ = ["change_text", "details", "headline", "human_duration", "human_time", "no_reference"]

MAX_SUSPECTS_SHOWN = 1


def human_time(text: object) -> str:
    """An RFC 3339 time as a responder reads it, in UTC.

    >>> human_time("2026-11-26T11:00:00.250+01:00")
    '2026-11-26 10:00:00 UTC'
    """
    try:
        at = datetime.fromtimestamp(parse_time(str(text)), UTC)
    except (ValueError, OverflowError, OSError):  # beyond the calendar: as it was written
        return str(text)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def human_duration(seconds: float) -> str:
    """A lag in the unit a person thinks in.

    >>> [human_duration(s) for s in (42, 600, 9000, 86400 * 15)]
    ['42 s', '10 min', '2.5 h', '15.0 days']
    """
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 2 * 86_400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86_400:.1f} days"


def _num(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}"


def no_reference(evidence: Mapping[str, Any]) -> bool:
    """Whether the evidence's ``before`` window is empty: a rule with no warm-up learns
    no reference, and the mean it carries (the schema requires one) means nothing."""
    before = evidence.get("before")
    return isinstance(before, Mapping) and before.get("count") == 0


def change_text(evidence: Mapping[str, Any]) -> str | None:
    """``safety.harmful 0.012 → 0.081``, or None when the evidence has no means.

    With no reference window, only where the value is now:

    >>> change_text({"value": "prediction.score", "before": {"count": 0, "mean": 0.0},
    ...              "after": {"count": 30, "mean": 0.021}})
    'prediction.score at 0.021 (no reference before)'
    """
    before, after = evidence.get("before"), evidence.get("after")
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return None
    if "mean" not in before or "mean" not in after:
        return None
    value = evidence.get("value") or "value"
    if no_reference(evidence):
        return f"{value} at {_num(after['mean'])} (no reference before)"
    return f"{value} {_num(before['mean'])} → {_num(after['mean'])}"


def headline(incident: Mapping[str, Any], event: str) -> str:
    """One line: ``[CRITICAL] safety on chatbot: safety.harmful 0.01 → 0.08 (monitor m)``."""
    prefix = {"resolved": "RESOLVED ", "updated": "UPDATED "}.get(event, "")
    text = (
        f"{prefix}[{str(incident.get('severity', '?')).upper()}] "
        f"{incident.get('type', 'incident')} on {incident.get('subject', '?')}"
    )
    evidence = incident.get("evidence")
    change = change_text(evidence) if isinstance(evidence, Mapping) else None
    gap = evidence.get("group_gap") if isinstance(evidence, Mapping) else None
    if isinstance(gap, Mapping) and "group" in gap:
        change = f"group {gap['group']} at {_num(gap.get('rate'))} vs {_num(gap.get('rest_rate'))}"
    if change:
        text += f": {change}"
    return text + f" (monitor {incident.get('monitor', '?')})"


def details(incident: Mapping[str, Any], event: str) -> list[str]:
    """The lines under the headline, most urgent first."""
    lines: list[str] = []
    if event == "resolved":
        lines.append("Status: resolved — no action needed unless it comes back.")
    elif (status := incident.get("status")) and status != "open":
        lines.append(f"Status: {status}")
    lines.append(
        f"What: {incident.get('type')} incident on {incident.get('subject')}, "
        f"monitor {incident.get('monitor')}, stream {incident.get('stream_key')}"
    )
    evidence = incident.get("evidence")
    if isinstance(evidence, Mapping):
        lines.extend(_evidence_lines(evidence))
    onset, detected = incident.get("onset_at"), incident.get("detected_at")
    if onset and detected:
        try:
            lag = f" ({human_duration(parse_time(detected) - parse_time(onset))} after onset)"
        except ValueError:
            lag = ""
        lines.append(f"Since: onset ~{human_time(onset)}; detected {human_time(detected)}{lag}")
    suspects = incident.get("suspected_changes")
    if isinstance(suspects, list) and suspects:
        lines.append(_suspect_line(suspects))
    radius = incident.get("blast_radius")
    if isinstance(radius, Mapping) and (line := _radius_line(radius)):
        lines.append(line)
    regulatory = incident.get("regulatory")
    if isinstance(regulatory, Mapping) and regulatory:
        lines.append(_regulatory_line(regulatory))
    actions = incident.get("actions")
    if isinstance(actions, list) and actions:
        shown = [f"{a.get('kind')} {a.get('status')}" for a in actions if isinstance(a, Mapping)]
        lines.append("Actions: " + ", ".join(shown))
    if incident.get("parent_id"):
        lines.append(f"Part of a cascade: parent incident {incident['parent_id']}")
    lines.append(f"Incident id: {incident.get('incident_id')}")
    return lines


def _evidence_lines(evidence: Mapping[str, Any]) -> list[str]:
    lines = []
    if change := change_text(evidence):
        before, after = evidence["before"], evidence["after"]
        counts = (
            f"mean over {after.get('count', '?')} samples"
            if no_reference(evidence)
            else f"mean over {before.get('count', '?')} samples before, "
            f"{after.get('count', '?')} after"
        )
        line = f"Changed: {change} ({counts}; detector {evidence.get('detector', '?')})"
        if evidence.get("statistic") is not None and evidence.get("threshold") is not None:
            line += f"; statistic {_num(evidence['statistic'])} > {_num(evidence['threshold'])}"
        lines.append(line)
    gap = evidence.get("group_gap")
    if isinstance(gap, Mapping) and "group" in gap:
        lines.append(
            f"Gap: group {gap['group']} at {_num(gap.get('rate'))} vs "
            f"{_num(gap.get('rest_rate'))} for everyone else (x{_num(gap.get('ratio'))})"
        )
    if summary := evidence.get("summary"):
        lines.append(f"Why: {summary}")
    return lines


def _suspect_line(suspects: list[Any]) -> str:
    top = suspects[0] if isinstance(suspects[0], Mapping) else {}
    what = " ".join(str(top[k]) for k in ("kind", "version") if top.get(k))
    line = f"Suspected change: {what or 'change'} on {top.get('subject', '?')}"
    if top.get("actor"):
        line += f" by {top['actor']}"
    if top.get("time"):
        line += f" at {human_time(top['time'])}"
    lead = top.get("lead_seconds")
    if isinstance(lead, int | float) and not isinstance(lead, bool):
        line += f", {human_duration(lead)} {'before' if lead >= 0 else 'after'} onset"
    if top.get("event_id"):
        line += f" (change {top['event_id']})"
    if len(suspects) > MAX_SUSPECTS_SHOWN:
        line += f"; {len(suspects) - MAX_SUSPECTS_SHOWN} more listed in the incident"
    return line


def _radius_line(radius: Mapping[str, Any]) -> str | None:
    parts = []
    if "affected_users" in radius:
        parts.append(f"{radius['affected_users']} users")
    if "affected_events" in radius:
        parts.append(f"{radius['affected_events']} events since onset")
    downstream = radius.get("downstream")
    if isinstance(downstream, list) and downstream:
        parts.append("downstream: " + ", ".join(str(d) for d in downstream[:10]))
        if len(downstream) > 10:
            parts[-1] += f" and {len(downstream) - 10} more"
    cost = radius.get("estimated_cost")
    if isinstance(cost, Mapping) and isinstance(amount := cost.get("amount"), int | float):
        parts.append(f"estimated cost {amount:,.0f} {cost.get('currency', '')}".rstrip())
    return "Blast radius: " + "; ".join(parts) if parts else None


def _regulatory_line(regulatory: Mapping[str, Any]) -> str:
    framework = regulatory.get("framework", "regulation")
    article = f" Art. {regulatory['article']}" if regulatory.get("article") else ""
    line = f"Regulatory: {framework}{article}"
    if regulatory.get("potential_serious_incident"):
        line += " potential serious incident"
    if regulatory.get("report_deadline"):
        line += f"; report due {human_time(regulatory['report_deadline'])}"
    if regulatory.get("human_approval_required"):
        line += "; containment waits for a named human's approval"
    return line
