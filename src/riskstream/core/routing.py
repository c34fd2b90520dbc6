"""Routing flags and the changes made to them: the vocabulary of containment.

A :class:`RoutingFlag` is what the serving layer reads for one model: which
version serves, in which mode, for what share of traffic, and why.  During a
progressive shift the share not yet moved stays on ``previous_version`` in
``previous_mode``, and :func:`bucket` decides, per request key, which share a
request falls in: the same key always lands on the same side at a given fraction,
and a rising fraction only moves keys from the previous state to the new one.  Every change
is a :class:`FlagChange` with a deterministic ``change_id`` — the (incident,
action) it carries out — so a store can refuse to apply the same change twice,
however often an incident is redelivered.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from typing import Any

from riskstream.core.outbox import OutboxEvent
from riskstream.core.timeutil import format_time

__all__ = [
    "MODEL_ID_PATTERN",
    "MODES",
    "FlagChange",
    "Rollout",
    "RoutingFlag",
    "bucket",
    "change_id",
    "model_id_problem",
]

MODES = ("normal", "fallback", "human-review", "shadow", "blocked")
_OPTIONAL = ("previous_version", "previous_mode", "rollout")  # written only when set

# What a person may name as a model when setting its flag by hand (the flag store's key,
# what the serving layer looks up, a segment of the API's and the console's URLs).  "/"
# separates parts ("team/bot": ids like it arrive in events and get flags), but no part
# is empty, "." or "..", so no id reads as a path that climbs ("../actions/x/approve").
# schemas/openapi.yaml states the same pattern; tests/unit/test_openapi.py holds them equal.
_PART = r"(?!\.\.?(?:/|$))[A-Za-z0-9._:@-]+"
MODEL_ID_PATTERN = rf"^{_PART}(?:/{_PART})*$"
MODEL_ID_LONGEST = 256  # the event contract's longest id
_MODEL_ID = re.compile(MODEL_ID_PATTERN)
_ALLOWED = (
    "letters A-Z and a-z, digits and . _ - : @, in parts joined by / (no part empty, "
    f". or ..), at most {MODEL_ID_LONGEST} in all"
)


def model_id_problem(model_id: str) -> str | None:
    """Why ``model_id`` is no model id a person may set a flag for, or ``None``.

    >>> model_id_problem("team/diagnosis-v4")
    >>> model_id_problem("../actions/x/approve")  # doctest: +ELLIPSIS
    "model id '../actions/x/approve' has a part that is empty, . or ..: use letters ..."
    """
    if _MODEL_ID.fullmatch(model_id) and len(model_id) <= MODEL_ID_LONGEST:
        return None
    if not model_id:
        return f"the model id is empty: use {_ALLOWED}"
    if len(model_id) > MODEL_ID_LONGEST:
        return f"the model id is {len(model_id)} characters long; at most {MODEL_ID_LONGEST}"
    odd = next((c for c in model_id if not (c.isascii() and (c.isalnum() or c in "._:@-/"))), None)
    if odd is None:
        return f"model id {model_id!r} has a part that is empty, . or ..: use {_ALLOWED}"
    what = "a control character" if unicodedata.category(odd) == "Cc" else f"{odd!r}"
    return f"model id {model_id!r} holds {what} (U+{ord(odd):04X}): use {_ALLOWED}"


def bucket(model_id: str, key: str) -> float:
    """Where a request key falls in [0, 1) for one model: a stable hash, the same in
    every process and Python version (not ``hash()``, which is salted per process).

    A key is in the shifted share at fraction f when ``bucket < f``, so a key moved
    at 10 % stays moved at 50 % and 100 %.

    >>> bucket("support-bot", "user-000042") == bucket("support-bot", "user-000042")
    True
    >>> 0.0 <= bucket("support-bot", "user-000042") < 1.0
    True
    """
    digest = hashlib.blake2b(f"{model_id}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Rollout:
    """A progressive shift in flight, carried in the flag it changes (so it survives
    a restart of the containment worker with the flag itself).

    ``steps`` are the rising fractions (the last is the action's own), ``step`` the
    index the flag is at, ``due_at`` when that step's analysis is judged (wall time).
    """

    incident_id: str
    change: str  # the change id of its first step (the audit entry holding the state before)
    steps: tuple[float, ...]
    step: int
    dwell_s: float
    started_at: float  # when this step began
    due_at: float

    @property
    def last(self) -> bool:
        return self.step >= len(self.steps) - 1

    def describe(self) -> str:
        """``step 2/3 (50%)``"""
        return f"step {self.step + 1}/{len(self.steps)} ({self.steps[self.step]:.0%})"

    def to_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Rollout:
        return cls(
            incident_id=str(data["incident_id"]),
            change=str(data["change"]),
            steps=tuple(float(s) for s in data["steps"]),
            step=int(data["step"]),
            dwell_s=float(data["dwell_s"]),
            started_at=float(data["started_at"]),
            due_at=float(data["due_at"]),
        )


@dataclass(frozen=True, slots=True)
class RoutingFlag:
    """One model's routing state.  ``revision`` grows by one with every change."""

    model_id: str
    active_version: str
    mode: str = "normal"
    traffic_fraction: float = 1.0
    reason: str = "default"
    incident_id: str | None = None
    actor: str = "riskstream"
    revision: int = 0
    updated_at: float = 0.0
    expires_at: float | None = None
    previous_version: str | None = None  # what the share not yet shifted serves
    previous_mode: str | None = None
    rollout: Rollout | None = None  # a progressive shift in flight

    def to_data(self) -> dict[str, Any]:
        """The routing-change event's data (schemas/routing-change.schema.json).

        The progressive-shift fields are written only when set, so a flag that
        never took part in one reads, and hashes in the audit trail, as before.
        """
        data = asdict(self)
        data["updated_at"] = format_time(self.updated_at)
        data["expires_at"] = None if self.expires_at is None else format_time(self.expires_at)
        for name in _OPTIONAL:
            if data[name] is None:
                del data[name]
        if self.rollout is not None:
            data["rollout"] = self.rollout.to_data()
        return data

    def serves(self, key: str) -> tuple[str, str]:
        """``(version, mode)`` for the request with this key.

        The shifted share (``traffic_fraction``) gets ``active_version`` in ``mode``;
        the rest gets ``previous_version`` in ``previous_mode`` (or, for a flag that
        names none, ``active_version`` served normally).

        >>> flag = RoutingFlag("bot", "bot-1.4", traffic_fraction=0.5, previous_version="bot-1.5",
        ...                    previous_mode="normal")
        >>> sorted({flag.serves(f"user-{n}")[0] for n in range(20)})
        ['bot-1.4', 'bot-1.5']
        >>> flag.evolve(traffic_fraction=1.0).serves("user-1")
        ('bot-1.4', 'normal')
        """
        if self.traffic_fraction >= 1.0 or bucket(self.model_id, key) < self.traffic_fraction:
            return self.active_version, self.mode
        return self.previous_version or self.active_version, self.previous_mode or "normal"

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RoutingFlag:
        from riskstream.core.timeutil import parse_time

        return cls(
            model_id=str(data["model_id"]),
            active_version=str(data["active_version"]),
            mode=str(data["mode"]),
            traffic_fraction=float(data.get("traffic_fraction", 1.0)),  # older records: all
            reason=str(data["reason"]),
            incident_id=data.get("incident_id"),
            actor=str(data["actor"]),
            revision=int(data["revision"]),
            updated_at=parse_time(data["updated_at"]),
            expires_at=None if data.get("expires_at") is None else parse_time(data["expires_at"]),
            previous_version=data.get("previous_version"),
            previous_mode=data.get("previous_mode"),
            rollout=None if data.get("rollout") is None else Rollout.from_data(data["rollout"]),
        )

    def evolve(self, **changes: Any) -> RoutingFlag:
        return replace(self, **changes)


def change_id(incident_id: str, action_index: int, step: str = "apply") -> str:
    """The id of one step of one action of one incident: stable across redeliveries.

    >>> change_id("abc", 0) == change_id("abc", 0) != change_id("abc", 0, "revert")
    True
    """
    return hashlib.sha256(f"{incident_id}\x1f{action_index}\x1f{step}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class FlagChange:
    """A change to apply to one model's flag, if its revision still matches.

    ``expected_revision`` is the revision the decision was made on (compare and
    set); ``flag`` is the new state, whose revision must be expected + 1.
    ``events``: what announces it (its routing change, and anything else it opens),
    written to the store's outbox with the flag, atomically (:mod:`riskstream.core.outbox`).
    """

    change_id: str
    expected_revision: int
    flag: RoutingFlag
    events: tuple[OutboxEvent, ...] = ()
