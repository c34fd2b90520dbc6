"""The ``monitors`` section: which events each monitor reads, the value it tracks,
its stream key, its detector and the settings around it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from riskstream.config.nodes import Problem, YamlNode, integer, number, scalar, string
from riskstream.config.processor import EVENT_KINDS
from riskstream.core.detectors import DETECTOR_KINDS, make_detector
from riskstream.core.discoveries import FdrSettings
from riskstream.core.learned import LEARNED_KINDS, learned_params
from riskstream.core.monitors import MISSING, GapSettings, MonitorSpec, ValueSpec
from riskstream.core.silence import check_silence_params
from riskstream.core.streams import RULES, Seasonality, StreamSettings
from riskstream.errors import ConfigError, RiskstreamError

__all__ = ["SEVERITIES", "read_monitor"]

SEVERITIES = ("info", "warning", "critical")


def read_monitor(node: YamlNode) -> MonitorSpec:
    """One entry of ``monitors``, every value checked, every problem naming its line."""
    fields = dict(node.items())
    required: tuple[str, ...] = ("name", "reads", "key", "detector")
    if "detector" in fields and _kind_of(fields["detector"]) != MISSING:
        required += ("value",)  # silence needs no value, only the events' times
    for r in required:
        if r not in fields:
            raise Problem(node, f"monitor is missing {r!r} (required: {', '.join(required)})")
    allowed = {
        *required,
        *(
            "value",
            "subject",
            "where",
            "warmup",
            "scale",
            "cooldown",
            "seasonality",
            "group",
            "gap",
            "episode",
            "users",
            "users_window",
            "fdr",
            "severity",
            "incident_type",
        ),
    }
    for k, v in fields.items():
        if k not in allowed:
            raise Problem(v, f"unknown monitor key {k!r}; known: {', '.join(sorted(allowed))}")
    reads = string(fields["reads"])
    if reads not in EVENT_KINDS:
        raise Problem(fields["reads"], f"reads must be one of {', '.join(EVENT_KINDS)}")
    key_node = fields["key"]
    key = (
        (string(key_node),)
        if isinstance(key_node.node, yaml.ScalarNode)
        else tuple(string(k) for k in key_node.seq())
    )
    kind, params = _detector(fields["detector"])
    settings = StreamSettings(
        warmup=integer(fields["warmup"]) if "warmup" in fields else 500,
        scale=scalar(fields["scale"], bool, "true or false") if "scale" in fields else True,
        cooldown=integer(fields["cooldown"]) if "cooldown" in fields else 0,
        seasonality=_seasonality(fields["seasonality"]) if "seasonality" in fields else None,
    )
    severity = string(fields["severity"]) if "severity" in fields else "warning"
    if severity not in SEVERITIES:
        raise Problem(fields["severity"], f"severity must be one of {', '.join(SEVERITIES)}")
    where = {
        path: tuple(v.plain() for v in vals.seq())
        if isinstance(vals.node, yaml.SequenceNode)
        else (vals.plain(),)
        for path, vals in (fields["where"].items() if "where" in fields else ())
    }
    try:
        return MonitorSpec(
            name=string(fields["name"]),
            reads=reads,
            value=_value(fields["value"]) if "value" in fields else ValueSpec("time"),
            key=key,
            subject=string(fields["subject"]) if "subject" in fields else key[0],
            detector=kind,
            params=params,
            settings=settings,
            where=where,
            severity=severity,
            incident_type=string(fields["incident_type"]) if "incident_type" in fields else "drift",
            group=_paths(fields["group"]) if "group" in fields else (),
            episode_s=number(fields["episode"]) if "episode" in fields else 6 * 3600.0,
            gap=_gap(fields["gap"]) if "gap" in fields else GapSettings(),
            users=string(fields["users"]) if "users" in fields else None,
            users_window=integer(fields["users_window"], 1) if "users_window" in fields else 1024,
            fdr=_fdr(fields["fdr"], kind, settings) if "fdr" in fields else None,
        )
    except RiskstreamError as exc:
        raise Problem(node, str(exc)) from None


def _value(node: YamlNode) -> ValueSpec:
    if isinstance(node.node, yaml.ScalarNode):
        return ValueSpec(string(node))
    fields = dict(node.items())
    if "path" not in fields:
        raise Problem(node, "value needs a 'path' (a dotted field path)")
    for k, v in fields.items():
        if k not in ("path", "above", "equals"):
            raise Problem(v, f"unknown value key {k!r}; known: path, above, equals")
    above = scalar(fields["above"], (int, float), "a number") if "above" in fields else None
    equals = fields["equals"].plain() if "equals" in fields else None
    return ValueSpec(string(fields["path"]), above, equals)


def _kind_of(node: YamlNode) -> object:
    raw = node.plain()
    return raw.get("kind") if isinstance(raw, dict) else raw


def _detector(node: YamlNode) -> tuple[str, Mapping[str, Any]]:
    if isinstance(node.node, yaml.ScalarNode):
        kind, params = string(node), {}
    else:
        raw = node.plain()
        if not isinstance(raw, dict) or "kind" not in raw:
            raise Problem(node, "detector needs a 'kind'")
        kind = raw.pop("kind")
        params = raw
    known = [*DETECTOR_KINDS, *LEARNED_KINDS, MISSING]
    if kind not in known:
        raise Problem(node, f"unknown detector {kind!r}; known: {', '.join(known)}")
    try:
        if kind == MISSING:
            check_silence_params(params)
        elif kind in LEARNED_KINDS:
            learned_params(kind, params)
        else:
            make_detector(kind, params)
    except RiskstreamError as exc:
        raise Problem(node, str(exc)) from None
    return kind, params


def _seasonality(node: YamlNode) -> Seasonality:
    try:
        return Seasonality.from_config(node.plain())
    except ConfigError as exc:
        raise Problem(node, str(exc)) from None


def _paths(node: YamlNode) -> tuple[str, ...]:
    if isinstance(node.node, yaml.ScalarNode):
        return (string(node),)
    return tuple(string(n) for n in node.seq())


def _fdr(node: YamlNode, kind: str, settings: StreamSettings) -> FdrSettings:
    """False-discovery control confirms mean shifts; rules and silence have none to test."""
    if kind in RULES or kind == MISSING:
        raise Problem(node, f"fdr does not apply to {kind!r}: it confirms shifts in a mean")
    if kind in LEARNED_KINDS:
        raise Problem(
            node, f"fdr does not apply to {kind!r}: its threshold already is a false-alarm rate"
        )
    if settings.seasonality is not None:
        raise Problem(node, "fdr cannot be combined with seasonality yet; drop one of them")
    f = node.known(("q", "confirm", "window"))
    defaults = FdrSettings()
    try:
        return FdrSettings(
            q=number(f["q"]) if "q" in f else defaults.q,
            confirm=integer(f["confirm"], 1) if "confirm" in f else defaults.confirm,
            window_s=number(f["window"]) if "window" in f else defaults.window_s,
        )
    except ConfigError as exc:
        raise Problem(node, str(exc)) from None


def _gap(node: YamlNode) -> GapSettings:
    f = node.known(("half_life", "min_samples", "ratio_floor"))
    defaults = GapSettings()
    return GapSettings(
        half_life=number(f["half_life"]) if "half_life" in f else defaults.half_life,
        min_samples=integer(f["min_samples"], 1) if "min_samples" in f else defaults.min_samples,
        ratio_floor=number(f["ratio_floor"]) if "ratio_floor" in f else defaults.ratio_floor,
    )
