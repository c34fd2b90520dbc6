"""The seams between the services and the outside world.

Services depend on these protocols only; adapters (Kafka, Redis, in-memory)
implement them, and :mod:`riskstream.bootstrap` picks which.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from riskstream.core.approvals import ActionSummary, Member, PendingAction
from riskstream.core.audit import AuditEntry, AuditReport
from riskstream.core.delivery import AttemptResult
from riskstream.core.incident_records import IncidentRecord
from riskstream.core.outbox import MAX_OUTBOX, OutboxEvent
from riskstream.core.routing import FlagChange, RoutingFlag
from riskstream.core.tickets import TicketClosure, TicketDraft, TicketRef

__all__ = [
    "MAX_CHANGES",
    "MAX_OUTBOX",
    "ApplyResult",
    "ApprovalStore",
    "AssignHandler",
    "AuditEntry",
    "AuditReport",
    "ChangeLog",
    "Consumer",
    "FlagEpoch",
    "FlagStore",
    "IncidentStore",
    "MessageBus",
    "Outbox",
    "OutboxEvent",
    "PartitionState",
    "Producer",
    "Record",
    "RevokeHandler",
    "StateStore",
    "TicketSystem",
    "TopicPartition",
    "Webhook",
]

TopicPartition = tuple[str, int]


class Record(NamedTuple):
    """One consumed message, with where it came from (for commits and dead letters).

    A named tuple, not a frozen dataclass: one is built per consumed message, and a
    frozen dataclass's ``__init__`` (an ``object.__setattr__`` per field) cost 4x as
    much, a few per cent of the processor's CPU.  Adapters may build one with
    ``tuple.__new__(Record, (topic, partition, offset, key, value, headers))``.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Producer(Protocol):
    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...

    def flush(self, timeout: float = 10.0) -> None: ...


AssignHandler = Callable[[list[TopicPartition]], Mapping[TopicPartition, int | None]]
"""Called with newly assigned partitions; returns where to start each (None: the beginning)."""

RevokeHandler = Callable[[list[TopicPartition], bool], None]
"""Called before partitions go away; the flag is True when they were *lost* (no time to save)."""


