"""Playbooks: which incident gets which containment, decided in pure code.

A playbook matches incidents (type, severity, subject) and lists actions in
order.  Each action says what routing it wants, whether a person must approve
it first, and whether it is undone when the incident resolves.  This module
only decides; the containment service carries decisions out, so the same logic
runs in the faust worker, the embedded demo and the tests.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.routing import RoutingFlag
from riskstream.core.storms import Storms
from riskstream.errors import ConfigError, ContainmentError

__all__ = [
    "ACTION_KINDS",
    "LAST_KNOWN_GOOD",
    "Action",
    "Approval",
    "ContainmentPolicy",
    "Limits",
    "ModelPolicy",
    "Playbook",
    "gated_by_approval",
    "select_playbook",
    "target_flag",
]

ACTION_KINDS = ("route-to-version", "fallback", "human-review", "shadow", "block", "notify")
LAST_KNOWN_GOOD = "last-known-good"
_MODE_OF = {
    "route-to-version": "normal",
    "fallback": "fallback",
    "human-review": "human-review",
    "shadow": "shadow",
    "block": "blocked",
}


@dataclass(frozen=True, slots=True)
class Approval:
    """Whether an action waits for a person, and for how long."""

    required: bool = False
    timeout_s: float | None = None
    on_timeout: str = "reject"  # or "apply"
    separate_approver: bool = True

    def __post_init__(self) -> None:
        if self.on_timeout not in ("reject", "apply"):
            raise ConfigError(
                f"approval.on_timeout must be reject or apply, not {self.on_timeout!r}"
            )


@dataclass(frozen=True, slots=True)
class Action:
    kind: str
    version: str | None = None  # route-to-version: a version, or "last-known-good"
    fraction: float = 1.0  # share of traffic the mode applies to
    approval: Approval = field(default_factory=Approval)
    revert_on_resolve: bool = False
    ttl_s: float | None = None  # the flag lapses after this long
    channel: str | None = None  # notify: who to tell

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ConfigError(f"unknown action {self.kind!r}; known: {', '.join(ACTION_KINDS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"{self.kind}: fraction must be in (0, 1], got {self.fraction}")
        if self.kind == "route-to-version" and not self.version:
            raise ConfigError(f"route-to-version needs a version (a name, or {LAST_KNOWN_GOOD!r})")

    @property
    def changes_routing(self) -> bool:
        return self.kind != "notify"

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "fraction": self.fraction,
            "revert_on_resolve": self.revert_on_resolve,
            "ttl_s": self.ttl_s,
            "channel": self.channel,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            kind=data["kind"],
            version=data.get("version"),
            fraction=float(data.get("fraction", 1.0)),
            revert_on_resolve=bool(data.get("revert_on_resolve", False)),
            ttl_s=data.get("ttl_s"),
            channel=data.get("channel"),
        )


@dataclass(frozen=True, slots=True)
class Playbook:
    name: str
    actions: tuple[Action, ...]
    types: frozenset[str] = frozenset()  # empty: any
    severities: frozenset[str] = frozenset()
    subjects: tuple[str, ...] = ()  # shell-style patterns; empty: any

    def matches(self, incident: Mapping[str, Any]) -> bool:
        if self.types and incident.get("type") not in self.types:
            return False
        if self.severities and incident.get("severity") not in self.severities:
            return False
        subject = str(incident.get("subject", ""))
        return not self.subjects or any(fnmatch.fnmatchcase(subject, p) for p in self.subjects)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much automatic (unapproved) containment may touch per window."""

    window_s: float = 3600.0
    max_models: int = 10
    max_traffic_fraction: float = 1.0
    storms: Storms = field(default_factory=Storms)  # many incidents of one monitor: one action


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """What riskstream knows of one model: its fallback and a known-good version."""

    fallback_version: str | None = None
    known_good: str | None = None
    risk_class: str = "minimal"


