"""An incident as the people handling it see it: the latest event plus what was done.

The incidents topic carries what the detectors found; an operator also needs to
know who acknowledged it, what containment did, what was approved, and when it
was resolved.  An :class:`IncidentRecord` folds all of that into one document
with a timeline, so the API, the console, the CLI and the reports read one thing.

Every fold is idempotent: a timeline entry carries a ``key`` and an entry whose
key is already there is not added again, so a redelivered incident or a retried
write leaves the record as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from riskstream.core.enrichment import downstream_of, upstream_of
from riskstream.core.incident_checks import incident_problem
from riskstream.core.incident_text import change_text
from riskstream.core.stories import MAX_MEMBERS, join_story
from riskstream.core.timeutil import parse_time
from riskstream.errors import InputError

__all__ = [
    "DETECTION_ACTOR",
    "SEVERITY_RANK",
    "Correlation",
    "IncidentFilter",
    "IncidentRecord",
    "TimelineEntry",
    "acknowledge",
    "correlate",
    "headline",
    "join_group",
    "merge_suspects",
    "note_action",
    "record_incident",
    "record_problem",
    "resolve",
    "with_entry",
]

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
DETECTION_ACTOR = "riskstream/detection"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float  # epoch seconds; data time for onset/detection, wall time for people
    kind: str  # onset, detected, updated, action, approved, rejected, acknowledged, resolved…
    actor: str
    detail: str
    key: str  # de-duplicates redelivered events

    def to_data(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "detail": self.detail,
            "key": self.key,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TimelineEntry:
        return cls(
            float(data["at"]),
            str(data["kind"]),
            str(data["actor"]),
            str(data["detail"]),
            str(data["key"]),
        )


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    incident: Mapping[str, Any]  # the latest incident data (schemas/incident.schema.json)
    received_at: float
    status: str = "open"  # open → contained → resolved
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    group_id: str | None = None  # the first incident of its correlated group (None: itself)
    # the group's ticket per ticket system: key, url, id, posted, closed (core/tickets.py)
    tickets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # on the group's first incident: the story, root first (core/stories.py; None: alone)
    story: Mapping[str, Any] | None = None
    # resolved, but its resolution not yet published (a retry of resolve completes it)
    unpublished: bool = False

    @property
    def incident_id(self) -> str:
        return str(self.incident["incident_id"])

    @property
    def severity(self) -> str:
        return str(self.incident.get("severity", "info"))

    @property
    def subject(self) -> str:
        return str(self.incident.get("subject", ""))

    @property
    def detected_at(self) -> float:
        return _time(self.incident, "detected_at", self.received_at)

    def to_data(self) -> dict[str, Any]:
        return {
            "incident": dict(self.incident),
            "received_at": self.received_at,
            "status": self.status,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
            "timeline": [entry.to_data() for entry in self.timeline],
            "group_id": self.group_id,
            **({"tickets": {k: dict(v) for k, v in self.tickets.items()}} if self.tickets else {}),
            **({"story": dict(self.story)} if self.story else {}),
            **({"unpublished": True} if self.unpublished else {}),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> IncidentRecord:
        """The record :meth:`to_data` wrote; ``ValueError`` saying which field is wrong
        (:func:`record_problem`) for anything else, so no reader fails on it later."""
        problem = record_problem(data)
        if problem is not None:
            raise ValueError(problem)
        return cls(
            incident=dict(data["incident"]),
            received_at=float(data["received_at"]),
            status=str(data["status"]),
            acknowledged_by=data.get("acknowledged_by"),
            acknowledged_at=data.get("acknowledged_at"),
            resolved_by=data.get("resolved_by"),
            resolved_at=data.get("resolved_at"),
            timeline=tuple(TimelineEntry.from_data(e) for e in data.get("timeline", ())),
            group_id=data.get("group_id"),
            tickets=dict(data.get("tickets") or {}),
            story=data.get("story") or None,
            unpublished=bool(data.get("unpublished", False)),
        )

    @property
    def group(self) -> str:
        """The id of the group's first incident: this one's own id if it leads."""
        return self.group_id or self.incident_id


_STORY_MEMBER = ("incident_id", "role", "subject", "type", "onset_at", "detected_at")


def record_problem(data: Any) -> str | None:
    """What is wrong with ``data`` as a stored record (:meth:`IncidentRecord.to_data`),
    or ``None``: every field the API, the console and the reports read, with the type
    they read it as; the incident itself as the containment worker checks it on intake.

    >>> record_problem({"incident": {"incident_id": "i"}, "received_at": 1.0, "status": "open"})
    >>> record_problem({"incident": {"incident_id": "i"}, "received_at": 1.0,
    ...                 "status": "open", "acknowledged_at": "yesterday"})
    "field 'acknowledged_at' must be epoch seconds (a number) or null, got 'yesterday'"
    """
    if not isinstance(data, Mapping):
        return f"expected a JSON object, got {type(data).__name__}"
    if "incident" not in data:
        return "field 'incident' (the incident's data) is missing"
    problem = incident_problem(data["incident"])
    if problem is not None:
        return f"in 'incident': {problem}"
    for name in ("received_at", "acknowledged_at", "resolved_at"):
        value = data.get(name)
        if value is None and name != "received_at":
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            null = "" if name == "received_at" else " or null"
            return f"field {name!r} must be epoch seconds (a number){null}, got {value!r:.80}"
    if not isinstance(data.get("status"), str):
        return f"field 'status' must be a string, got {data.get('status')!r:.80}"
    for name in ("acknowledged_by", "resolved_by", "group_id"):
        if data.get(name) is not None and not isinstance(data[name], str):
            return f"field {name!r} must be a string or null, got {data[name]!r:.80}"
    timeline = data.get("timeline", [])
    if not isinstance(timeline, list):
        return f"field 'timeline' must be a list, got {timeline!r:.80}"
    for i, entry in enumerate(timeline):
        at = entry.get("at") if isinstance(entry, Mapping) else None
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            return f"field 'timeline[{i}].at' must be epoch seconds (a number), got {entry!r:.80}"
        for name in ("kind", "actor", "detail", "key"):
            if not isinstance(entry.get(name), str):
                return f"field 'timeline[{i}].{name}' must be a string, got {entry.get(name)!r:.80}"
    tickets = data.get("tickets") or {}
    if not isinstance(tickets, Mapping) or not all(
        isinstance(t, Mapping) for t in tickets.values()
    ):
        return f"field 'tickets' must map ticket systems to objects, got {tickets!r:.80}"
    return _story_problem(data.get("story"))


def _story_problem(story: Any) -> str | None:
    if not story:
        return None
    if not isinstance(story, Mapping) or not isinstance(story.get("root"), str):
        return f"field 'story' must be an object naming its 'root' incident, got {story!r:.80}"
    members = story.get("members") or []
    if not isinstance(members, list):
        return f"field 'story.members' must be a list, got {members!r:.80}"
    for i, member in enumerate(members):
        if not isinstance(member, Mapping):
            return f"field 'story.members[{i}]' must be an object, got {member!r:.80}"
        for name in _STORY_MEMBER:
            value = member.get(name)
            if not isinstance(value, str):
                return f"field 'story.members[{i}].{name}' must be a string, got {value!r:.80}"
    return None


def headline(incident: Mapping[str, Any]) -> str:
    """One line a person can act on: what, where, and how much it moved.

    >>> headline({"severity": "critical", "type": "fairness", "subject": "bot",
    ...           "stream_key": "bot|group-c", "evidence": {"value": "harmful",
    ...           "before": {"mean": 0.01}, "after": {"mean": 0.04}}})
    'critical fairness on bot|group-c: harmful 0.01 → 0.04'
    """
    if incident.get("summary"):
        return str(incident["summary"])
    evidence = incident.get("evidence")
    moved = change_text(evidence) if isinstance(evidence, Mapping) else None
    where = incident.get("stream_key") or incident.get("subject")
    return f"{incident.get('severity')} {incident.get('type')} on {where}" + (
        f": {moved}" if moved else ""
    )


def record_incident(
    record: IncidentRecord | None,
    incident: Mapping[str, Any],
    at: float,
    group_id: str | None = None,
) -> IncidentRecord:
    """Fold one incident event (opened, updated or resolved) into its record.

    ``group_id`` (see :func:`correlate`) is kept only when the record is new.
    """
    if record is None:
        onset, detected = (_time(incident, k, at) for k in ("onset_at", "detected_at"))
        record = IncidentRecord(incident=dict(incident), received_at=at, group_id=group_id)
        record = with_entry(record, onset, "onset", DETECTION_ACTOR, "estimated onset", "onset")
        record = with_entry(
            record, detected, "detected", DETECTION_ACTOR, headline(incident), "detected"
        )
    elif _without_status(incident) != _without_status(record.incident) and (
        incident.get("status") != "resolved"
    ):
        alarms = ((incident.get("evidence") or {}).get("episode") or {}).get("alarms")
        detail = f"evidence grew: {alarms} alarms in this episode" if alarms else "updated"
        had = record.incident.get("suspected_changes") or []
        suspects, late = merge_suspects(had, incident.get("suspected_changes") or [])
        keep = {"status": record.incident.get("status", "open")}
        if suspects or "suspected_changes" in incident:
            keep["suspected_changes"] = suspects
        new = {**incident, **keep}
        if _without_status(new) != _without_status(record.incident):
            record = replace(record, incident=new)
            if not late or alarms:
                record = with_entry(
                    record, at, "updated", DETECTION_ACTOR, detail, f"updated:{alarms}"
                )
        for change in late:
            record = with_entry(
                record, at, "updated", DETECTION_ACTOR,
                f"suspected change listed as it arrived: {change_text_of(change)}",
                f"suspect:{change.get('event_id')}",
            )  # fmt: skip
    if incident.get("status") == "resolved" and record.status != "resolved":
        record = resolve(record, str(incident.get("resolved_by") or "riskstream"), at, "")
    return record


def merge_suspects(
    had: Sequence[Mapping[str, Any]], given: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every suspected change of either list once (by event id), nearest the onset
    first; and those ``given`` lists that ``had`` did not (listed late).

    An update never drops a suspect: one listed when its change event arrived after
    the incident (a backfill) stays listed when the detector's next update, made from
    a change log that has not seen it yet, does not name it.

    >>> a = {"event_id": "a", "lead_seconds": 600}
    >>> b = {"event_id": "b", "lead_seconds": -60}
    >>> merged, late = merge_suspects([a], [b, a])
    >>> [c["event_id"] for c in merged], [c["event_id"] for c in late]
    (['b', 'a'], ['b'])
    """
    seen = {str(c.get("event_id")) for c in had}
    late = []
    for change in given:
        if str(change.get("event_id")) not in seen:
            seen.add(str(change.get("event_id")))
            late.append(dict(change))
    merged = [dict(c) for c in had] + late

    def nearness(change: Mapping[str, Any]) -> tuple[float, float]:
        lead = change.get("lead_seconds")
        lead = float(lead) if isinstance(lead, int | float) else float("inf")
        return (abs(lead), -lead)

    merged.sort(key=nearness)
    return merged, late


