"""What a report needs from the config: who the provider is, what each AI system is,
and who plays which part when one of them fails.

All optional: a missing value becomes a placeholder in the report, never a guess.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["DEFAULT_RACI", "RACI_ROLES", "AISystem", "Provider", "Raci", "ReportSettings"]

RACI_ROLES = ("responsible", "accountable", "consulted", "informed")
DEFAULT_RACI = "default"


@dataclass(frozen=True, slots=True)
class Provider:
    """The provider of the AI systems (EU AI Act Article 3(3)): who files the report."""

    name: str | None = None
    address: str | None = None
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class AISystem:
    """One model as the regulator knows it (``models.<id>`` in the config)."""

    name: str | None = None
    intended_purpose: str | None = None
    risk_class: str | None = None
    eu_database_id: str | None = None  # registration in the EU database (Articles 49, 71)


@dataclass(frozen=True, slots=True)
class Raci:
    responsible: tuple[str, ...] = ()
    accountable: tuple[str, ...] = ()
    consulted: tuple[str, ...] = ()
    informed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportSettings:
    provider: Provider = field(default_factory=Provider)
    systems: Mapping[str, AISystem] = field(default_factory=dict)
    raci: Sequence[tuple[str, Raci]] = ()  # (model pattern or "default", roles), config order

    def system(self, model_id: str) -> AISystem:
        return self.systems.get(model_id) or AISystem()

    def raci_for(self, model_id: str) -> tuple[str, Raci] | None:
        """The roles for a model and where they came from: its pattern, else the default.

        >>> s = ReportSettings(raci=[("default", Raci(("ops",))), ("dx-*", Raci(("ml",)))])
        >>> s.raci_for("dx-4")[0], s.raci_for("bot")[0], ReportSettings().raci_for("bot")
        ('dx-*', 'default', None)
        """
        for pattern, roles in self.raci:
            if pattern != DEFAULT_RACI and fnmatch.fnmatchcase(model_id, pattern):
                return pattern, roles
        return next(((p, r) for p, r in self.raci if p == DEFAULT_RACI), None)
