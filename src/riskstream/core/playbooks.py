"""Playbooks: which incident gets which containment, decided in pure code.

A playbook matches incidents (type, severity, subject) and lists actions in
order.  Each action says what routing it wants, whether a person must approve
it first, and whether it is undone when the incident resolves.  A routing action
may name several candidate ``targets`` (checked in order by
:mod:`riskstream.core.targets`) and shift traffic in ``steps`` with a dwell.  This module
only decides; the containment service carries decisions out, so the same logic
runs in the faust worker, the embedded demo and the tests.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.routing import Rollout, RoutingFlag
from riskstream.core.storms import Storms
from riskstream.errors import ConfigError, ContainmentError

__all__ = [
    "ACTION_KINDS",
    "FALLBACK",
    "LAST_KNOWN_GOOD",
    "Action",
    "Approval",
    "Candidate",
    "ContainmentPolicy",
    "Limits",
    "ModelPolicy",
    "Playbook",
    "candidates",
    "gated_by_approval",
    "select_playbook",
    "target_flag",
]

ACTION_KINDS = ("route-to-version", "fallback", "human-review", "shadow", "block", "notify")
LAST_KNOWN_GOOD = "last-known-good"
FALLBACK = "fallback"  # as a target: the model's fallback_version, in fallback mode
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
    # route-to-version / fallback: candidates after the first, in order (a version,
    # last-known-good or fallback); each is checked before it is chosen
    targets: tuple[str, ...] = ()
    require_evidence: bool = False  # refuse a target riskstream knows nothing of
    steps: tuple[float, ...] = ()  # rising fractions; the last is the action's fraction
    dwell_s: float = 0.0  # how long each step is watched before the next

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ConfigError(f"unknown action {self.kind!r}; known: {', '.join(ACTION_KINDS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"{self.kind}: fraction must be in (0, 1], got {self.fraction}")
        if self.kind == "route-to-version" and not self.version:
            raise ConfigError(f"route-to-version needs a version (a name, or {LAST_KNOWN_GOOD!r})")
        picks = self.kind in ("route-to-version", "fallback")
        if (self.targets or self.require_evidence) and not picks:
            raise ConfigError(
                f"{self.kind}: targets and require_evidence apply to route-to-version and "
                "fallback only"
            )
        if self.steps:
            if not self.changes_routing:
                raise ConfigError("notify: steps apply to actions that change routing")
            if any(not 0.0 < s <= 1.0 for s in self.steps) or list(self.steps) != sorted(
                set(self.steps)
            ):
                raise ConfigError(
                    f"{self.kind}: steps must rise strictly, each a percentage above 0 and "
                    f"at most 100, got {[round(s * 100, 6) for s in self.steps]}"
                )
            if self.steps[-1] != self.fraction:
                raise ConfigError(
                    f"{self.kind}: the last step ({self.steps[-1]:.0%}) must be the action's "
                    f"fraction ({self.fraction:.0%}); give one or the other"
                )
            if len(self.steps) > 1 and not self.dwell_s > 0:
                raise ConfigError(
                    f"{self.kind}: steps need a dwell (seconds each step is watched "
                    "before the next), e.g. dwell: 300"
                )
        elif self.dwell_s:
            raise ConfigError(f"{self.kind}: a dwell needs steps, e.g. steps: [10, 50, 100]")

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
            "targets": list(self.targets),
            "require_evidence": self.require_evidence,
            "steps": list(self.steps),
            "dwell_s": self.dwell_s,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Action:
        """An action stored by any version (one stored before steps reads as 100 % at once)."""
        return cls(
            kind=data["kind"],
            version=data.get("version"),
            fraction=float(data.get("fraction", 1.0)),
            revert_on_resolve=bool(data.get("revert_on_resolve", False)),
            ttl_s=data.get("ttl_s"),
            channel=data.get("channel"),
            targets=tuple(data.get("targets") or ()),
            require_evidence=bool(data.get("require_evidence", False)),
            steps=tuple(float(s) for s in data.get("steps") or ()),
            dwell_s=float(data.get("dwell_s") or 0.0),
        )

    @property
    def first_fraction(self) -> float:
        """The share of traffic the action's first write moves."""
        return self.steps[0] if self.steps else self.fraction


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
    # Flags a deploy change event may create, at most: one for a model with no flag yet,
    # beyond this many flags, is refused unless the model is declared under `models`.
    # Each flag is ~1 KB in Redis and in every router's memory, and the worker's timer
    # reads them all each second: a flood of made-up model ids must not grow them.
    max_flags: int = 10_000


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """One target an action may route to: its name in the playbook, the version it
    resolves to and the mode it serves in (or why it resolves to none)."""

    label: str
    version: str
    mode: str
    problem: str = ""


