"""The reference :class:`~riskstream.ports.FlagStore` and :class:`~riskstream.ports.ApprovalStore`.

Plain dicts behind one lock each.  They define the semantics the Redis stores
must match (``tests/contract`` runs one suite over both) and back the embedded
demo and unit tests.

Semantics every flag store follows:

- :meth:`~InMemoryFlagStore.apply` checks, in this order: the flag's revision is
  ``expected_revision + 1`` (else :class:`~riskstream.errors.ContainmentError`, a
  caller bug, before anything is read); ``change_id`` was applied before ->
  ``duplicate``; the model's revision (0 when it has no flag) is not
  ``expected_revision`` -> ``conflict``; else ``applied``: the flag, the change id
  and one audit entry are written together and listeners are told.
- Flags are stored as :meth:`RoutingFlag.to_data` (RFC 3339 times to the
  millisecond), so what comes back is ``RoutingFlag.from_data(flag.to_data())``:
  sub-millisecond parts of ``updated_at`` / ``expires_at`` are dropped.
- The audit trail is a hash chain (:mod:`riskstream.core.audit`) with seqs 1, 2,
  3...; ``audit(start, count)`` returns the entries with ``seq > start`` (so
  ``start`` is both "how many to skip" and "the last seq already seen").
- ``record_event`` appends an entry with ``before`` ``None`` and ``after`` the
  event (which has an ``"event"`` key, and no flag's ``active_version``); its
  change id shares the set of applied ids, so it is recorded at most once.
- An applied change's ``events`` go to the outbox with it, after those of earlier
  changes; ``outbox`` lists them oldest first, ``delivered`` removes them.  Past
  ``outbox_limit`` events the oldest are dropped, and the apply's result names them.

Semantics every approval store follows: actions are stored as JSON-able data (a
tuple in ``action`` comes back a list); ``add`` refuses anything not ``pending``;
``decide`` applies :func:`~riskstream.core.approvals.check_decision` and moves
``pending`` to a decision exactly once, even under races; ``mark_applied`` moves
``approved`` to ``applied``, and ``expire_approved`` ``approved`` to ``expired``, each
refusing every other state; ``list`` is sorted by ``requested_at`` (then ``action_id``).
"""

from __future__ import annotations

import builtins
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from riskstream.core import flag_checks as checks
from riskstream.core.approvals import ActionSummary, Member, PendingAction
from riskstream.core.audit import GENESIS, next_entry, verify_with_head
from riskstream.core.outbox import MAX_OUTBOX, OutboxEvent
from riskstream.core.routing import FlagChange, RoutingFlag
from riskstream.ports import (
    ApplyResult,
    ApprovalStore,
    AuditEntry,
    AuditReport,
    FlagStore,
    Outbox,
)

__all__ = [
    "FlagListener",
    "InMemoryApprovalStore",
    "InMemoryFlagStore",
]

FlagListener = Callable[[str, int], None]
"""Called with ``(model_id, revision)`` after every applied change."""


