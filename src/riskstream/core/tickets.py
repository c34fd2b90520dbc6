"""Incidents as tickets: what a ticket says and which of its comments are still owed.

Pure rules, no I/O; :mod:`riskstream.services.ticketer` carries them out against
Jira, GitHub Issues or ServiceNow.  One ticket per incident *group* (see
:func:`riskstream.core.incident_records.correlate`): the group's first incident
opens it, every later timeline entry of any incident of the group (an update,
a containment action, an approval or rejection, an acknowledgement, a
resolution, a related incident joining) becomes one comment, and the ticket is
closed once every incident of the group is resolved.

What makes it safe to repeat (a restart, a redelivery, a lost answer):

- the ticket carries the group's external id (:func:`external_id`: a Jira or
  GitHub label, ServiceNow's ``correlation_id``), and the ticketer looks for it
  before it creates one, so a create whose answer was lost is found, not redone;
- every comment ends with a marker line (:func:`marker`) naming the incident and
  the timeline entry, and the ticketer reads the markers already on a ticket
  before it posts again after any failure, so a comment is never posted twice;
- what was posted is recorded on each incident record (``record.tickets``), which
  is also where the API, the CLI and the reports find the ticket's key and link.

A ticket a *person* closes resolves nothing unless ``tickets.resolve_on_close`` is
set; then the group's incidents that were open when the close was seen are resolved
as an operator's resolve would, in the closer's name (:func:`closure_actor`).  The
close is noted on the lead's record first (:func:`with_person_closed`), so a restart
finishes the same resolution rather than asking again.  riskstream's own close can
never start one: it closes only a group whose incidents are all resolved, and a
resolved incident stays resolved (a new related incident starts a new group).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from riskstream.core.actors import is_reserved
from riskstream.core.incident_records import SEVERITY_RANK, IncidentRecord, TimelineEntry
from riskstream.core.incident_text import details, headline
from riskstream.core.notifications import incident_link
from riskstream.core.timeutil import format_time

__all__ = [
    "TICKET_KINDS",
    "TicketClosure",
    "TicketDraft",
    "TicketRef",
    "TicketSettings",
    "TicketSystemSpec",
    "closure_actor",
    "closure_note",
    "comment_text",
    "draft",
    "external_id",
    "marker",
    "markers_in",
    "owed_comments",
    "person_closed",
    "ticket_of",
    "wanted",
    "with_closed",
    "with_person_closed",
    "with_posted",
    "with_ticket",
]

TICKET_KINDS = ("jira", "github", "servicenow")
TicketKind = Literal["jira", "github", "servicenow"]

# Timeline entries that the ticket's description already tells.
_IN_DESCRIPTION = frozenset({"onset", "detected"})
_MARKER = "riskstream-ref: {incident}/{key}"
_MARKER_RE = re.compile(r"riskstream-ref: (\S+)")
_WHO_MAX = 120


@dataclass(frozen=True, slots=True)
class TicketSystemSpec:
    """One ticket system from the config's ``tickets.systems``; secrets are env var names."""

    name: str
    kind: str  # one of TICKET_KINDS
    url: str  # Jira site, GitHub API root, ServiceNow instance
    project: str | None = None  # jira: the project key
    issue_type: str = "Task"  # jira
    repo: str | None = None  # github: owner/name
    labels: tuple[str, ...] = ()  # jira and github: added to every ticket
    user_env: str | None = None  # jira: the account's e-mail; servicenow: the user
    token_env: str | None = None  # jira: API token; github: token; servicenow: password
    close_code: str = "Solution provided"  # servicenow: close_code when resolving
    done_status: str | None = None  # jira: the transition's target status; default: a "done" one
    timeout_s: float = 10.0
    origin: str = ""  # file:line, for messages


@dataclass(frozen=True, slots=True)
class TicketSettings:
    """The ``tickets:`` section: where tickets go and how often the ticketer looks."""

    systems: tuple[TicketSystemSpec, ...] = ()
    min_severity: str = "warning"
    interval_s: float = 5.0  # between scans of the incident records
    scan_limit: int = 500  # the most recent records each scan reads
    initial_backoff_s: float = 1.0  # a system that failed waits this, doubling…
    max_backoff_s: float = 300.0  # …up to this (a Retry-After overrides both)
    console_url: str | None = None
    group_labels: bool = True  # jira/github: also label the ticket with the external id
    resolve_on_close: bool = False  # a person closing the ticket resolves its group
    close_check_interval_s: float = 60.0  # how often open groups' tickets are looked at