def change_text_of(change: Mapping[str, Any]) -> str:
    """``deploy of chatbot bot-1.5 by ci (change c1)``: one suspect, for the timeline."""
    version = f" {change['version']}" if change.get("version") else ""
    actor = f" by {change['actor']}" if change.get("actor") else ""
    return (
        f"{change.get('kind')} of {change.get('subject')}{version}{actor} "
        f"(change {change.get('event_id')})"
    )


def join_group(
    lead: IncidentRecord,
    incident: Mapping[str, Any],
    at: float,
    lineage: Mapping[str, Sequence[str]],
) -> IncidentRecord:
    """The group's first record once ``incident`` joins it: the member on its
    timeline, and the story retold root first (:mod:`riskstream.core.stories`), with
    a timeline entry whenever the root changes.  Idempotent."""
    incident_id = str(incident["incident_id"])
    key = f"member:{incident_id}"
    if any(entry.key == key for entry in lead.timeline):
        pass  # a redelivered member: listed already, whatever the count is now
    elif sum(entry.kind == "correlated" for entry in lead.timeline) < MAX_MEMBERS:
        detail = f"related incident {incident_id}: {headline(incident)}"
        lead = with_entry(lead, at, "correlated", DETECTION_ACTOR, detail, key)
    else:  # a flood: the timeline (read and written whole at every join) stops growing
        detail = f"more than {MAX_MEMBERS} related incidents: the story counts the rest"
        lead = with_entry(lead, at, "correlated-more", DETECTION_ACTOR, detail, "members:more")
    story = join_story(lead.story, lead.incident, incident, lineage)
    if story == lead.story:
        return lead
    lead = replace(lead, story=story)
    root = story["members"][0]
    return with_entry(
        lead, at, "root", DETECTION_ACTOR,
        f"root cause: {root['type']} on {root['subject']}: {story['why']}",
        f"root:{story['root']}",
    )  # fmt: skip


