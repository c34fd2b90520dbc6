"""The report sections of the config file: ``provider``, ``raci`` and the AI-system
keys of ``models``.

Read with the same line-numbered checks as the rest (see :mod:`riskstream.config`),
so a misspelt role is refused at start, not discovered in a report to a regulator.
"""

from __future__ import annotations

import yaml

from riskstream.config.nodes import Problem, YamlNode, string
from riskstream.core.reports.settings import (
    RACI_ROLES,
    AISystem,
    Provider,
    Raci,
    ReportSettings,
)

__all__ = ["PROVIDER_KEYS", "SYSTEM_KEYS", "read_reporting"]

PROVIDER_KEYS = ("name", "address", "contact")
SYSTEM_KEYS = ("name", "intended_purpose", "eu_database_id")
"""Keys of ``models.<id>`` that describe the AI system; ``risk_class`` is read too."""


def read_reporting(sections: dict[str, YamlNode]) -> ReportSettings:
    provider = Provider()
    if "provider" in sections:
        f = sections["provider"].known(PROVIDER_KEYS)
        provider = Provider(**{k: string(v) for k, v in f.items()})
    systems = {}
    if "models" in sections:
        for model_id, node in sections["models"].items():
            fields = dict(node.items())  # unknown keys are refused by the containment reader
            systems[model_id] = AISystem(
                **{k: string(fields[k]) for k in (*SYSTEM_KEYS, "risk_class") if k in fields}
            )
    raci = []
    if "raci" in sections:
        for pattern, node in sections["raci"].items():
            f = node.known(RACI_ROLES)
            if not f:
                raise Problem(node, f"name at least one role: {', '.join(RACI_ROLES)}")
            raci.append((pattern, Raci(**{role: _people(v) for role, v in f.items()})))
    return ReportSettings(provider, systems, tuple(raci))


def _people(node: YamlNode) -> tuple[str, ...]:
    if isinstance(node.node, yaml.ScalarNode):
        return (string(node),)
    people = tuple(string(n) for n in node.seq())
    if not people:
        raise Problem(node, "name at least one person or team")
    return people
