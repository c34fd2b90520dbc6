"""The ticketer: keeps one ticket per incident group in step with the incident records.

It reads the incident records (the containment worker's, in Redis) rather than
the incidents topic, because only the records hold everything a ticket should
tell: updates, containment actions, approvals and rejections, acknowledgements
and resolution.  Each scan derives, per group and per ticket system, what is
still owed — a ticket, comments, a close — from the records themselves, and
notes on the records what it did.  So nothing is lost: a system that is down or
rate-limited (``429`` with ``Retry-After``) is simply tried again later, and the
records still say what it is owed.  And nothing is doubled: see
:mod:`riskstream.core.tickets` (external ids, comment markers, read before
writing again after any doubt).

A ticket closed by a person is not reopened; later comments still go to it.  It
resolves nothing here unless ``tickets.resolve_on_close`` is set: then, every
``close_check_interval_s``, the tickets of groups with an open incident are read,
and a closed one resolves those incidents through ``resolve`` — the operator
service's resolve, the one path a person's resolve takes (record, audit trail,
reverts, the resolved event on Kafka) — in the closer's name, with a note naming
the ticket.  Systems are independent: one failing waits with exponential backoff
(or its ``Retry-After``) while the others carry on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from riskstream.core.incident_records import IncidentRecord
from riskstream.core.tickets import (
    TicketRef,
    TicketSettings,
    closure_actor,
    closure_note,
    comment_text,
    draft,
    external_id,
    marker,
    markers_in,
    owed_comments,
    person_closed,
    ticket_of,
    wanted,
    with_closed,
    with_person_closed,
    with_posted,
    with_ticket,
)
from riskstream.errors import RiskstreamError, TicketSystemError
from riskstream.metrics import TicketerMetrics
from riskstream.ports import IncidentStore, TicketSystem

__all__ = ["Ticketer", "TicketerSystem"]

log = logging.getLogger(__name__)

CLOSE_NOTE = "Every incident of this group is resolved in riskstream."

#: Resolve one incident as a person would: (incident id, by, note); see
#: :meth:`riskstream.services.operations.OperatorService.resolve`.
Resolve = Callable[[str, str, str], object]


@dataclass(frozen=True, slots=True)
class TicketerSystem:
    """A ticket system and the labels its tickets get."""

    system: TicketSystem
    labels: tuple[str, ...] = ()


@dataclass(slots=True)
class _Backoff:
    ready_at: float = 0.0
    failures: int = 0


class Ticketer:
    """Scans the incident records every ``settings.interval_s`` and updates tickets."""

    def __init__(
        self,
        settings: TicketSettings,
        systems: Sequence[TicketerSystem],
        incidents: IncidentStore,
        metrics: TicketerMetrics,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        resolve: Resolve | None = None,
    ) -> None:
        if settings.resolve_on_close and resolve is None:
            raise ValueError("tickets.resolve_on_close needs a resolve (the operator service's)")
        self._settings = settings
        self._resolve = resolve if settings.resolve_on_close else None
        self._closures_checked_at: float | None = None
        self._systems = tuple(systems)
        self._incidents = incidents
        self._metrics = metrics
        self._clock, self._sleep = clock, sleep
        self._backoff = {s.system.name: _Backoff() for s in self._systems}
        self._group_backoff: dict[tuple[str, str], _Backoff] = {}
        self._verified: set[tuple[str, str]] = set()  # (system, ticket id): markers read
        self._created: dict[tuple[str, str], TicketRef] = {}  # in case storing the key failed

    @property
    def resolves_on_close(self) -> bool:
        """Whether a ticket a person closes resolves its group here."""
        return self._resolve is not None

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            try:
                self.sync()
            except RiskstreamError as exc:  # the record store is down: try again next scan
                log.error("ticketer: cannot read the incident records: %s; trying again", exc)
            self._sleep(self._settings.interval_s)

    def sync(self) -> int:
        """One scan over every system; returns how many ticket writes it made."""
        groups = self._groups()
        if self._resolve is not None and self._closures(groups):
            groups = self._groups()  # some were resolved: their comments and closes are owed
        writes = 0
        for s in self._systems:
            name = s.system.name
            backoff = self._backoff[name]
            if self._clock() < backoff.ready_at:
                continue
            try:
                for lead, members in groups:
                    writes += self._sync_group(s, lead, members)
            except TicketSystemError as exc:
                self._fail(name, backoff, exc, "")
                continue
            if backoff.failures:
                log.info("ticket system %s is answering again", name)
            backoff.failures = 0
            self._metrics.backing_off.labels(name).set(0)
        return writes

    # -- closed by a person (resolve_on_close) --------------------------------------

    def _closures(self, groups: list[tuple[IncidentRecord, list[IncidentRecord]]]) -> int:
        """Resolve the open incidents of groups whose ticket a person closed; how many."""
        now = self._clock()
        due = (
            self._closures_checked_at is None
            or now - self._closures_checked_at >= self._settings.close_check_interval_s
        )
        if due:
            self._closures_checked_at = now
        resolved = 0
        for s in self._systems:
            name = s.system.name
            backoff = self._backoff[name]
            if now < backoff.ready_at:
                continue
            try:
                for lead, members in groups:
                    resolved += self._closure(s, lead, members, due)
            except TicketSystemError as exc:
                self._fail(name, backoff, exc, " (reading a ticket's state)")
        return resolved

    def _closure(
        self, s: TicketerSystem, lead: IncidentRecord, members: list[IncidentRecord], due: bool
    ) -> int:
        name = s.system.name
        state = ticket_of(lead, name)
        still_open = [m.incident_id for m in members if m.status != "resolved"]
        if not state.get("key") or not still_open:
            return 0
        noted = person_closed(lead, name)
        if noted is None:
            if state.get("closed") or not due:
                return 0  # riskstream closed it: only ever once every incident was resolved
            ticket = TicketRef(str(state["key"]), str(state.get("url", "")), str(state["id"]))
            try:
                closure = s.system.closure(ticket)
            except TicketSystemError as exc:
                if exc.retryable:
                    raise
                log.error("%s: cannot read the state of %s: %s", name, ticket.key, exc)
                return 0
            except _UNREADABLE as exc:
                log.error("%s: cannot read the state of %s: %s", name, ticket.key,
                          _unreadable(name, exc))  # fmt: skip
                return 0
            if closure is None:
                return 0
            actor = closure_actor(name, ticket.key, closure)
            note = closure_note(name, ticket, closure)
            lead = self._store(
                lead.incident_id, lambda r: with_person_closed(r, name, actor, note, still_open)
            )
            noted = person_closed(lead, name)
            assert noted is not None
            log.info("%s: %s", name, note)
        done = 0
        for incident_id in (i for i in noted["resolves"] if i in still_open):
            try:
                assert self._resolve is not None
                self._resolve(incident_id, str(noted["actor"]), str(noted["note"]))
            except RiskstreamError as exc:  # the bus or a store is down: the next scan retries
                log.error(
                    "%s: cannot resolve incident %s (its ticket was closed): %s; trying again",
                    name, incident_id, exc,
                )  # fmt: skip
                return done
            self._metrics.writes.labels(name, "resolved").inc()
            done += 1
        return done

    # -- one group -------------------------------------------------------------------

    def _groups(self) -> list[tuple[IncidentRecord, list[IncidentRecord]]]:
        """(lead, members with the lead first), oldest group first."""
        by_group: dict[str, list[IncidentRecord]] = {}
        for record in self._incidents.recent(self._settings.scan_limit):
            by_group.setdefault(record.group, []).append(record)
        out = []
        for group, members in by_group.items():
            lead = next((r for r in members if r.incident_id == group), None)
            if lead is None:
                lead = self._incidents.get(group)
                if lead is None:  # the lead's record is gone: the oldest member leads
                    lead = min(members, key=lambda r: r.detected_at)
                else:
                    members.append(lead)
            others = sorted((r for r in members if r is not lead), key=lambda r: r.detected_at)
            out.append((lead, [lead, *others]))
        out.sort(key=lambda g: g[0].detected_at)
        return out

    def _sync_group(
        self, s: TicketerSystem, lead: IncidentRecord, members: list[IncidentRecord]
    ) -> int:
        system, name = s.system, s.system.name
        state = ticket_of(lead, name)
        resolved = all(m.status == "resolved" for m in members)
        owed = any(owed_comments(m, name) for m in members)
        linked = all(ticket_of(m, name).get("key") == state.get("key") for m in members)
        if state.get("key") and linked and not owed and (state.get("closed") or not resolved):
            return 0  # in step already: no request at all
        if not state.get("key") and not wanted(members, self._settings):
            return 0
        backoff = self._group_backoff.get((name, lead.group))
        if backoff is not None and self._clock() < backoff.ready_at:
            return 0
        ticket: TicketRef | None = None
        try:
            writes, ticket = self._ensure_ticket(s, lead)
            writes += self._post_owed(system, ticket, lead, members)
            if resolved and not ticket_of(lead, name).get("closed"):
                system.close(ticket, CLOSE_NOTE)
                self._store(lead.incident_id, lambda r: with_closed(r, name))
                self._metrics.writes.labels(name, "closed").inc()
                log.info("%s: closed %s for resolved group %s", name, ticket.key, lead.group)
                writes += 1
        except TicketSystemError as exc:
            if ticket is not None and exc.ambiguous:
                self._verified.discard((name, ticket.id))
            if exc.retryable:
                raise  # the whole system waits
            self._fail(name, self._group_backoff.setdefault((name, lead.group), _Backoff()), exc,
                       f" (group {lead.group})")  # fmt: skip
            return 0
        except _UNREADABLE as exc:  # an answer of another shape than the API documents
            if ticket is not None:
                self._verified.discard((name, ticket.id))
            log.exception("%s: group %s: an answer riskstream cannot read", name, lead.group)
            self._fail(name, self._group_backoff.setdefault((name, lead.group), _Backoff()),
                       _unreadable(name, exc), f" (group {lead.group})")  # fmt: skip
            return 0
        except BaseException:
            if ticket is not None:  # a write may be on the ticket but not on the record
                self._verified.discard((name, ticket.id))
            raise
        self._group_backoff.pop((name, lead.group), None)
        return writes

    def _ensure_ticket(self, s: TicketerSystem, lead: IncidentRecord) -> tuple[int, TicketRef]:
        """The group's ticket: the one the record names, else found by external id, else new."""
        system, name = s.system, s.system.name
        state = ticket_of(lead, name)
        if state.get("key"):
            return 0, TicketRef(str(state["key"]), str(state.get("url", "")), str(state["id"]))
        ext = external_id(lead.group)
        ticket = self._created.get((name, ext)) or system.find(ext)
        what = "found"
        if ticket is None:
            ticket = system.create(draft(lead, self._settings, s.labels))
            self._created[(name, ext)] = ticket
            self._verified.add((name, ticket.id))  # new: no comments on it yet
            what = "created"
        self._metrics.writes.labels(name, what).inc()
        log.info("%s: %s ticket %s for incident group %s", name, what, ticket.key, lead.group)
        self._store(lead.incident_id, lambda r: with_ticket(r, name, ticket))
        return (1 if what == "created" else 0), ticket

    def _post_owed(
        self, system: TicketSystem, ticket: TicketRef, lead: IncidentRecord,
        members: list[IncidentRecord],
    ) -> int:  # fmt: skip
        name = system.name
        writes = 0
        for member in members:
            if ticket_of(member, name).get("key") != ticket.key:
                member = self._store(member.incident_id, lambda r: with_ticket(r, name, ticket))
            owed = owed_comments(member, name)
            if not owed:
                continue
            if (name, ticket.id) not in self._verified:
                present = markers_in(system.comment_texts(ticket))
                self._verified.add((name, ticket.id))
                self._note_present(name, members, present)
                member = self._incidents.get(member.incident_id) or member
                owed = owed_comments(member, name)
            for entry in owed:
                system.comment(ticket, comment_text(member, entry, lead.incident_id))
                member = self._posted(member.incident_id, name, [entry.key])
                self._metrics.writes.labels(name, "commented").inc()
                writes += 1
        return writes

    def _note_present(self, name: str, members: list[IncidentRecord], present: set[str]) -> None:
        """Comments already on the ticket (a write whose record was lost): noted, not redone."""
        for member in members:
            keys = [
                e.key for e in owed_comments(member, name)
                if marker(member.incident_id, e.key) in present
            ]  # fmt: skip
            if keys:
                log.info(
                    "%s: %d comments of incident %s were on the ticket already; not posted again",
                    name, len(keys), member.incident_id,
                )  # fmt: skip
                self._posted(member.incident_id, name, keys)

    def _posted(self, incident_id: str, name: str, keys: list[str]) -> IncidentRecord:
        return self._store(incident_id, lambda r: with_posted(r, name, keys))

    def _store(
        self, incident_id: str, change: Callable[[IncidentRecord], IncidentRecord]
    ) -> IncidentRecord:
        stored = self._incidents.update(incident_id, lambda r: None if r is None else change(r))
        if stored is None:
            raise TicketSystemError(
                f"incident {incident_id} has no record any more; its ticket is left as it is",
                retryable=False,
            )
        return stored

    def _fail(self, name: str, backoff: _Backoff, exc: TicketSystemError, where: str) -> None:
        backoff.failures += 1
        s = self._settings
        delay = min(s.max_backoff_s, s.initial_backoff_s * 2 ** min(backoff.failures - 1, 30))
        if exc.retry_after_s is not None:
            # A system's own wait, but never past MAX_RETRY_AFTER_S: a Retry-After of
            # 10**9 (or of 400 digits: infinity) stopped every ticket of it for good.
            delay = min(max(exc.retry_after_s, 0.0), MAX_RETRY_AFTER_S)
        backoff.ready_at = self._clock() + delay
        kind = "retryable" if exc.retryable else "permanent"
        self._metrics.failures.labels(name, kind).inc()
        if exc.retryable:
            self._metrics.backing_off.labels(name).set(1)
            log.warning("%s%s: %s; next try in %.1f s", name, where, exc, delay)
        else:
            log.error("%s%s: %s; not tried again for %.0f s", name, where, exc, delay)


MAX_RETRY_AFTER_S = 3600.0
"""The longest wait a ticket system may ask for (GitHub's rate-limit windows are an hour)."""


# What parsing an answer of another shape raises inside an adapter (a list where the
# API returns an object, a missing field): that group waits, the rest go on.
_UNREADABLE = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def _unreadable(name: str, exc: Exception) -> TicketSystemError:
    return TicketSystemError(
        f"{name}: an answer riskstream cannot read ({type(exc).__name__}: {exc}); is the "
        "URL the ticket system's API, not a proxy's page?",
        retryable=False,
    )
