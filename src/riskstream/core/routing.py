"""Routing flags and the changes made to them: the vocabulary of containment.

A :class:`RoutingFlag` is what the serving layer reads for one model: which
version serves, in which mode, for what share of traffic, and why.  Every change
is a :class:`FlagChange` with a deterministic ``change_id`` — the (incident,
action) it carries out — so a store can refuse to apply the same change twice,
however often an incident is redelivered.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any

from riskstream.core.timeutil import format_time

__all__ = ["MODES", "FlagChange", "RoutingFlag", "change_id"]

MODES = ("normal", "fallback", "human-review", "shadow", "blocked")


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

    def to_data(self) -> dict[str, Any]:
        """The routing-change event's data (schemas/routing-change.schema.json)."""
        data = asdict(self)
        data["updated_at"] = format_time(self.updated_at)
        data["expires_at"] = None if self.expires_at is None else format_time(self.expires_at)
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RoutingFlag:
        from riskstream.core.timeutil import parse_time

        return cls(
            model_id=str(data["model_id"]),
            active_version=str(data["active_version"]),
            mode=str(data["mode"]),
            traffic_fraction=float(data["traffic_fraction"]),
            reason=str(data["reason"]),
            incident_id=data.get("incident_id"),
            actor=str(data["actor"]),
            revision=int(data["revision"]),
            updated_at=parse_time(data["updated_at"]),
            expires_at=None if data.get("expires_at") is None else parse_time(data["expires_at"]),
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
    """

    change_id: str
    expected_revision: int
    flag: RoutingFlag