def gated_by_approval(
    playbooks: Sequence[Playbook], model_id: str, mode: str | None, changes_version: bool
) -> str:
    """Why a manual change to ``model_id`` is one the playbooks let happen only with a
    person's approval ('' if none): an approval-gated action of a playbook that can
    match the model sets the same mode (or, for a version change, any version).

    >>> gated = Action("block", approval=Approval(required=True))
    >>> books = [Playbook("p", (gated,), subjects=("chat*",))]
    >>> gated_by_approval(books, "chatbot", "blocked", False)
    "playbook p's block needs approval"
    >>> gated_by_approval(books, "chatbot", "shadow", False)
    ''
    >>> gated_by_approval(books, "x", "blocked", False)
    ''
    """
    for book in playbooks:
        if book.subjects and not any(fnmatch.fnmatchcase(model_id, p) for p in book.subjects):
            continue
        for action in book.actions:
            if not action.approval.required or not action.changes_routing:
                continue
            same_mode = mode is not None and _MODE_OF[action.kind] == mode and mode != "normal"
            version = changes_version and action.kind in ("route-to-version", "fallback")
            if same_mode or version:
                return f"playbook {book.name}'s {action.kind} needs approval"
    return ""


def select_playbook(playbooks: Sequence[Playbook], incident: Mapping[str, Any]) -> Playbook | None:
    """The first playbook that matches, in config order."""
    return next((p for p in playbooks if p.matches(incident)), None)


def last_known_good(history: Iterable[tuple[float, str | None, str]], onset: float) -> str | None:
    """The version that served before the last version change at or before ``onset``.

    ``history`` holds (time, version before, version after) of a model's version
    changes, oldest first (deploys and rollbacks, from the audit trail).

    >>> h = [(10.0, None, "v1"), (20.0, "v1", "v2"), (30.0, "v2", "v3")]
    >>> last_known_good(h, onset=25.0), last_known_good(h, onset=35.0)
    ('v1', 'v2')
    >>> last_known_good(h, onset=5.0) is None
    True
    """
    good = None
    for at, before, after in history:
        if at > onset:
            break
        if before != after:
            good = before
    return good


def target_flag(
    action: Action,
    incident: Mapping[str, Any],
    current: RoutingFlag | None,
    policy: ModelPolicy,
    known_good: str | None,
    at: float,
    actor: str,
) -> RoutingFlag:
    """The flag the action wants, on top of the current one (revision + 1)."""
    model_id = str(incident["subject"])
    base = current or RoutingFlag(model_id=model_id, active_version=policy.known_good or "unknown")
    version = base.active_version
    if action.kind == "route-to-version":
        version = action.version or ""
        if version == LAST_KNOWN_GOOD:
            version = known_good or policy.known_good or ""
            if not version:
                raise ContainmentError(
                    f"no known-good version for {model_id}: no version change before the "
                    f"onset in the audit trail and none configured (models.{model_id}.known_good)"
                )
    elif action.kind == "fallback":
        if not policy.fallback_version:
            raise ContainmentError(
                f"no fallback for {model_id}: set models.{model_id}.fallback_version"
            )
        version = policy.fallback_version
    evidence = incident.get("evidence") or {}
    summary = str(evidence.get("summary") or incident.get("type", "incident"))
    return base.evolve(
        active_version=version,
        mode=_MODE_OF[action.kind],
        traffic_fraction=action.fraction,
        reason=f"{action.kind} for incident {incident['incident_id']}: {summary}",
        incident_id=str(incident["incident_id"]),
        actor=actor,
        revision=base.revision + 1,
        updated_at=at,
        expires_at=None if action.ttl_s is None else at + action.ttl_s,
    )


@dataclass(frozen=True, slots=True)
class ContainmentPolicy:
    playbooks: Sequence[Playbook] = ()
    models: Mapping[str, ModelPolicy] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    routing_changes_topic: str = "routing-changes"

    def model(self, model_id: str) -> ModelPolicy:
        return self.models.get(model_id) or ModelPolicy()