def with_entry(
    record: IncidentRecord, at: float, kind: str, actor: str, detail: str, key: str
) -> IncidentRecord:
    """The record with one more timeline entry; unchanged if ``key`` is there already.

    Entries stay in the order they were recorded: onset and detection carry data
    time, people and containment wall time, and a replay makes the two far apart.
    """
    if any(entry.key == key for entry in record.timeline):
        return record
    entry = TimelineEntry(at, kind, actor, detail, key)
    return replace(record, timeline=(*record.timeline, entry))


def note_action(
    record: IncidentRecord, at: float, actor: str, what: str, outcome: str, key: str
) -> IncidentRecord:
    """A containment outcome on the timeline; the first one that took effect contains it."""
    record = with_entry(record, at, "action", actor, f"{what}: {outcome}", key)
    if record.status == "open" and outcome.split(":")[0] in ("applied", "duplicate"):
        record = replace(
            record, status="contained", incident={**record.incident, "status": "contained"}
        )
    return record


def acknowledge(record: IncidentRecord, by: str, at: float, note: str) -> IncidentRecord:
    """Someone has it: stops the page from re-firing; changes nothing else."""
    if record.acknowledged_by is not None:
        return record
    record = replace(record, acknowledged_by=by, acknowledged_at=at)
    return with_entry(record, at, "acknowledged", by, note or "acknowledged", "acknowledged")