@dataclass(frozen=True, slots=True)
class TicketRef:
    """Where a ticket is: its human key (``OPS-12``, ``#7``, ``INC0010001``), its link,
    and the id its API wants (Jira's key, GitHub's number, ServiceNow's ``sys_id``)."""

    key: str
    url: str
    id: str


@dataclass(frozen=True, slots=True)
class TicketClosure:
    """A ticket found closed: the state it is in and, where its API says, who closed it
    and when (as the system wrote it)."""

    state: str
    by: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """A new ticket: what every system is asked to create."""

    external_id: str
    title: str
    body: str
    severity: str
    labels: tuple[str, ...] = field(default_factory=tuple)


def external_id(group: str) -> str:
    """The id a group's ticket is found by: label-safe (no spaces), stable.

    >>> external_id("inc-7f3a 2")
    'riskstream-inc-7f3a_2'
    """
    return "riskstream-" + re.sub(r"[^A-Za-z0-9_.:-]", "_", group)


def marker(incident_id: str, key: str) -> str:
    """The last line of a comment, naming what it tells.

    >>> marker("inc-1", "decision:a-9")
    'riskstream-ref: inc-1/decision:a-9'
    """
    return _MARKER.format(incident=incident_id, key=key)


def markers_in(texts: Iterable[str]) -> set[str]:
    """The markers found in comment texts (whatever a system did to the whitespace).

    >>> sorted(markers_in(["hi\\nriskstream-ref: inc-1/updated:2", "riskstream-ref: a/b x"]))
    ['riskstream-ref: a/b', 'riskstream-ref: inc-1/updated:2']
    """
    return {f"riskstream-ref: {m}" for text in texts for m in _MARKER_RE.findall(text)}


def wanted(records: Sequence[IncidentRecord], settings: TicketSettings) -> bool:
    """Does this group deserve a ticket?  Its most severe incident decides."""
    floor = SEVERITY_RANK.get(settings.min_severity, 0)
    return any(SEVERITY_RANK.get(r.severity, 0) >= floor for r in records)


def draft(
    lead: IncidentRecord, settings: TicketSettings, extra_labels: Sequence[str]
) -> TicketDraft:
    """The new ticket for the group that ``lead`` opened."""
    incident = lead.incident
    lines = [*details(incident, "opened"), "", f"riskstream incident: {lead.incident_id}"]
    if link := incident_link(settings.console_url, lead.incident_id):
        lines.append(f"console: {link}")
    ext = external_id(lead.group)
    lines.append(f"riskstream-group: {ext}")
    labels = (*extra_labels, ext) if settings.group_labels else tuple(extra_labels)
    return TicketDraft(ext, headline(incident, "opened"), "\n".join(lines), lead.severity, labels)


def owed_comments(record: IncidentRecord, system: str) -> list[TimelineEntry]:
    """The record's timeline entries not yet posted to ``system``, in order."""
    posted = set(ticket_of(record, system).get("posted", ()))
    return [e for e in record.timeline if e.kind not in _IN_DESCRIPTION and e.key not in posted]


def comment_text(record: IncidentRecord, entry: TimelineEntry, lead_id: str) -> str:
    """One timeline entry as a comment, ending with its marker.

    >>> r = IncidentRecord({"incident_id": "i-2", "subject": "bot"}, 0.0)
    >>> print(comment_text(r, TimelineEntry(0.0, "approved", "dr.okafor", "rollback approved",
    ...                                     "decision:a1"), "i-1"))
    approved by dr.okafor at 1970-01-01T00:00:00.000Z (incident i-2 on bot): rollback approved
    riskstream-ref: i-2/decision:a1
    """
    about = (
        ""
        if record.incident_id == lead_id
        else f" (incident {record.incident_id} on {record.subject})"
    )
    head = f"{entry.kind} by {entry.actor} at {format_time(entry.at)}{about}: {entry.detail}"
    return f"{head}\n{marker(record.incident_id, entry.key)}"


