"""The checks every flag and approval store applies, whatever it stores in.

The in-memory and the Redis stores must refuse the same things with the same words
(``tests/contract`` runs one suite over both), so the rules live here, beside the
routing and approval types they guard, rather than in one adapter the other imports.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from riskstream.core.approvals import STATUSES, Member, PendingAction, check_decision
from riskstream.core.outbox import check_events
from riskstream.core.routing import FlagChange
from riskstream.errors import ContainmentError

__all__ = [
    "applied",
    "check_audit_range",
    "check_change",
    "check_event",
    "check_list",
    "check_new_pending",
    "decided",
    "expired_unapplied",
    "index_member",
    "member_from_json",
    "member_to_json",
    "pending_from_json",
    "pending_to_json",
    "refuse_join",
    "unknown_action",
    "unknown_cursor",
]


def check_change(change: FlagChange) -> None:
    """Refuse a malformed change before anything is read or written."""
    if not change.change_id:
        raise ContainmentError(
            f"flag change for model {change.flag.model_id!r} has an empty change_id; "
            "build it with riskstream.core.routing.change_id()"
        )
    if change.flag.revision != change.expected_revision + 1:
        raise ContainmentError(
            f"flag change {change.change_id} for model {change.flag.model_id!r} carries "
            f"revision {change.flag.revision} but expects the current one to be "
            f"{change.expected_revision}: the new revision must be "
            f"{change.expected_revision + 1}; nothing changed"
        )
    check_events(change.change_id, change.events)


def check_event(event: dict[str, object]) -> None:
    """An audit event names itself and cannot be mistaken for a flag."""
    if not isinstance(event.get("event"), str) or not event["event"]:
        raise ContainmentError(f"audit event {event!r} needs a non-empty 'event' key")
    if "active_version" in event:
        raise ContainmentError("an audit event must not carry a flag's 'active_version'")


def check_audit_range(start: int, count: int | None) -> None:
    if start < 0:
        raise ValueError(f"start must be >= 0 (the last seq already seen), got {start}")
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0 or None (all), got {count}")


def pending_to_json(pending: PendingAction) -> bytes:
    try:
        return orjson.dumps(pending.to_data())
    except TypeError as exc:  # orjson.JSONEncodeError
        raise ContainmentError(
            f"pending action {pending.action_id} cannot be stored: {exc}; its action and "
            "labels must be plain JSON data (str, int, float, bool, None, list, dict)"
        ) from exc


def pending_from_json(data: bytes | str) -> PendingAction:
    return PendingAction.from_data(orjson.loads(data))


def check_new_pending(pending: PendingAction) -> None:
    if pending.status != "pending":
        raise ContainmentError(
            f"action {pending.action_id} is {pending.status}, not pending: only a new, "
            "undecided action can be added; nothing stored"
        )


def unknown_action(action_id: str, doing: str) -> ContainmentError:
    return ContainmentError(
        f"cannot {doing} action {action_id}: no such action is stored "
        "(list them with `riskstream actions list --status all`)"
    )


def decided(pending: PendingAction, status: str, by: str, at: float, note: str) -> PendingAction:
    """``pending`` decided, if :func:`~riskstream.core.approvals.check_decision` allows."""
    check_decision(pending, status, by)
    return pending.decided(status, by, float(at), note)


def applied(pending: PendingAction) -> PendingAction:
    """``pending``, approved, marked carried out."""
    _refuse_unless_approved(pending, "marked applied")
    return replace(pending, status="applied")


def expired_unapplied(pending: PendingAction, by: str, at: float, note: str) -> PendingAction:
    """``pending``, approved but not applied, expired: its incident was resolved before
    it was carried out to the end, so nothing more is done for it.  ``by``, ``at`` and
    ``note`` say who closed it, when and why (the approval stays in the audit trail
    and on the incident's timeline).

    >>> p = PendingAction("a1", "i1", "m", {}, "x", 0.0, None).decided("approved", "dr.lee", 1.0)
    >>> expired_unapplied(p, "riskstream/containment", 2.0, "incident i1 resolved").status
    'expired'
    >>> expired_unapplied(p.decided("rejected", "x", 1.0), "y", 2.0, "")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskstream.errors.ContainmentError: action a1 is rejected, not approved: ...
    """
    _refuse_unless_approved(pending, "expired unapplied")
    return pending.decided("expired", by, float(at), note)


def _refuse_unless_approved(pending: PendingAction, doing: str) -> None:
    """Only an approved action moves on: to applied, or to expired unapplied."""
    if pending.status != "approved":
        raise ContainmentError(
            f"action {pending.action_id} is {pending.status}, not approved: only an "
            f"approved action can be {doing}; nothing changed"
        )


def check_list(status: str | None, limit: int | None) -> None:
    """Refuse a status no action can have, and a page size below one."""
    if status is not None and status not in STATUSES:
        raise ContainmentError(f"action status {status!r}: use one of {', '.join(STATUSES)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None (all), got {limit}")


def index_member(pending: PendingAction) -> str:
    """The action's place in a status index: its request time, zero-padded so that
    the byte order of the strings is the time order, then its id (ties).

    >>> index_member(PendingAction("a1", "i", "m", {}, "x", 1796231031.5, None))
    '00001796231031.500000|a1'
    """
    return f"{max(pending.requested_at, 0.0):021.6f}|{pending.action_id}"


def unknown_cursor(after: str) -> ContainmentError:
    return ContainmentError(
        f"cannot page after action {after!r}: no such action is stored; start again "
        "without a cursor"
    )


def refuse_join(pending: PendingAction) -> None:
    if pending.group is None:
        raise ContainmentError(
            f"action {pending.action_id} is not a grouped action; nothing joined"
        )
    if pending.status != "pending":
        raise ContainmentError(
            f"grouped action {pending.action_id} is {pending.status}, not pending: "
            "start a new group; nothing joined"
        )


def member_to_json(member: Member) -> bytes:
    return orjson.dumps(member.to_data())


def member_from_json(data: bytes | str) -> Member:
    return Member.from_data(orjson.loads(data))
