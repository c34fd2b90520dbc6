"""What a person does about incidents, in one place for the API, the console and the CLI.

Every write names who did it: acknowledging and resolving go on the incident's
timeline and into the hash-chained audit trail; approvals and manual flag
changes go through the containment service, which audits them the same way.
Resolving also publishes the incident again with ``status: resolved``, so the
containment worker reverts what it did and notification receivers close the page.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from riskstream.codec import encode_cloudevent
from riskstream.core.actors import is_reserved
from riskstream.core.approvals import STATUSES, Member, PendingAction
from riskstream.core.audit import AuditEntry, AuditReport
from riskstream.core.incident_records import (
    IncidentFilter,
    IncidentRecord,
    acknowledge,
    resolve,
)
from riskstream.core.incidents import INCIDENT_RESOLVED
from riskstream.core.reports import Story, render
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.routing import MODES, RoutingFlag, model_id_problem
from riskstream.core.timeutil import format_time
from riskstream.errors import (
    BusError,
    ContainmentError,
    InputError,
    NotFoundError,
    StateStoreError,
)
from riskstream.ports import IncidentStore, Producer
from riskstream.services.containment import ContainmentService
from riskstream.services.incident_intake import incident_rejection

__all__ = [
    "ACTION_STATUSES",
    "INCIDENT_RESOLVED",
    "LINE_PATTERN",
    "NOTE_LONGEST",
    "PUBLISH_TIMEOUT_S",
    "SAID_PATTERN",
    "TEXT_PATTERN",
    "OperatorService",
    "Page",
    "check_actor",
    "check_fraction",
    "check_text",
    "filtered_window",
]

log = logging.getLogger(__name__)

NOTE_LONGEST = 2000  # characters of a note or a reason

SCANNED = 2000
"""The incidents a filtered page looks through after its cursor (and one more, to know
whether the list goes on): the most one request reads, whatever its ``limit`` (at most
1000 from the API; a larger one, from the CLI, looks through that many).  A window
that holds fewer than ``limit`` matches ends its page early, with ``next`` at the last
incident it looked at, so the next page looks on from there: a page may hold fewer
than ``limit`` (even none), and only the page whose window reached the oldest incident
says there is no next.  An unfiltered page reads just its ``limit`` and one more.
Reading and checking a record from Redis costs ~0.1 ms (2000: ~190 ms, on a shared
2-core machine); every list used to read max(10 x ``limit``, 2000): 10,000 records,
~1 s, at limit=1000, and 2000 for a page of 1 with no filter."""

PUBLISH_TIMEOUT_S = 5.0
"""How long a person's write waits for the broker to take its event.  A broker that
answers takes it within milliseconds (acks=all, linger 5 ms), and 5 s also covers a
partition leader moving to another broker.  Waiting longer (librdkafka's 30 s) changes
nothing in the answer (what was written stands; the event is not published yet), but
keeps the person waiting, and the API's write lock held, so that every other write
queues behind it.  The event stays queued and is retried for 5 minutes; doing the
write again publishes it again under the same id (subscribers de-duplicate)."""

ACTION_STATUSES = STATUSES

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of a list (incidents, actions, a grouped action's members, flags) and
    where the next one starts.

    ``next`` is the ``after`` of the next page, or ``None`` when the list has ended: a
    page that is exactly full may be the last, and a filtered incident page can hold
    fewer than its ``limit``, even none, while ``next`` is set (see SCANNED).  A reader
    follows ``next`` until it is ``None`` and never guesses from a page's length.
    """

    items: list[T]
    next: str | None


class OperatorService:
    """The acts a person may do (list, acknowledge, resolve, approve, set a flag, report),
    each recorded with who did it; the API, the console and the CLI all go through it."""

    def __init__(
        self,
        containment: ContainmentService,
        incidents: IncidentStore,
        producer: Producer,
        incidents_topic: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._containment = containment
        self._incidents = incidents
        self._producer = producer
        self._topic = incidents_topic
        self._clock = clock

    # -- incidents ------------------------------------------------------------------

    def incident_page(
        self, where: IncidentFilter | None = None, limit: int = 100, after: str | None = None
    ) -> Page[IncidentRecord]:
        """The latest incidents that match, most recently detected first, and the cursor
        of the next page; ``after`` (the ``next`` of the previous page) pages on.  A
        filtered page looks through SCANNED incidents after its cursor at most, so it
        may be short while a next page exists (a list, not an archive search)."""
        where = where or IncidentFilter()
        _check_limit(limit)
        if after is not None and self._incidents.get(after) is None:
            raise InputError(f"cursor {after!r} is no incident's id; start without one")
        if where == IncidentFilter():
            return _page(self._incidents.recent(limit + 1, after), limit, _incident_id)
        window = filtered_window(limit)
        scanned = self._incidents.recent(window + 1, after)
        matched = [r for r in scanned[:window] if where.matches(r)]
        if len(matched) > limit or len(scanned) <= window:
            return _page(matched, limit, _incident_id)
        # the window ran out before the list did: the next page looks on after it
        return Page(matched, scanned[window - 1].incident_id)

    def incident(self, incident_id: str) -> IncidentRecord:
        record = self._incidents.get(incident_id)
        if record is None:
            raise NotFoundError(
                f"no incident {incident_id!r}: list them with `riskstream incidents list`"
            )
        return record

    def acknowledge(self, incident_id: str, by: str, note: str = "") -> IncidentRecord:
        _check_note(note)
        record = self.incident(incident_id)
        if record.acknowledged_by is not None:
            return record
        at = self._clock()
        updated = self._update(incident_id, lambda r: acknowledge(r, _named(by), at, note))
        self._audit(updated, "incident.acknowledged", by, note)
        return updated

    def resolve(self, incident_id: str, by: str, note: str = "") -> IncidentRecord:
        """Close it, revert the actions marked ``revert_on_resolve``, tell subscribers.

        The record is written first, marked ``unpublished`` until the resolution is
        on the incidents topic: a retry after a crash in between completes the
        audit, the reverts and the publish (each idempotent: the audit entry and the
        revert are keyed, the CloudEvent's id is the same), instead of answering
        "already resolved" with subscribers never told."""
        _check_note(note)
        record = self.incident(incident_id)
        if record.status == "resolved" and not record.unpublished:
            return record
        by = _named(by)
        if record.status != "resolved":
            at = self._clock()
            record = self._update(incident_id, lambda r: resolve(r, by, at, note, True))
        if not record.unpublished:  # resolved and published by someone else meanwhile
            return record
        at = record.resolved_at if record.resolved_at is not None else self._clock()
        self._audit(record, "incident.resolved", record.resolved_by or by, note)
        resolved = {**record.incident, "status": "resolved"}
        try:
            self._containment.on_resolved(resolved)
            headers, value = encode_cloudevent(
                INCIDENT_RESOLVED, f"{incident_id}:resolved", format_time(at),
                record.subject, resolved,
            )  # fmt: skip
            self._producer.produce(self._topic, value, incident_id.encode(), headers)
            self._producer.flush()
        except BusError as exc:
            raise BusError(
                f"incident {incident_id} is resolved, but its resolution could not be "
                f"published ({exc}), so containment may not be reverted and subscribers "
                "are not told yet: resolve it again once the broker answers, which "
                "completes it",
                exc.code,
            ) from exc
        return self._update(incident_id, lambda r: replace(r, unpublished=False))

    # -- actions and flags -------------------------------------------------------

    def actions(
        self, status: str | None = "pending", incident_id: str | None = None
    ) -> list[PendingAction]:
        """Every action held for approval (``status=None``: all), of one incident if
        given, oldest first; :meth:`action_page` pages through them."""
        _check_status(status)
        return self._containment.actions(status, incident_id)

    def action_page(
        self,
        status: str | None = "pending",
        incident_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[PendingAction]:
        """A page of :meth:`actions` and the cursor of the next page; ``after`` (the
        ``next`` of the previous page: an action id) pages on."""
        _check_status(status)
        _check_limit(limit)
        if after is not None and self._containment.action(after) is None:
            raise InputError(f"cursor {after!r} is no action's id: start without one")
        fetched = self._containment.actions(status, incident_id, after, limit + 1)
        return _page(fetched, limit, lambda a: a.action_id)

    def member_page(
        self, action_id: str, limit: int = 100, after: str | None = None
    ) -> Page[Member]:
        """The incidents a grouped (incident-storm) action holds, in the order they
        joined, a page at a time; ``after`` (the ``next`` of the previous page: an
        incident id) pages on."""
        _check_limit(limit)
        self.action(action_id)
        members = self._containment.members(action_id)
        if after is not None:
            place = next((i for i, m in enumerate(members) if m.incident_id == after), None)
            if place is None:
                raise InputError(f"cursor {after!r} is not a member of {action_id}")
            members = members[place + 1 :]
        return _page(members[: limit + 1], limit, lambda m: m.incident_id)

    def action(self, action_id: str) -> PendingAction:
        pending = self._containment.action(action_id)
        if pending is None:
            raise NotFoundError(
                f"no action {action_id!r}: list them with `riskstream actions list --status all`"
            )
        return pending

    def decide(self, action_id: str, approve: bool, by: str, note: str = "") -> PendingAction:
        """Approve (carried out at once) or reject; the separate-approver rule applies.

        An action approved but not applied (its change was not published, or the process
        stopped midway) is completed by approving it again: the decision stays its first
        approver's, nothing is applied twice, and the change's event, if it still waits in
        the outbox, is published under its id."""
        status = "approved" if approve else "rejected"
        _check_note(note)
        self.action(action_id)  # an unknown id is "not found", not a refused decision
        by = _named(by)
        try:
            return self._containment.decide(action_id, status, by, note)
        except BusError as exc:  # the decision and the flag are written before the publish
            decided = self.action(action_id)
            if decided.status != "approved" or decided.decided_by is None:
                raise
            approver = decided.decided_by
            flag = self._containment.flag(decided.model_id)
            changed = (
                f"; the flag of {flag.model_id} is at revision {flag.revision} "
                f"({flag.active_version}, {flag.mode}) and the serving layer reads it"
                if flag is not None and flag.actor == approver
                else ""
            )
            raise BusError(
                f"action {action_id} is approved by {approver}{changed}, but the change "
                f"could not be published: {exc}. Subscribers of the routing changes topic "
                "have not heard of it, and the action is not marked applied. Approve it "
                "again once the broker answers (/api/v1/health says ok): that publishes "
                "the same change again under the same event id and marks it applied; "
                "nothing is changed twice.",
                exc.code,
            ) from exc

    def flags(self) -> dict[str, RoutingFlag]:
        return self._containment.flags()

    def flag_page(self, limit: int = 100, after: str | None = None) -> Page[RoutingFlag]:
        """Flags by model id, a page at a time, and the cursor of the next page;
        ``after`` (the ``next`` of the previous page, or any model id) pages on.  (The
        flag hash holds one entry per model, so this reads it whole.)"""
        _check_limit(limit)
        flags = self.flags()
        ids = sorted(m for m in flags if after is None or m > after)
        return _page([flags[m] for m in ids[: limit + 1]], limit, lambda f: f.model_id)

    def flag(self, model_id: str) -> RoutingFlag:
        flag = self._containment.flag(model_id)
        if flag is None:
            raise NotFoundError(
                f"no routing flag for {model_id!r}: the serving layer uses its own default "
                "until containment or a person sets one"
            )
        return flag

    def set_flag(
        self,
        model_id: str,
        by: str,
        reason: str,
        *,
        version: str | None = None,
        mode: str | None = None,
        traffic_fraction: float | None = None,
        approver: bool = False,
    ) -> RoutingFlag:
        """A manual override; refuses values the serving layer could not act on.

        ``approver``: whether the caller holds the approver role, which undoing an
        approved decision, or making a change the playbooks gate by approval, needs.
        """
        # What the serving layer looks up.  A flag containment already set is always
        # open to a person, whatever its id: the event contract takes ids this rule
        # refuses (a space), and a model contained under one must not be out of reach.
        if (problem := model_id_problem(model_id)) and self._containment.flag(model_id) is None:
            raise InputError(problem)
        if version is None and mode is None and traffic_fraction is None:
            raise InputError("say what to change: a version, a mode or a traffic_fraction")
        if version is not None:
            check_text("version", version, 128)
        if mode is not None and mode not in MODES:
            raise InputError(f"mode {mode!r}: use one of {', '.join(MODES)}")
        if traffic_fraction is not None:
            check_fraction(traffic_fraction)
        if reason.strip():  # (an empty one: the containment service says why it needs one)
            check_text("reason", reason, NOTE_LONGEST, newlines=True)
        by = _named(by)
        try:
            return self._containment.override(
                model_id, by, reason,
                version=version, mode=mode, traffic_fraction=traffic_fraction,
                approver=approver,
            )  # fmt: skip
        except BusError as exc:  # the flag is written before its change is published
            flag = self._containment.flag(model_id)
            if flag is None or flag.actor != by or flag.reason != f"manual: {reason}":
                raise
            raise BusError(
                f"the flag of {model_id} is changed (revision {flag.revision}: "
                f"{flag.active_version}, {flag.mode}, {flag.traffic_fraction:g} of traffic) "
                "and the serving layer reads it, but its routing-change event was not "
                f"published: {exc}. Nothing to redo: the event waits in the outbox, and the "
                "containment worker publishes it once the broker answers.",
                exc.code,
            ) from exc

    def report(self, incident_id: str, kind: str, fmt: str, settings: ReportSettings) -> str:
        """An Article 73 draft or a post-mortem skeleton of the incident, as of now."""
        record = self.incident(incident_id)
        flag = self._containment.flag(record.subject)
        story = self.story(record)
        try:
            return render(kind, fmt, record, settings, self._clock(), flag, story)
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            # Records riskstream wrote render; one that does not was written by something
            # else (the worker checks every incident on intake): say which field is wrong.
            why = incident_rejection(record.incident) or f"{type(exc).__name__}: {exc}"
            log.warning("incident %s: no %s report: %s (%r)", incident_id, kind, why, exc)
            raise StateStoreError(
                f"the stored record of incident {incident_id!r} cannot be made into a {kind} "
                f"report: its incident data is not what riskstream writes ({why}). Repair "
                "or delete the record in the incident store and publish the incident again"
            ) from exc

    def story_of(self, record: IncidentRecord) -> Mapping[str, Any] | None:
        """The story of the incident's group, root first (None: it stands alone); kept on
        the group's first record (:func:`riskstream.core.incident_records.join_group`)."""
        lead = record if record.group == record.incident_id else self._incidents.get(record.group)
        return lead.story if lead is not None and lead.story else None

    def story(self, record: IncidentRecord) -> Story | None:
        """:meth:`story_of`, with the records of its members, for the reports."""
        data = self.story_of(record)
        if data is None:
            return None
        found = {record.incident_id: record}
        for member in data.get("members") or ():
            member_id = str(member["incident_id"])
            if member_id not in found and (r := self._incidents.get(member_id)) is not None:
                found[member_id] = r
        return Story(data, found)

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        return self._containment.audit(start, count)

    def verify_audit(self) -> AuditReport:
        return self._containment.verify_audit()

    def ping(self) -> None:
        """One cheap read of the stores; raises StateStoreError when they do not answer."""
        self._incidents.recent(1)

    # -- internals ----------------------------------------------------------------

    def _update(
        self, incident_id: str, change: Callable[[IncidentRecord], IncidentRecord]
    ) -> IncidentRecord:
        updated = self._incidents.update(incident_id, lambda r: None if r is None else change(r))
        if updated is None:
            raise NotFoundError(f"incident {incident_id!r} disappeared while being updated")
        return updated

    def _audit(self, record: IncidentRecord, event: str, by: str, note: str) -> None:
        self._containment.record_event(
            record.subject,
            {"event": event, "incident_id": record.incident_id, "note": note},
            _named(by),
            f"{record.incident_id}:{event}",
        )


def filtered_window(limit: int) -> int:
    """How many incidents a filtered page of ``limit`` looks through after its cursor
    (see SCANNED): all of them when its page is short while ``next`` is set."""
    return max(limit, SCANNED)


def _page(fetched: list[T], limit: int, cursor: Callable[[T], str]) -> Page[T]:
    """The first ``limit`` of ``fetched`` (read ``limit + 1`` to know whether the list
    goes on), and the cursor of the next page (its last item's) when there are more."""
    if len(fetched) <= limit:
        return Page(fetched, None)
    return Page(fetched[:limit], cursor(fetched[limit - 1]))


def _incident_id(record: IncidentRecord) -> str:
    return record.incident_id


def _check_status(status: str | None) -> None:
    if status is not None and status not in ACTION_STATUSES:
        raise InputError(
            f"status {status!r}: use one of {', '.join(ACTION_STATUSES)}, or all (every one)"
        )


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InputError(f"limit {limit}: give a page size of at least 1")


def _named(by: str) -> str:
    """Who did it, or an error: an anonymous write has no place in an audit trail, and
    riskstream's own names (``riskstream``, ``riskstream/...``) are no person's."""
    if not by or not by.strip():
        raise ContainmentError("say who you are (--by NAME, or the API token's user)")
    by = by.strip()
    check_actor(by)
    return by


def _check_note(note: str) -> None:
    """A note goes on the timeline and into the audit trail: printable, at most 2000.
    None at all (``""``) is fine, as it is optional; one made only of spaces, tabs or
    newlines is not: it reads as a note that says nothing."""
    check_text("note", note, NOTE_LONGEST, newlines=True, empty=True)


def check_actor(by: str) -> None:
    """Refuse a reserved or unprintable actor name.

    >>> check_actor("dr.lee (os user lee)")
    >>> check_actor("riskstream/containment")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskstream.errors.InputError: the name 'riskstream/containment' is reserved ...
    >>> check_actor("\u0280iskstream/containment")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskstream.errors.InputError: the name '\u0280iskstream/containment' is reserved ...
    """
    if is_reserved(by):  # or a look-alike of it: another case, script or slash
        raise InputError(
            f"the name {by!r} is reserved for riskstream's own processes; give your own name"
        )
    check_text("name", by, 200)


# The characters no text a person writes may hold: control characters but tab and newline
# (Unicode's Cc), format characters but the zero-width joiner of emoji sequences (Cf), and
# the line and paragraph separators (Zl, Zp), as of Unicode 15.1.  A fixed list, not
# unicodedata's categories, so that the rule is the same on every Python and can be
# stated in schemas/openapi.yaml (TEXT_PATTERN, SAID_PATTERN, LINE_PATTERN);
# tests/unit/test_openapi.py holds the two equal and checks the list against the running
# Python's unicodedata.
_REFUSED: tuple[tuple[int, int], ...] = (
    (0x0000, 0x0008), (0x000B, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD),
    (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200C),
    (0x200E, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)  # fmt: skip
# The spaces, but tab and newline, that text is blank when made only of: Python's spaces
# (str.isspace) that are not refused, listed for the same reason (test_openapi.py checks
# them against the running Python's too).  A blank reason or version says nothing.
_SPACES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x0020), (0x00A0, 0x00A0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
)  # fmt: skip


def _char(code: int) -> str:
    # \uXXXX reads the same in Python's and ECMA-262's regular expressions; a character
    # past U+FFFF has no escape both read, so it stands as itself
    return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)


_CLASS, _SPACE, _TAB_NEWLINE = _class(_REFUSED), _class(_SPACES), "\\u0009\\u000A"


def _pattern(newlines: bool, empty: bool) -> str:
    """What :func:`check_text` takes, as a pattern that reads the same in ECMA-262 (the
    OpenAPI document's) and in Python's ``re.fullmatch`` (never ``match`` or ``search``:
    there ``$`` also matches before a last newline): none of the refused characters
    and one that is no space (after the spaces, if any, it begins with: each character
    has one place in the pattern, so a match takes linear time), or, where ``empty``,
    nothing at all.  Blank text is never taken: it says nothing."""
    spaces, refused = _SPACE, _TAB_NEWLINE + _CLASS
    if newlines:  # tab and newline are a note's or a reason's spaces, and not refused
        spaces, refused = _SPACE + _TAB_NEWLINE, _CLASS
    said = f"[{spaces}]*[^{spaces}{refused}][^{refused}]*"
    return f"^(?:{said})?$" if empty else f"^{said}$"


TEXT_PATTERN = _pattern(newlines=True, empty=True)
"""Text that may span lines and says something, or nothing at all (a note): empty, or
not blank, and none of the refused characters."""
SAID_PATTERN = _pattern(newlines=True, empty=False)
"""Text that may span lines and says something (a reason): not blank either."""
LINE_PATTERN = _pattern(newlines=False, empty=False)
"""One line that says something (a name, a version): not blank, no tab or newline."""
_RULES = {(n, e): re.compile(_pattern(n, e)) for n in (False, True) for e in (False, True)}
_TEXT_BAD = re.compile(f"[{_CLASS}]")
_LINE_BAD = re.compile(f"[{_TAB_NEWLINE}{_CLASS}]")


def check_text(
    what: str, text: str, longest: int, newlines: bool = False, empty: bool = False
) -> None:
    r"""Refuse blank text, empty text (unless ``empty``), NUL and other control characters
    (newlines and tabs only where ``newlines``), and text longer than ``longest``: they
    would forge or garble what a person later reads in a table, a log or a serving
    layer's config.  What passes is what the pattern the OpenAPI document states
    (TEXT_PATTERN, SAID_PATTERN, LINE_PATTERN) matches, whole.

    >>> check_text("version", "v1\n", 128)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskstream.errors.InputError: version 'v1\n' holds a control character (U+000A); ...
    """
    if len(text) > longest:
        raise InputError(f"{what} is {len(text)} characters long; at most {longest}")
    if _RULES[newlines, empty].fullmatch(text):
        return
    bad = (_TEXT_BAD if newlines else _LINE_BAD).search(text)
    if bad is not None:
        raise InputError(
            f"{what} {text!r} holds a control character (U+{ord(bad.group()):04X}); "
            "use printable text"
        )
    if empty:
        raise InputError(
            f"{what} {text!r} is only spaces and says nothing: write it out, or leave the "
            f"{what} out (it is optional)"
        )
    raise InputError(f"{what} must not be empty or only spaces ({text!r}); write it out")


def check_fraction(value: float) -> None:
    """A share of traffic: a number from 0 to 1, and not -0.0 (which prints as -0%).

    >>> check_fraction(-0.0)
    Traceback (most recent call last):
    ...
    riskstream.errors.InputError: traffic_fraction -0.0: give a share from 0 to 1
    """
    if not (0.0 <= value <= 1.0) or math.copysign(1.0, value) < 0:
        raise InputError(f"traffic_fraction {value}: give a share from 0 to 1")
