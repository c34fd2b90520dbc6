"""Facts read off an incident record, worded once for the CLI and both reports.

The CLI's ``incidents show``, the regulator's report and the post-mortem must not
disagree on what moved, when the deadline falls or what was done, so each of
those is derived here, from the record alone, with the time of reading passed
in (no clock in the core).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from riskstream.core.incident_records import IncidentRecord
from riskstream.core.incident_text import no_reference
from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import format_time, parse_time

__all__ = [
    "DAY",
    "TO_FILL",
    "corrective_actions",
    "current_routing",
    "evidence_summary",
    "is_to_fill",
    "placeholders",
    "reach_summary",
    "reporting_deadline",
    "suspect_summary",
    "ticket_links",
    "time_left",
    "to_fill",
    "version_at_onset",
    "walk_placeholders",
]

DAY = 86_400.0
TO_FILL = "to_fill"
"""The key of a placeholder: ``{"to_fill": "what a person must write here"}``."""

# Timeline kinds that are something done about the incident, not something observed.
_DONE = ("action", "approved", "rejected", "expired", "acknowledged", "resolved")


def to_fill(prompt: str) -> dict[str, str]:
    """A field only a person can fill: explicit, so a draft is never mistaken for a report."""
    return {TO_FILL: prompt}


def is_to_fill(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {TO_FILL}


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "?"


def evidence_summary(incident: Mapping[str, Any]) -> str:
    """What moved and by how much, in one sentence a person can check against the data.

    >>> evidence_summary({"evidence": {"detector": "adwin", "value": "missed",
    ...     "before": {"mean": 0.1, "count": 150}, "after": {"mean": 0.5, "count": 33},
    ...     "statistic": 31.5, "threshold": 30}}).split("; ")
    ['adwin on missed: mean 0.1 over 150 samples before, 0.5 over 33 since onset', \
'statistic 31.5 crossed 30']
    >>> evidence_summary({"evidence": {"detector": "stuck", "value": "prediction.score",
    ...     "before": {"mean": 0.0, "count": 0}, "after": {"mean": 0.021, "count": 30}}})
    'stuck on prediction.score: no reference window, mean 0.021 over 30 since onset'
    """
    ev = incident.get("evidence") or {}
    before, after = ev.get("before") or {}, ev.get("after") or {}
    since = f"{_num(after.get('mean'))} over {after.get('count', '?')} since onset"
    if no_reference(ev):  # a rule with no warm-up: the mean "before" is a placeholder
        was, since = "no reference window", "mean " + since
    else:
        was = f"mean {_num(before.get('mean'))} over {before.get('count', '?')} samples before"
    parts = [f"{ev.get('detector', '?')} on {ev.get('value') or 'the value'}: {was}, {since}"]
    statistic, threshold = ev.get("statistic"), ev.get("threshold")
    if isinstance(statistic, int | float) and isinstance(threshold, int | float):
        parts.append(f"statistic {_num(ev['statistic'])} crossed {_num(ev['threshold'])}")
    if ev.get("delay_samples") is not None:
        parts.append(f"{ev['delay_samples']} samples from onset to detection")
    if gap := ev.get("group_gap"):
        parts.append(
            f"group {gap.get('group')}: rate {_num(gap.get('rate'))} vs "
            f"{_num(gap.get('rest_rate'))} for the rest"
        )
    if ev.get("summary"):
        parts.append(str(ev["summary"]))
    return "; ".join(parts)


def suspect_summary(change: Mapping[str, Any]) -> str:
    """One suspected change: what, by whom, how long before the onset.

    >>> suspect_summary({"kind": "deploy", "subject": "m", "version": "v2",
    ...                  "actor": "ci", "lead_seconds": 5400})
    'deploy of m v2 by ci, 1.5 h before onset'
    """
    lead = change.get("lead_seconds")
    when = f", {lead / 3600:.1f} h before onset" if isinstance(lead, int | float) else ""
    version = f" {change['version']}" if change.get("version") else ""
    actor = f" by {change['actor']}" if change.get("actor") else ""
    return f"{change.get('kind')} of {change.get('subject')}{version}{actor}{when}"


def reach_summary(radius: Mapping[str, Any]) -> str:
    """How far it reaches: events, segments, downstream models, estimated cost."""
    parts = []
    if "affected_events" in radius:
        parts.append(f"{radius['affected_events']} events since onset")
    if radius.get("affected_users") is not None:
        parts.append(f"{radius['affected_users']} users")
    if segments := [s for s in radius.get("segments") or () if s]:
        parts.append(f"segments {', '.join(map(str, segments))}")
    if downstream := radius.get("downstream"):
        parts.append(f"downstream {', '.join(map(str, downstream))}")
    if cost := radius.get("estimated_cost"):
        parts.append(f"estimated cost {cost['amount']:,.2f} {cost['currency']}")
    return "; ".join(parts) or "not estimated"


def reporting_deadline(incident: Mapping[str, Any], as_of: float) -> dict[str, Any] | None:
    """The regulator's deadline and the days left at ``as_of`` (negative: overdue).

    ``None`` when the incident was not marked as a potential serious incident.

    >>> d = reporting_deadline({"regulatory": {"framework": "EU AI Act", "article": "73",
    ...     "report_within_days": 15, "report_deadline": "2026-12-21T00:00:00Z"}},
    ...     parse_time("2026-12-19T12:00:00Z"))
    >>> d["days_left"], d["overdue"]
    (1.5, False)
    """
    reg = incident.get("regulatory") or {}
    if not reg.get("report_deadline"):
        return None
    due = parse_time(str(reg["report_deadline"]))
    left = round((due - as_of) / DAY, 1)
    return {
        "framework": reg.get("framework", "EU AI Act"),
        "article": reg.get("article", "73"),
        "potential_serious_incident": bool(reg.get("potential_serious_incident", False)),
        "report_within_days": reg.get("report_within_days"),
        "report_deadline": format_time(due),
        "as_of": format_time(as_of),
        "days_left": left,
        "overdue": due < as_of,
    }


def time_left(deadline: Mapping[str, Any]) -> str:
    """How long is left before a :func:`reporting_deadline`, or how long it is overdue,
    in words: days, or hours within a day of it (a day rounded to one decimal would say
    "0 days left" with hours to go, or "OVERDUE by 0 days").

    >>> d = {"report_deadline": "2026-12-21T00:00:00Z", "as_of": "2026-12-20T23:00:00Z",
    ...      "days_left": 0.0, "overdue": False}
    >>> time_left(d), time_left(d | {"as_of": "2026-12-21T00:30:00Z", "overdue": True})
    ('1 h left', 'OVERDUE by 0.5 h')
    >>> time_left(d | {"as_of": "2026-12-18T12:00:00Z", "days_left": 2.5})
    '2.5 days left'
    """
    seconds = parse_time(str(deadline["report_deadline"])) - parse_time(str(deadline["as_of"]))
    if abs(seconds) < DAY:
        hours = round(abs(seconds) / 3600, 1)
        return f"OVERDUE by {hours:g} h" if deadline["overdue"] else f"{hours:g} h left"
    left = float(deadline["days_left"])
    return f"OVERDUE by {-left:g} days" if deadline["overdue"] else f"{left:g} days left"


def version_at_onset(incident: Mapping[str, Any]) -> str | None:
    """The version that served when it began: the subject's last deploy before the onset.

    Read from the suspected changes, so it is known only when a deploy event of the
    subject arrived within the look-back.
    """
    subject, onset = incident.get("subject"), incident.get("onset_at")
    if not onset:
        return None
    start = parse_time(str(onset))
    deploys = [
        (parse_time(str(c["time"])), str(c["version"]))
        for c in incident.get("suspected_changes") or ()
        if c.get("kind") == "deploy" and c.get("subject") == subject and c.get("version")
    ]
    before = [d for d in deploys if d[0] <= start]
    return max(before)[1] if before else None


def corrective_actions(record: IncidentRecord) -> list[dict[str, Any]]:
    """What was done about it, in the order it was recorded: containment, decisions, people."""
    return [
        {"at": format_time(e.at), "kind": e.kind, "by": e.actor, "what": e.detail}
        for e in record.timeline
        if e.kind in _DONE
    ]


def current_routing(flag: RoutingFlag | None) -> dict[str, Any] | None:
    """How the model is served now: the end state of the corrective actions."""
    if flag is None:
        return None
    return {
        "version": flag.active_version,
        "mode": flag.mode,
        "traffic_fraction": flag.traffic_fraction,
        "set_by": flag.actor,
        "since": format_time(flag.updated_at),
        "reason": flag.reason,
    }


def placeholders(data: Any) -> list[str]:
    """The dotted paths of every placeholder: the checklist of what a person must write.

    >>> placeholders({"a": {"to_fill": "x"}, "b": [{"c": {"to_fill": "y"}}], "d": 1})
    ['a', 'b[0].c']
    """
    return [path for path, _ in walk_placeholders(data)]


def walk_placeholders(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, prompt) of every placeholder, in document order."""
    if is_to_fill(data):
        yield path, str(data[TO_FILL])
    elif isinstance(data, Mapping):
        for k, v in data.items():
            yield from walk_placeholders(v, f"{path}.{k}".lstrip("."))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from walk_placeholders(v, f"{path}[{i}]")


def ticket_links(record: IncidentRecord) -> list[dict[str, str]]:
    """The tickets that track the incident's group, for a reader to follow.

    >>> r = IncidentRecord({"incident_id": "i"}, 0.0,
    ...                    tickets={"jira": {"key": "OPS-1", "url": "https://x/browse/OPS-1"}})
    >>> ticket_links(r)
    [{'system': 'jira', 'key': 'OPS-1', 'url': 'https://x/browse/OPS-1'}]
    """
    return [
        {"system": system, "key": str(t["key"]), "url": str(t.get("url", ""))}
        for system, t in sorted(record.tickets.items())
        if t.get("key")
    ]