class InMemoryFlagStore:
    """Thread-safe, process-local flag store; everything is lost when it is dropped."""

    #: Events the outbox keeps at most; past it the oldest are dropped.
    outbox_limit: int = MAX_OUTBOX

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, dict[str, Any]] = {}  # model_id -> RoutingFlag.to_data()
        self._applied: set[str] = set()
        self._outbox: dict[str, bytes] = {}  # event id -> its JSON, oldest first
        self._entries: list[AuditEntry] = []
        self._head: tuple[int, str] = (0, GENESIS)
        self._listeners: list[FlagListener] = []

    def subscribe(self, listener: FlagListener) -> Callable[[], None]:
        """Call ``listener(model_id, revision)`` after each applied change.

        The in-process counterpart of the Redis store's ``changed`` channel.  It is
        called outside the lock, in the applying thread; an exception it raises
        propagates to the caller of :meth:`apply` (the change stays applied).
        Returns a function that unsubscribes.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def get(self, model_id: str) -> RoutingFlag | None:
        with self._lock:
            data = self._flags.get(model_id)
        return None if data is None else RoutingFlag.from_data(data)

    def all(self) -> dict[str, RoutingFlag]:
        with self._lock:
            flags = dict(self._flags)
        return {model_id: RoutingFlag.from_data(data) for model_id, data in flags.items()}

    def count(self) -> int:
        with self._lock:
            return len(self._flags)

    def apply(self, change: FlagChange, at: float) -> ApplyResult:
        checks.check_change(change)
        model_id = change.flag.model_id
        after = change.flag.to_data()
        with self._lock:
            current = self._flags.get(model_id)
            current_flag = None if current is None else RoutingFlag.from_data(current)
            if change.change_id in self._applied:
                return ApplyResult("duplicate", current_flag)
            revision = 0 if current is None else int(current["revision"])
            if revision != change.expected_revision:
                return ApplyResult("conflict", current_flag)
            seq, prev_hash = self._head
            entry = next_entry(
                seq=seq + 1,
                prev_hash=prev_hash,
                change_id=change.change_id,
                model_id=model_id,
                actor=change.flag.actor,
                at=at,
                before=current,
                after=after,
            )
            self._flags[model_id] = after
            self._applied.add(change.change_id)
            self._entries.append(entry)
            self._head = (entry.seq, entry.hash)
            for event in change.events:
                self._outbox.pop(event.event_id, None)  # a new one goes last
                self._outbox[event.event_id] = event.to_json()
            dropped = []
            while len(self._outbox) > max(self.outbox_limit, 0):
                oldest = next(iter(self._outbox))
                del self._outbox[oldest]
                dropped.append(oldest)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(model_id, change.flag.revision)
        return ApplyResult("applied", RoutingFlag.from_data(after), tuple(dropped))

    def outbox(self, limit: int = 100) -> Outbox:
        with self._lock:
            waiting = builtins.list(self._outbox.values())
        return Outbox([OutboxEvent.from_json(raw) for raw in waiting[:limit]], len(waiting))

    def delivered(self, event_ids: Sequence[str]) -> None:
        with self._lock:
            for event_id in event_ids:
                self._outbox.pop(event_id, None)

    def record_event(
        self, change_id: str, model_id: str, actor: str, at: float, event: dict[str, object]
    ) -> bool:
        checks.check_event(event)
        with self._lock:
            if change_id in self._applied:
                return False
            seq, prev_hash = self._head
            entry = next_entry(
                seq=seq + 1, prev_hash=prev_hash, change_id=change_id, model_id=model_id,
                actor=actor, at=at, before=None, after=dict(event),
            )  # fmt: skip
            self._applied.add(change_id)
            self._entries.append(entry)
            self._head = (entry.seq, entry.hash)
        return True

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]:
        checks.check_audit_range(start, count)
        with self._lock:
            entries = [entry for entry in self._entries if entry.seq > start]
        return [_copy(entry) for entry in entries[:count]]

    def verify_audit(self) -> AuditReport:
        with self._lock:
            entries = list(self._entries)
            head_seq, head_hash = self._head
        return verify_with_head(entries, head_seq, head_hash)

    def close(self) -> None:
        return None


def _copy(entry: AuditEntry) -> AuditEntry:
    """The stored entry's dicts must not be the caller's to mutate (that would forge it)."""
    before = None if entry.before is None else dict(entry.before)
    return replace(entry, before=before, after=dict(entry.after))


class InMemoryApprovalStore:
    """Thread-safe, process-local approval store; everything is lost when it is dropped.

    Lists sort what is stored (the embedded mode holds few actions); the Redis store
    keeps indexes instead, and both answer the same (``tests/contract``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._actions: dict[str, bytes] = {}  # action_id -> JSON, as Redis keeps it
        self._members: dict[str, dict[str, bytes]] = {}  # grouped action -> incident -> JSON
        self._of_incident: dict[str, builtins.list[str]] = {}

    def add(self, pending: PendingAction) -> bool:
        checks.check_new_pending(pending)
        data = checks.pending_to_json(pending)
        with self._lock:
            if pending.action_id in self._actions:
                return False
            self._actions[pending.action_id] = data
            self._of_incident.setdefault(pending.incident_id, []).append(pending.action_id)
            return True

    def get(self, action_id: str) -> PendingAction | None:
        with self._lock:
            data = self._actions.get(action_id)
        return None if data is None else checks.pending_from_json(data)

    def list(
        self,
        status: str | None = None,
        *,
        incident_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[PendingAction]:
        checks.check_list(status, limit)
        with self._lock:
            if incident_id is None:
                stored = builtins.list(self._actions.values())
            else:
                ids = self._of_incident.get(incident_id, [])
                stored = [self._actions[i] for i in ids]
            cursor = None if after is None else self._actions.get(after)
        if after is not None and cursor is None:
            raise checks.unknown_cursor(after)
        actions = sorted(
            (a for a in map(checks.pending_from_json, stored)
             if status is None or a.status == status),
            key=lambda action: (action.requested_at, action.action_id),
        )  # fmt: skip
        if cursor is not None:
            last = checks.pending_from_json(cursor)
            actions = [a for a in actions if (a.requested_at, a.action_id) > (
                last.requested_at, last.action_id)]  # fmt: skip
        return actions if limit is None else actions[:limit]

    def summary(self) -> ActionSummary:
        pending = self.list("pending")
        deadlines = [p.expires_at for p in pending if p.expires_at is not None]
        oldest = min((p.requested_at for p in pending), default=0.0)
        return ActionSummary(len(pending), oldest, min(deadlines, default=0.0))

    def due(self, now: float) -> builtins.list[PendingAction]:
        return [p for p in self.list("pending") if p.expires_at is not None and p.expires_at <= now]

    def join(self, action_id: str, member: Member) -> bool:
        with self._lock:
            data = self._actions.get(action_id)
            if data is None:
                raise checks.unknown_action(action_id, "join an incident to")
            checks.refuse_join(checks.pending_from_json(data))
            members = self._members.setdefault(action_id, {})
            if member.incident_id in members:
                return False
            members[member.incident_id] = checks.member_to_json(member)
            self._of_incident.setdefault(member.incident_id, []).append(action_id)
            return True

    def members(self, action_id: str, *, strict: bool = False) -> builtins.list[Member]:
        # Only riskstream writes here (join stores what Member.to_data makes), so there
        # is no record it cannot read to leave out, strict or not.
        with self._lock:
            raws = builtins.list(self._members.get(action_id, {}).values())
        return sorted(map(checks.member_from_json, raws), key=lambda m: (m.at, m.incident_id))

    def decide(
        self, action_id: str, status: str, by: str, at: float, note: str = ""
    ) -> PendingAction:
        return self._move(
            action_id, f"decide ({status})",
            lambda pending: checks.decided(pending, status, by, at, note),
        )  # fmt: skip

    def mark_applied(self, action_id: str) -> None:
        self._move(action_id, "mark applied", checks.applied)

    def expire_approved(self, action_id: str, by: str, at: float, note: str = "") -> PendingAction:
        return self._move(
            action_id, "expire", lambda pending: checks.expired_unapplied(pending, by, at, note)
        )

    def _move(
        self, action_id: str, doing: str, change: Callable[[PendingAction], PendingAction]
    ) -> PendingAction:
        """Store what ``change`` makes of the action, under the lock (it raises to refuse)."""
        with self._lock:
            data = self._actions.get(action_id)
            if data is None:
                raise checks.unknown_action(action_id, doing)
            moved = change(checks.pending_from_json(data))
            self._actions[action_id] = checks.pending_to_json(moved)
        return moved

    def close(self) -> None:
        return None


if TYPE_CHECKING:  # mypy proves the classes implement the ports

    def _implements_flag_port(store: InMemoryFlagStore) -> FlagStore:
        return store

    def _implements_approval_port(store: InMemoryApprovalStore) -> ApprovalStore:
        return store
