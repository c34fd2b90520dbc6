"""The containment sections of the config file: playbooks, models and limits.

Read with the same line-numbered checks as the monitors (see :mod:`riskstream.config`).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from riskstream.config.nodes import Problem, YamlNode, boolean, number, string
from riskstream.config.reports import SYSTEM_KEYS
from riskstream.core.enrichment import Costs, Enrichment, Regulation
from riskstream.core.playbooks import (
    ACTION_KINDS,
    Action,
    Approval,
    ContainmentPolicy,
    Limits,
    ModelPolicy,
    Playbook,
)
from riskstream.core.storms import Storms
from riskstream.errors import RiskstreamError

__all__ = ["read_containment", "read_enrichment"]

_ACTION_KEYS = (
    "kind", "version", "fraction", "approval", "revert_on_resolve", "ttl", "channel",
    "targets", "require_evidence", "steps", "dwell",
)  # fmt: skip
_APPROVAL_KEYS = ("required", "timeout", "on_timeout", "separate_approver")
_MODEL_KEYS = ("fallback_version", "known_good", "risk_class", *SYSTEM_KEYS)  # reports read those
_LIMIT_KEYS = (
    "window",
    "max_models",
    "max_traffic_fraction",
    "storm_incidents",
    "storm_window",
    "max_flags",
)


def read_containment(
    sections: dict[str, YamlNode],
    routing_changes_topic: str,
    incidents_topic: str = "incidents",
    dead_letter_topic: str = "dead-letter",
) -> ContainmentPolicy:
    playbooks: list[Playbook] = []
    if "playbooks" in sections:
        playbooks = [_playbook(n) for n in sections["playbooks"].seq()]
    models = {}
    if "models" in sections:
        for model_id, node in sections["models"].items():
            fields = node.known(_MODEL_KEYS)
            models[model_id] = ModelPolicy(
                fallback_version=string(fields["fallback_version"])
                if "fallback_version" in fields
                else None,
                known_good=string(fields["known_good"]) if "known_good" in fields else None,
                risk_class=string(fields["risk_class"]) if "risk_class" in fields else "minimal",
            )
    limits = Limits()
    if "limits" in sections:
        fields = sections["limits"].known(_LIMIT_KEYS)
        limits = Limits(
            window_s=number(fields["window"]) if "window" in fields else limits.window_s,
            max_models=int(number(fields["max_models"]))
            if "max_models" in fields
            else limits.max_models,
            max_traffic_fraction=number(fields["max_traffic_fraction"])
            if "max_traffic_fraction" in fields
            else limits.max_traffic_fraction,
            storms=_storms(fields, limits.storms),
            max_flags=(
                _max_flags(fields["max_flags"]) if "max_flags" in fields else limits.max_flags
            ),
        )
    return ContainmentPolicy(
        tuple(playbooks), models, limits, routing_changes_topic, incidents_topic, dead_letter_topic
    )


def _storms(fields: dict[str, YamlNode], default: Storms) -> Storms:
    incidents = default.incidents
    if "storm_incidents" in fields:
        value = number(fields["storm_incidents"])
        if value != int(value) or value < 0:
            raise Problem(fields["storm_incidents"], "expected a whole number >= 0 (0: off)")
        incidents = int(value)
    window = default.window_s
    if "storm_window" in fields:
        window = number(fields["storm_window"])
        if not window > 0:
            raise Problem(fields["storm_window"], "expected a number of seconds > 0")
    return Storms(incidents, window)


def _max_flags(node: YamlNode) -> int:
    value = number(node)
    if value != int(value) or value < 1:
        raise Problem(node, "expected a whole number >= 1 (flags deploy events may create)")
    return int(value)


def _list_of_strings(node: YamlNode) -> tuple[str, ...]:
    if isinstance(node.node, yaml.ScalarNode):
        return (string(node),)
    return tuple(string(n) for n in node.seq())


def _playbook(node: YamlNode) -> Playbook:
    fields = node.known(("name", "match", "actions"))
    for required in ("name", "actions"):
        if required not in fields:
            raise Problem(node, f"playbook is missing {required!r}")
    match = fields["match"].known(("type", "severity", "subject")) if "match" in fields else {}
    actions = tuple(_action(n) for n in fields["actions"].seq())
    if not actions:
        raise Problem(fields["actions"], "a playbook needs at least one action")
    return Playbook(
        name=string(fields["name"]),
        actions=actions,
        types=frozenset(_list_of_strings(match["type"])) if "type" in match else frozenset(),
        severities=frozenset(_list_of_strings(match["severity"]))
        if "severity" in match
        else frozenset(),
        subjects=_list_of_strings(match["subject"]) if "subject" in match else (),
    )


def _action(node: YamlNode) -> Action:
    fields = node.known(_ACTION_KEYS)
    if "kind" not in fields:
        raise Problem(node, f"an action needs a 'kind': one of {', '.join(ACTION_KINDS)}")
    approval = Approval()
    if "approval" in fields:
        a_node = fields["approval"]
        if isinstance(a_node.node, yaml.ScalarNode):
            value = a_node.plain()
            if value not in ("none", "required"):
                raise Problem(a_node, "approval is 'none', 'required' or a mapping")
            approval = Approval(required=value == "required")
        else:
            a = a_node.known(_APPROVAL_KEYS)
            try:
                approval = Approval(
                    required=boolean(a["required"]) if "required" in a else True,
                    timeout_s=number(a["timeout"]) if "timeout" in a else None,
                    on_timeout=string(a["on_timeout"]) if "on_timeout" in a else "reject",
                    separate_approver=boolean(a["separate_approver"])
                    if "separate_approver" in a
                    else True,
                )
            except RiskstreamError as exc:
                raise Problem(a_node, str(exc)) from None
    kwargs: dict[str, Any] = {"kind": string(fields["kind"]), "approval": approval}
    if "version" in fields:
        kwargs["version"] = string(fields["version"])
    if "fraction" in fields:
        kwargs["fraction"] = number(fields["fraction"])
    if "revert_on_resolve" in fields:
        kwargs["revert_on_resolve"] = boolean(fields["revert_on_resolve"])
    if "ttl" in fields:
        kwargs["ttl_s"] = number(fields["ttl"])
    if "channel" in fields:
        kwargs["channel"] = string(fields["channel"])
    if "targets" in fields:
        kwargs["targets"] = _list_of_strings(fields["targets"])
    if "require_evidence" in fields:
        kwargs["require_evidence"] = boolean(fields["require_evidence"])
    if "steps" in fields:  # percentages in the file, fractions in the action
        kwargs["steps"] = tuple(number(n) / 100.0 for n in fields["steps"].seq())
        if "fraction" not in fields and kwargs["steps"]:
            kwargs["fraction"] = kwargs["steps"][-1]
    if "dwell" in fields:
        kwargs["dwell_s"] = number(fields["dwell"])
    try:
        return Action(**kwargs)
    except RiskstreamError as exc:
        raise Problem(node, str(exc)) from None


_COST_KEYS = ("per_event", "per_hour", "currency")
_REGULATION_KEYS = (
    "high_risk", "serious_incident_types", "deadline_days", "death_deadline_days",
    "widespread_deadline_days", "death_types", "widespread_types",
)  # fmt: skip


def read_enrichment(sections: dict[str, YamlNode]) -> Enrichment:
    """``lineage``, ``costs``, ``regulation``, ``change_lookback`` and
    ``correlation_window`` (seconds)."""
    lineage: dict[str, tuple[str, ...]] = {}
    if "lineage" in sections:
        for upstream, node in sections["lineage"].items():
            lineage[upstream] = _list_of_strings(node)
    costs = []
    if "costs" in sections:
        for pattern, node in sections["costs"].items():
            fields = node.known(_COST_KEYS)
            costs.append(
                Costs(
                    pattern=pattern,
                    per_event=number(fields["per_event"]) if "per_event" in fields else 0.0,
                    per_hour=number(fields["per_hour"]) if "per_hour" in fields else 0.0,
                    currency=string(fields["currency"]) if "currency" in fields else "EUR",
                )
            )
    regulation = Regulation()
    if "regulation" in sections:
        f = sections["regulation"].known(_REGULATION_KEYS)

        def names(key: str) -> frozenset[str]:
            return frozenset(_list_of_strings(f[key])) if key in f else frozenset()

        def days(key: str, default: float) -> float:
            if key not in f:
                return default
            value = number(f[key])
            if not (math.isfinite(value) and value > 0):  # a deadline before awareness
                raise Problem(f[key], f"must be a number of days above 0, got {value}")
            return value

        regulation = Regulation(
            high_risk=names("high_risk"),
            serious_types=names("serious_incident_types"),
            deadline_days=days("deadline_days", 15.0),
            death_deadline_days=days("death_deadline_days", 10.0),
            widespread_deadline_days=days("widespread_deadline_days", 2.0),
            death_types=names("death_types"),
            widespread_types=names("widespread_types"),
        )
    lookback = number(sections["change_lookback"]) if "change_lookback" in sections else 6 * 3600.0
    window = 3600.0
    if "correlation_window" in sections:
        window = number(sections["correlation_window"])
    return Enrichment(lineage, lookback, tuple(costs), regulation, window)
