"""Actions that wait for a person: what was asked, by whom, and what was decided.

Human oversight (EU AI Act Article 14) means some containment must not happen
until a named person says so, and that the record shows who decided and when.
A :class:`PendingAction` is that record; its ``status`` moves once, from
``pending`` to ``approved``, ``rejected`` or ``expired`` (and approved ones on to
``applied``, or to ``expired`` when their incident is resolved before they are carried
out to the end), never back.

An incident storm (many incidents of one monitor in a short window, see
:mod:`riskstream.core.storms`) is held as one *grouped* action: ``group`` names the
monitor, and its :class:`Member` incidents are stored beside it, so a person
decides once for all of them and each member is still changed at most once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from riskstream.core.playbooks import Action
from riskstream.core.timeutil import parse_time
from riskstream.errors import ConfigError, ContainmentError, NotPermittedError

__all__ = [
    "DECIDED",
    "GROUPED_MODEL",
    "STATUSES",
    "ActionSummary",
    "Member",
    "PendingAction",
    "carry_out_problem",
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
        """What :meth:`to_data` wrote; ``ValueError`` naming the field for anything else.

        >>> PendingAction.from_data({"action_id": "a1", "incident_id": "i1", "model_id": "m",
        ...     "action": {}, "requested_by": "x", "requested_at": "noon", "expires_at": None})
        Traceback (most recent call last):
        ...
        ValueError: field 'requested_at' must be a number, got 'noon'
        """
        _check_fields(cls, data, _PENDING_TYPES)
        return cls(**data)

    def decided(self, status: str, by: str, at: float, note: str = "") -> PendingAction:
        return replace(self, status=status, decided_by=by, decided_at=at, note=note)

    @property
    def kind(self) -> str:
        """The action's kind, for metrics and the timeline ("unknown" in a record that
        lacks one: a rejection of it must still be recorded in full)."""
        return str(self.action.get("kind") or "unknown")


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
        """What :meth:`to_data` wrote; ``ValueError`` naming the field for anything else."""
        _check_fields(cls, data, _MEMBER_TYPES)
        return cls(**data)


# field -> (the types it may hold, what to call them); None is allowed where the default is
_Types = Mapping[str, tuple[tuple[type, ...], str]]
_TEXT: tuple[tuple[type, ...], str] = ((str,), "a string")
_NUMBER: tuple[tuple[type, ...], str] = ((int, float), "a number")
_OBJECT: tuple[tuple[type, ...], str] = ((dict,), "an object")
_PENDING_TYPES: _Types = {
    "action_id": _TEXT, "incident_id": _TEXT, "model_id": _TEXT, "action": _OBJECT,
    "requested_by": _TEXT, "requested_at": _NUMBER, "expires_at": _NUMBER,
    "on_timeout": _TEXT, "separate_approver": ((bool,), "true or false"), "status": _TEXT,
    "decided_by": _TEXT, "decided_at": _NUMBER, "note": _TEXT, "labels": _OBJECT,
    "group": _TEXT,
}  # fmt: skip
_MEMBER_TYPES: _Types = {
    "incident_id": _TEXT, "model_id": _TEXT, "index": ((int,), "a whole number"),
    "at": _NUMBER, "labels": _OBJECT,
}  # fmt: skip
_MAY_BE_NULL = ("expires_at", "decided_by", "decided_at", "group")


def _check_fields(cls: type, data: Any, types: _Types) -> None:
    """Refuse data :func:`dataclasses.asdict` of ``cls`` would not have written."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(data) - known):
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    for name, (kinds, what) in types.items():
        if name not in data:
            continue
        value = data[name]
        if value is None and name in _MAY_BE_NULL:
            continue
        wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        if wrong or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"field {name!r} must be {what}, got {value!r:.80}")


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


# What carrying an action out reads of the incident it was held for (the labels copied
# from it then): the model whose flag changes, and the incident the change is for.
_CARRIED_LABELS = ("subject", "incident_id")


def carry_out_problem(pending: PendingAction, members: Sequence[Member] = ()) -> str | None:
    """What in the stored record of ``pending`` (and of its ``members``, for a grouped
    action) would stop an approval of it being carried out, naming the field; ``None``
    when nothing would.

    Checked before an approval is recorded: a record something other than riskstream
    wrote is refused with nothing recorded, rather than approved with nothing applied.

    >>> p = PendingAction("a1", "i1", "bot", {"kind": "block"}, "riskstream/containment",
    ...                   0.0, None, labels={"incident_id": "i1", "subject": "bot"})
    >>> carry_out_problem(p)
    >>> carry_out_problem(replace(p, labels={"incident_id": "i1"}))
    "field 'labels.subject' is missing (the model whose flag the action changes)"
    """
    try:
        Action.from_data(pending.action)
    except KeyError as exc:
        return f"field 'action' has no {exc} (what to do)"
    except (ConfigError, TypeError, ValueError) as exc:
        return f"field 'action' {pending.action!r:.120} is not an action riskstream runs: {exc}"
    if pending.group is None:
        return _labels_problem("labels", pending.labels)
    for member in members:
        problem = _labels_problem(f"labels of member {member.incident_id}", member.labels)
        if problem is not None:
            return problem
    return None


def _labels_problem(where: str, labels: Mapping[str, Any]) -> str | None:
    what = {"subject": "the model whose flag the action changes",
            "incident_id": "the incident the change is for"}  # fmt: skip
    for name in _CARRIED_LABELS:
        value = labels.get(name)
        if value is None:
            return f"field '{where}.{name}' is missing ({what[name]})"
        if not isinstance(value, str) or not value.strip():
            return (
                f"field '{where}.{name}' must be a non-empty string ({what[name]}), "
                f"got {value!r:.80}"
            )
    onset = labels.get("onset_at")
    if onset:
        try:
            parse_time(str(onset))
        except (ValueError, OverflowError):
            return f"field '{where}.onset_at' {onset!r:.80} is not an RFC 3339 time"
    return None