class Consumer(Protocol):
    def subscribe(
        self, topics: Sequence[str], on_assign: AssignHandler, on_revoke: RevokeHandler
    ) -> None: ...

    def poll_batch(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records; an empty list when none came in ``timeout`` s."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record progress (the *next* offset to read) in the bus.

        The processor resumes from its state store and commits for lag monitoring
        only; the notifier resumes from these commits (see :meth:`committed`).
        """
        ...

    def high_watermark(self, partition: TopicPartition) -> int | None:
        """The partition's end offset as last seen, or None when unknown (no I/O)."""
        ...

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None: nothing committed yet).

        For consumers whose progress lives in the bus itself (the notifier), not
        in a state store; an assign handler can return these as the starts.
        """
        ...

    def hold(self, partition: TopicPartition, offset: int | None) -> None:
        """Stop delivering the partition's records and, when it is released, restart it
        at ``offset`` (None: the beginning), as if newly assigned there.

        For a consumer that cannot keep what it read (its state store is down): it
        stays in the group, keeps polling, and reads the held records again later.
        """
        ...

    def release(self, partition: TopicPartition, offset: int | None) -> None:
        """Deliver the held partition again, starting at ``offset`` (None: the beginning)."""
        ...

    def close(self) -> None: ...


class MessageBus(Protocol):
    def producer(self) -> Producer: ...

    def consumer(self, group: str) -> Consumer: ...


@dataclass(frozen=True, slots=True)
class PartitionState:
    """What a checkpoint saved for one input partition, and the owner's fencing epoch.

    ``offset`` is the next offset to consume (``None`` when nothing was saved yet);
    ``snapshots`` maps a stream key to its encoded detector snapshot; ``counters``
    are running totals saved atomically with them (events applied, dead-lettered…),
    so "every event accounted for exactly once" can be checked after any crash.
    """

    epoch: int
    offset: int | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    snapshots: Mapping[str, bytes] = field(default_factory=dict)


class StateStore(Protocol):
    """Detector state and the offsets that produced it, saved together, fenced.

    ``scope`` namespaces one deployment (the consumer group), so two pipelines can
    share a server.  Ownership of a partition is a monotonically increasing epoch:
    :meth:`claim` bumps it, and :meth:`save` succeeds only with the current one, so
    a stale owner (a paused or partitioned consumer) cannot overwrite state.
    """

    def claim(self, scope: str, partition: TopicPartition) -> PartitionState:
        """Become the owner: bump the epoch, return it with the saved state."""
        ...

    def peek(self, scope: str, partition: TopicPartition) -> PartitionState:
        """Read the saved state without claiming (epoch as it stands, 0 if never claimed)."""
        ...

    def partitions(self, scope: str) -> list[TopicPartition]:
        """Every partition with saved state in ``scope``, sorted (for operators' tools)."""
        ...

    def save(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        counters: Mapping[str, int],
        changed: Mapping[str, bytes],
        deleted: Iterable[str] = (),
    ) -> None:
        """Atomically write changed snapshots, deletions, offset and counters.

        Raises :class:`riskstream.errors.FencedError` (and writes nothing) when
        ``epoch`` is no longer the partition's current epoch.
        """
        ...

    #: Whether a process forked from this one may save for it: true for a server the
    #: child reaches over its own connection, false for state held in this process.
    forkable: bool

    def saved_elsewhere(
        self,
        scope: str,
        partition: TopicPartition,
        epoch: int,
        offset: int,
        unreplicated: bool = False,
    ) -> None:
        """A :meth:`save` at ``epoch`` up to ``offset`` that a forked process made
        landed: later saves here go on from it as from one made here (``unreplicated``:
        it landed short of the replicas it waited for)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What became of a :class:`FlagChange`.

    ``applied``: written and audited, its events in the outbox.  ``duplicate``: this
    change id was applied before (a redelivery); nothing written.  ``conflict``: the
    flag's revision is no longer the expected one; nothing written — decide again on
    ``current``.  ``dropped``: the ids of the oldest events the outbox let go to make
    room for this change's (it keeps :data:`MAX_OUTBOX`); their changes stay in the
    audit trail.
    """

    outcome: Literal["applied", "duplicate", "conflict"]
    current: RoutingFlag | None
    dropped: tuple[str, ...] = ()


class Outbox(NamedTuple):
    """The oldest events waiting to be published, and how many wait in all."""

    events: list[OutboxEvent]
    size: int


class FlagStore(Protocol):
    """Routing flags with compare-and-set, at-most-once changes and an audit chain.

    :meth:`apply` is atomic: the flag, the record that ``change_id`` was applied,
    the audit entry and the change's events (its outbox entries) are written together
    or not at all, and subscribers of the store (the router clients) are notified.
    The events wait in the outbox, oldest first, until :meth:`delivered` removes them
    (:mod:`riskstream.core.outbox`); a store keeps at most :data:`MAX_OUTBOX`.
    """

    def get(self, model_id: str) -> RoutingFlag | None: ...

    def all(self) -> dict[str, RoutingFlag]: ...

    def count(self) -> int:
        """How many models have a flag (without reading them)."""
        ...

    def apply(self, change: FlagChange, at: float) -> ApplyResult: ...

    def outbox(self, limit: int = 100) -> Outbox:
        """Up to ``limit`` events waiting to be published, in the order their changes
        were applied, and how many wait in all."""
        ...

    def delivered(self, event_ids: Sequence[str]) -> None:
        """Remove these events from the outbox (the broker took them); ids not in it
        are ignored (another process published them first)."""
        ...

    def record_event(
        self, change_id: str, model_id: str, actor: str, at: float, event: dict[str, object]
    ) -> bool:
        """Append a non-flag event (an acknowledgement, a rejection…) to the audit chain.

        The entry's ``before`` is ``None`` and its ``after`` is ``event``, which
        carries an ``"event"`` key naming what happened.  False (nothing written)
        if ``change_id`` was recorded or applied before.
        """
        ...

    def audit(self, start: int = 0, count: int | None = None) -> list[AuditEntry]: ...

    def verify_audit(self) -> AuditReport:
        """Recompute the chain; report the first entry edited, removed or reordered."""
        ...

    def close(self) -> None: ...


class ApprovalStore(Protocol):
    """Pending actions and their decisions; a decision is made once."""

    def add(self, pending: PendingAction) -> bool:
        """Store a new pending action; False (and nothing changed) if its id exists."""
        ...

    def get(self, action_id: str) -> PendingAction | None: ...

    def list(
        self,
        status: str | None = None,
        *,
        incident_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[PendingAction]:
        """Actions of one status (``None``: any), oldest request first; of one incident
        if given (grouped actions holding it included).  ``after`` (an action id: the
        last of the previous page) and ``limit`` page through them, each page at a cost
        that does not grow with the number stored.  Fewer than ``limit`` only where they
        end (a list takes that for its end): one it leaves out (one that cannot be read)
        is read past."""
        ...

    def summary(self) -> ActionSummary:
        """How many actions are pending, the oldest request and the next deadline."""
        ...

    def due(self, now: float) -> builtins.list[PendingAction]:
        """Pending actions whose deadline has passed."""
        ...

    def join(self, action_id: str, member: Member) -> bool:
        """Add an incident to a pending grouped action; False if it is in already.

        Raises :class:`riskstream.errors.ContainmentError` when the action is unknown
        or no longer pending (start a new group then).
        """
        ...

    def members(self, action_id: str, *, strict: bool = False) -> builtins.list[Member]:
        """A grouped action's incidents, in the order they joined.

        A member record the store cannot read (written by something else) is left
        out, with a warning naming it and how to repair it, as lists leave out the
        records they cannot read: one bad record must not hide the others.  With
        ``strict`` it raises :class:`riskstream.errors.StateStoreError` saying so
        instead: carrying the action out must reach every member, not the readable
        ones only.
        """
        ...

    def decide(
        self, action_id: str, status: str, by: str, at: float, note: str = ""
    ) -> PendingAction:
        """Move a pending action to approved / rejected / expired, atomically.

        Raises :class:`riskstream.errors.ContainmentError` when it is unknown,
        already decided, or the rules (e.g. a separate approver) forbid it.
        """
        ...

    def mark_applied(self, action_id: str) -> None:
        """Record that an approved action was carried out."""
        ...

    def expire_approved(self, action_id: str, by: str, at: float, note: str = "") -> PendingAction:
        """Move an approved action not yet applied to expired, atomically: its incident
        was resolved before it was carried out to the end (see
        :func:`riskstream.core.flag_checks.expired_unapplied`).

        Raises :class:`riskstream.errors.ContainmentError` when it is unknown or not
        approved (applied or expired meanwhile).
        """
        ...

    def close(self) -> None: ...


class IncidentStore(Protocol):
    """Incident records (see :mod:`riskstream.core.incident_records`), read and folded.

    :meth:`update` is an atomic read-modify-write, so the containment worker
    recording an action and a person acknowledging at the same moment both land.
    """

    def update(
        self, incident_id: str, change: Callable[[IncidentRecord | None], IncidentRecord | None]
    ) -> IncidentRecord | None:
        """Apply ``change`` to the stored record (``None`` if none) and store its result.

        ``change`` may run more than once (on a concurrent write) and must be pure;
        returning ``None`` writes nothing.
        """
        ...

    def get(self, incident_id: str) -> IncidentRecord | None: ...

    def recent(self, limit: int = 500, after: str | None = None) -> list[IncidentRecord]:
        """Up to ``limit`` records, the most recently detected first (then by id, last
        first); ``after``: those that come after that incident in this order (none if
        it is not stored).  Fewer than ``limit`` only where the order ends (a list
        takes that for its end).  Reads ``limit`` records, wherever ``after`` is, and
        one more for each it leaves out (one that cannot be read)."""
        ...

    def near(
        self, subjects: Iterable[str], since: float, until: float, limit: int | None = None
    ) -> list[IncidentRecord]:
        """The records of these subjects detected from ``since`` to ``until`` (data time),
        read through a per-subject index: what correlating a new incident needs, at a
        cost that does not grow with the incidents stored.  ``limit``: at most that many
        per subject, the earliest detected (then by id), so that a flood of incidents on
        one subject does not make each new one read all the others."""
        ...

    def close(self) -> None: ...


class FlagEpoch(Protocol):
    """The containment worker's generation marker beside the flags it writes.

    Gone means the store lost the flags (a Redis restart without persistence): the
    worker writes its decisions back, and routers keep serving theirs, stale,
    until it has (see :mod:`riskstream.services.flag_epoch`).
    """

    def read(self) -> tuple[str | None, dict[str, bytes]]:
        """The epoch (None: there is none) and every flag's stored JSON, read together."""
        ...

    def restore(self, epoch: str, flags: Mapping[str, bytes]) -> int | None:
        """Write the flags that are missing and then the epoch, atomically, announcing
        each; the number written, or None when an epoch exists (nothing written)."""
        ...

    def probe_write(self) -> None:
        """One small write; raises StateStoreError when the store refuses writes."""
        ...


class TicketSystem(Protocol):
    """A ticket system (Jira, GitHub Issues, ServiceNow), in the few verbs the ticketer needs.

    Every method raises :class:`riskstream.errors.TicketSystemError` on a failure;
    none retries by itself (the ticketer decides, honouring ``retry_after_s``).
    """

    name: str

    def find(self, external_id: str) -> TicketRef | None:
        """The ticket carrying ``external_id`` (label or correlation id), if any."""
        ...

    def create(self, draft: TicketDraft) -> TicketRef: ...

    def comment_texts(self, ticket: TicketRef) -> list[str]:
        """The text of every comment (work note) on the ticket, to find markers in."""
        ...

    def comment(self, ticket: TicketRef, text: str) -> None: ...

    def close(self, ticket: TicketRef, text: str) -> None:
        """Close (resolve) the ticket with ``text`` as the closing note."""
        ...

    def closure(self, ticket: TicketRef) -> TicketClosure | None:
        """``None`` while the ticket is open; else its closed state and, where the API
        says, who closed it (for ``tickets.resolve_on_close``)."""
        ...


class Webhook(Protocol):
    """One HTTP POST of a JSON body; every outcome is a result, never an exception."""

    def post(self, url: str, body: bytes, timeout: float) -> AttemptResult: ...


MAX_CHANGES = 100_000
"""Change events a :class:`ChangeLog` keeps at most, the newest (besides its retention):
they are few, and each incident's enrichment reads those of its window, so a flood of
change events must neither fill Redis nor slow every incident down."""


class ChangeLog(Protocol):
    """Recent change events (deploys, prompt and pipeline changes), shared by processors.

    Each processor reads only its partitions of the change topic, but an incident
    must be correlated with every change; so they all write here and read here.
    At most :data:`MAX_CHANGES` are kept, the newest.
    """

    def add(self, change: Mapping[str, Any]) -> None:
        """Keep one change event (adding the same event twice keeps it once)."""
        ...

    def add_many(self, changes: Sequence[Mapping[str, Any]]) -> None:
        """Keep these change events: what ``add`` on each, in order, would keep, at the
        cost of one call (a processor stores each batch's changes with one)."""
        ...

    def between(self, subjects: Sequence[str], start: float, end: float) -> list[dict[str, Any]]:
        """The changes on ``subjects`` with data time in ``[start, end]``, oldest first."""
        ...

    def close(self) -> None: ...
