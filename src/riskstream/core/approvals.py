"""Actions that wait for a person: what was asked, by whom, and what was decided.

Human oversight (EU AI Act Article 14) means some containment must not happen
until a named person says so, and that the record shows who decided and when.
A :class:`PendingAction` is that record; its ``status`` moves once, from
``pending`` to ``approved``, ``rejected`` or ``expired`` (and approved ones on to
``applied``), never back.

An incident storm (many incidents of one monitor in a short window, see
:mod:`riskstream.core.storms`) is held as one *grouped* action: ``group`` names the
monitor, and its :class:`Member` incidents are stored beside it, so a person
decides once for all of them and each member is still changed at most once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from riskstream.errors import ContainmentError, NotPermittedError

__all__ = [
    "DECIDED",
    "GROUPED_MODEL",
    "STATUSES",
    "ActionSummary",
    "Member",
    "PendingAction",
    "check_decision",
]

DECIDED = ("approved", "rejected", "expired")
STATUSES = ("pending", *DECIDED, "applied")
GROUPED_MODEL = "*"  # the model_id of a grouped action: each member names its own


@dataclass(frozen=True, slots=True)
class PendingAction:
    """One action of a playbook held for approval.

    ``action`` is the playbook action as plain data (kind, version, mode,
    fraction…), so it can be carried out later on whatever the flag is then.
    """

    action_id: str
    incident_id: str
    model_id: str
    action: dict[str, Any]
    requested_by: str
    requested_at: float
    expires_at: float | None
    on_timeout: str = "reject"  # or "apply"
    separate_approver: bool = True
    status: str = "pending"
    decided_by: str | None = None
    decided_at: float | None = None
    note: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    group: str | None = None  # a storm's grouped action: the monitor whose incidents it holds

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PendingAction:
        return cls(**data)

    def decided(self, status: str, by: str, at: float, note: str = "") -> PendingAction:
        return replace(self, status=status, decided_by=by, decided_at=at, note=note)


@dataclass(frozen=True, slots=True)
class Member:
    """One incident held in a grouped action: what to change, and where.

    ``index`` is the action's place in the incident's playbook, so carrying it out
    uses the same change id as it would have alone (at most once either way).
    """

    incident_id: str
    model_id: str
    index: int
    at: float
    labels: dict[str, str] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Member:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ActionSummary:
    """What the pending gauges show, read in constant time: how many wait, since when,
    and the next deadline (0 for none)."""

    pending: int
    oldest: float
    next_deadline: float


def check_decision(pending: PendingAction, status: str, by: str) -> None:
    """Refuse a decision the rules forbid, saying which rule and what to do.

    >>> p = PendingAction("a1", "i1", "m", {}, "riskstream/containment", 0.0, None)
    >>> check_decision(p, "approved", "dr.lee")
    >>> check_decision(p.decided("rejected", "x", 1.0), "approved", "dr.lee")
    Traceback (most recent call last):
    ...
    riskstream.errors.ContainmentError: action a1 is already rejected (by x); nothing changed
    """
    if status not in DECIDED:
        raise ContainmentError(f"unknown decision {status!r}; use one of {', '.join(DECIDED)}")
    if not by.strip():
        raise ContainmentError("a decision needs the name of the person who made it")
    if pending.status != "pending":
        raise ContainmentError(
            f"action {pending.action_id} is already {pending.status} "
            f"(by {pending.decided_by}); nothing changed"
        )
    if status == "approved" and pending.separate_approver and by == pending.requested_by:
        raise NotPermittedError(
            f"{by} requested action {pending.action_id} and may not approve it too; "
            "ask another approver"
        )