def resolve(
    record: IncidentRecord, by: str, at: float, note: str, unpublished: bool = False
) -> IncidentRecord:
    """Resolved by ``by``; ``unpublished``: not yet on the incidents topic (a person's
    resolve, published after the record is written: see OperatorService.resolve)."""
    if record.status == "resolved":
        return record
    record = replace(
        record,
        status="resolved",
        resolved_by=by,
        resolved_at=at,
        incident={**record.incident, "status": "resolved"},
        unpublished=unpublished,
    )
    return with_entry(record, at, "resolved", by, note or "resolved", "resolved")


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    """Which incidents a list shows; every field left ``None`` matches all."""

    status: str | None = None
    min_severity: str | None = None
    subject: str | None = None
    type: str | None = None
    monitor: str | None = None
    acknowledged: bool | None = None

    def __post_init__(self) -> None:
        statuses = ("open", "contained", "resolved", "unresolved")
        if self.status is not None and self.status not in statuses:
            raise InputError(f"status {self.status!r}: use one of {', '.join(statuses)}")
        if self.min_severity is not None and self.min_severity not in SEVERITY_RANK:
            raise InputError(
                f"severity {self.min_severity!r}: use one of {', '.join(SEVERITY_RANK)}"
            )

    def matches(self, record: IncidentRecord) -> bool:
        incident = record.incident
        if self.status == "unresolved":
            if record.status == "resolved":
                return False
        elif self.status is not None and record.status != self.status:
            return False
        if self.min_severity is not None and (
            SEVERITY_RANK.get(record.severity, 0) < SEVERITY_RANK[self.min_severity]
        ):
            return False
        if self.acknowledged is not None and (record.acknowledged_by is not None) != (
            self.acknowledged
        ):
            return False
        return all(
            wanted is None or incident.get(name) == wanted
            for name, wanted in (
                ("subject", self.subject),
                ("type", self.type),
                ("monitor", self.monitor),
            )
        )


def _without_status(incident: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in incident.items() if k != "status"}


def _time(incident: Mapping[str, Any], key: str, default: float) -> float:
    """A time field of the incident; ``default`` where a partial incident lacks it."""
    value = incident.get(key)
    return parse_time(str(value)) if value else default


@dataclass(frozen=True, slots=True)
class Correlation:
    """When two incidents are one problem: close in time, on related subjects.

    Related means the same subject, one feeding the other (declared lineage), or
    a child incident and its parent.  Grouping does not stop containment (each
    model still gets its playbook); it tells the people reading the list that
    five alarms are one story, and which came first.
    """

    lineage: Mapping[str, Sequence[str]] = field(default_factory=dict)
    window_s: float = 3600.0

    def subjects(self, subject: str) -> set[str]:
        """The subjects whose incidents may be related to one on ``subject``."""
        lineage = self.lineage
        return {subject, *downstream_of(subject, lineage), *upstream_of(subject, lineage)}

    def related(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        if a.get("parent_id") == b.get("incident_id") or b.get("parent_id") == a.get("incident_id"):
            return True
        sa, sb = str(a.get("subject")), str(b.get("subject"))
        if sa == sb:
            return True
        return sb in downstream_of(sa, self.lineage) or sb in upstream_of(sa, self.lineage)


def correlate(
    incident: Mapping[str, Any], recent: Iterable[IncidentRecord], rules: Correlation
) -> str | None:
    """The group a new incident joins: that of the earliest unresolved related one.

    >>> old = record_incident(None, {"incident_id": "a", "subject": "m",
    ...     "detected_at": "2026-01-01T00:00:00Z", "onset_at": "2026-01-01T00:00:00Z"}, 0.0)
    >>> new = {"incident_id": "b", "subject": "m", "detected_at": "2026-01-01T00:20:00Z"}
    >>> correlate(new, [old], Correlation())
    'a'
    """
    if rules.window_s <= 0:
        return None
    detected = _time(incident, "detected_at", 0.0)
    found = [
        r
        for r in recent
        if r.incident_id != incident.get("incident_id")
        and r.status != "resolved"
        and abs(r.detected_at - detected) <= rules.window_s
        and rules.related(incident, r.incident)
    ]
    if not found:
        return None
    return min(found, key=lambda r: (r.detected_at, r.incident_id)).group