def candidates(
    action: Action, model_id: str, policy: ModelPolicy, known_good: str | None
) -> list[Candidate]:
    """The action's targets in order: its own (version or fallback), then ``targets``.

    >>> a = Action("route-to-version", version=LAST_KNOWN_GOOD, targets=(FALLBACK,))
    >>> [(c.version, c.mode) for c in candidates(a, "bot", ModelPolicy("canned"), "bot-1.4")]
    [('bot-1.4', 'normal'), ('canned', 'fallback')]
    >>> candidates(Action("fallback"), "bot", ModelPolicy(), None)[0].problem
    'no fallback for bot: set models.bot.fallback_version'
    """
    first = FALLBACK if action.kind == "fallback" else str(action.version)
    found = []
    for label in (first, *action.targets):
        if label == FALLBACK:
            version = policy.fallback_version or ""
            problem = "" if version else (
                f"no fallback for {model_id}: set models.{model_id}.fallback_version"
            )  # fmt: skip
            found.append(Candidate(label, version, "fallback", problem))
        elif label == LAST_KNOWN_GOOD:
            version = known_good or policy.known_good or ""
            problem = "" if version else (
                f"no known-good version for {model_id}: no version change before the "
                f"onset in the audit trail and none configured (models.{model_id}.known_good)"
            )  # fmt: skip
            found.append(Candidate(label, version, "normal", problem))
        else:
            found.append(Candidate(label, label, "normal"))
    return found


def target_flag(
    action: Action,
    incident: Mapping[str, Any],
    current: RoutingFlag | None,
    policy: ModelPolicy,
    known_good: str | None,
    at: float,
    actor: str,
    chosen: Candidate | None = None,
    why: str = "",
    change: str = "",
) -> RoutingFlag:
    """The flag the action wants, on top of the current one (revision + 1).

    ``chosen``: the target the checks picked (else the action's own).  An action
    with steps moves its first step's share; the rest stays where it was.
    """
    model_id = str(incident["subject"])
    base = current or RoutingFlag(model_id=model_id, active_version=policy.known_good or "unknown")
    version = base.active_version
    mode = _MODE_OF[action.kind]
    if chosen is not None:
        if chosen.problem:
            raise ContainmentError(chosen.problem)
        version, mode = chosen.version, chosen.mode
    elif action.kind == "route-to-version":
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
    rollout = None
    previous: dict[str, Any] = {"previous_version": None, "previous_mode": None}
    if len(action.steps) > 1:
        rollout = Rollout(
            incident_id=str(incident["incident_id"]), change=change, steps=action.steps, step=0,
            dwell_s=action.dwell_s, started_at=at, due_at=at + action.dwell_s,
        )  # fmt: skip
        previous = {"previous_version": base.active_version, "previous_mode": base.mode}
        summary = f"{rollout.describe()}; {summary}"
    reason = f"{action.kind} for incident {incident['incident_id']}: {summary}"
    if why:
        reason = f"{reason}. {why}"
    return base.evolve(
        active_version=version,
        mode=mode,
        traffic_fraction=action.first_fraction,
        reason=reason[:1024],
        incident_id=str(incident["incident_id"]),
        actor=actor,
        revision=base.revision + 1,
        updated_at=at,
        expires_at=None if action.ttl_s is None else at + action.ttl_s,
        rollout=rollout,
        **previous,
    )


@dataclass(frozen=True, slots=True)
class ContainmentPolicy:
    playbooks: Sequence[Playbook] = ()
    models: Mapping[str, ModelPolicy] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    routing_changes_topic: str = "routing-changes"
    incidents_topic: str = "incidents"  # where a failed step's own incident goes
    dead_letter_topic: str = "dead-letter"  # where a record that is no incident goes

    def model(self, model_id: str) -> ModelPolicy:
        return self.models.get(model_id) or ModelPolicy()