def ticket_of(record: IncidentRecord, system: str) -> Mapping[str, Any]:
    """What ``record`` knows of its ticket in ``system`` (empty: nothing yet)."""
    return record.tickets.get(system, {})


def with_ticket(record: IncidentRecord, system: str, ref: TicketRef) -> IncidentRecord:
    """The record carrying the ticket's key and link (what was posted is kept)."""
    old = dict(ticket_of(record, system))
    new = {**old, "key": ref.key, "url": ref.url, "id": ref.id}
    new.setdefault("posted", [])
    if new == old:
        return record
    return replace(record, tickets={**record.tickets, system: new})


def with_posted(record: IncidentRecord, system: str, keys: Iterable[str]) -> IncidentRecord:
    """The record with ``keys`` (timeline entry keys) noted as posted to ``system``."""
    old = dict(ticket_of(record, system))
    posted = list(old.get("posted", ()))
    fresh = [k for k in keys if k not in posted]
    if not fresh:
        return record
    return replace(record, tickets={**record.tickets, system: {**old, "posted": posted + fresh}})


def with_closed(record: IncidentRecord, system: str) -> IncidentRecord:
    old = dict(ticket_of(record, system))
    if old.get("closed"):
        return record
    return replace(record, tickets={**record.tickets, system: {**old, "closed": True}})


def _who(closure: TicketClosure) -> str:
    text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in closure.by or "")
    who = " ".join(text.split())[:_WHO_MAX]
    if is_reserved(who):
        who = f"user {who}"  # riskstream's own names are reserved for its processes
    return who


def closure_actor(system: str, ticket_key: str, closure: TicketClosure) -> str:
    """Who resolves the group: the closer as the system names them, and the ticket;
    printable, and never one of riskstream's own reserved names.

    >>> closure_actor("jira", "OPS-7", TicketClosure("Done", "Ana Lima\\n"))
    'Ana Lima (jira OPS-7)'
    >>> closure_actor("github", "#3", TicketClosure("closed", "riskstream/bot"))
    'user riskstream/bot (github #3)'
    >>> closure_actor("github", "#3", TicketClosure("closed"))
    'someone (github #3)'
    """
    return f"{_who(closure) or 'someone'} ({system} {ticket_key})"


def closure_note(system: str, ticket: TicketRef, closure: TicketClosure) -> str:
    """The resolution's note (on the timeline and in the audit trail).

    >>> closure_note("servicenow", TicketRef("INC1", "", "ab"), TicketClosure("Closed", "ana"))
    'servicenow ticket INC1 was closed (Closed) by ana; tickets.resolve_on_close is set'
    >>> closure_note("jira", TicketRef("OPS-1", "", "1"), TicketClosure("Do\\x1bne"))[:36]
    'jira ticket OPS-1 was closed (Do ne)'
    """
    who = _who(closure)
    by = f" by {who}" if who else ""
    at = f" at {closure.at}" if closure.at else ""
    link = f" ({ticket.url})" if ticket.url else ""
    note = (
        f"{system} ticket {ticket.key}{link} was closed ({closure.state}){by}{at}; "
        "tickets.resolve_on_close is set"
    )
    # the ticket system's text, printable: a note with a control character is refused
    return "".join(c if unicodedata.category(c)[0] != "C" else " " for c in note)[:2000]


def person_closed(record: IncidentRecord, system: str) -> Mapping[str, Any] | None:
    """The close by a person noted on the group's lead record, if any."""
    noted = ticket_of(record, system).get("person_closed")
    return noted if isinstance(noted, Mapping) else None


def with_person_closed(
    record: IncidentRecord, system: str, actor: str, note: str, resolves: Sequence[str]
) -> IncidentRecord:
    """The lead's record noting that a person closed the ticket, and which incidents
    (those open when it was seen) that resolves; riskstream will not close it again."""
    old = dict(ticket_of(record, system))
    if old.get("person_closed"):
        return record
    noted = {"actor": actor, "note": note, "resolves": list(resolves)}
    new = {**old, "closed": True, "person_closed": noted}
    return replace(record, tickets={**record.tickets, system: new})
