"""The monitor config file: YAML in, typed specs out, or an error that names the line.

A bad config must be refused at start, with the file, the line and the problem,
before it can silently watch the wrong thing.  So the YAML is read as a node tree
(which keeps line numbers) and every value is checked as it is converted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from riskstream.config_yaml import Problem, YamlNode, integer, number, scalar, string
from riskstream.containment_config import read_containment, read_enrichment
from riskstream.core.detectors import DETECTOR_KINDS, make_detector
from riskstream.core.discoveries import FdrSettings
from riskstream.core.enrichment import Enrichment
from riskstream.core.learned import LEARNED_KINDS, learned_params
from riskstream.core.monitors import MISSING, GapSettings, MonitorSpec, ValueSpec
from riskstream.core.notifications import NotificationSettings
from riskstream.core.playbooks import ContainmentPolicy
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.silence import check_silence_params
from riskstream.core.streams import RULES, Seasonality, StreamSettings
from riskstream.errors import ConfigError, RiskstreamError
from riskstream.notifications_config import read_notifications
from riskstream.report_config import read_reporting

__all__ = ["DEFAULT_CONFIG", "EVENT_KINDS", "Config", "ProcessorSettings", "Topics", "load_config"]

EVENT_KINDS = ("inference", "sensor", "label", "change")
SEVERITIES = ("info", "warning", "critical")
DEFAULT_CONFIG = "default-config.yaml"
_CONTAINMENT_SECTIONS = ("playbooks", "models", "limits")
_ENRICHMENT_SECTIONS = (
    "lineage",
    "costs",
    "regulation",
    "change_lookback",
    "correlation_window",
)
_REPORT_SECTIONS = ("provider", "raci")  # and the AI-system keys of `models`


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names; inputs are addressed by event kind in monitor specs."""

    inference: str = "inference-events"
    sensor: str = "sensor-events"
    label: str = "label-events"
    change: str = "change-events"
    incidents: str = "incidents"
    routing_changes: str = "routing-changes"
    dead_letter: str = "dead-letter"

    def input_kinds(self) -> dict[str, str]:
        """Topic name -> event kind, for the inputs."""
        return {getattr(self, kind): kind for kind in EVENT_KINDS}


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """Batching and checkpoint cadence of the processor."""

    group_id: str = "riskstream-processor"
    batch_size: int = 1000
    checkpoint_interval_ms: int = 1000
    checkpoint_events: int = 50_000
    checkpoint_budget: float = 0.25  # at most this share of the time goes to checkpoints
    max_event_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class LabelSettings:
    """Delayed labels: how long predictions wait for theirs, and which classes'
    misses count (``None``: every class, i.e. per-class recall)."""

    ttl_s: float = 30 * 86_400.0
    positive: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    topics: Topics = field(default_factory=Topics)
    processor: ProcessorSettings = field(default_factory=ProcessorSettings)
    monitors: tuple[MonitorSpec, ...] = ()
    known_subjects: frozenset[str] | None = None
    containment: ContainmentPolicy = field(default_factory=ContainmentPolicy)
    enrichment: Enrichment = field(default_factory=Enrichment)
    labels: LabelSettings = field(default_factory=LabelSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    reporting: ReportSettings = field(default_factory=ReportSettings)

    @property
    def joins_labels(self) -> bool:
        return any(m.reads == "label" for m in self.monitors)

    def monitors_for(self, topic: str) -> tuple[MonitorSpec, ...]:
        kind = self.topics.input_kinds().get(topic)
        return tuple(m for m in self.monitors if m.reads == kind)


def load_config(path: str | Path | None = None) -> Config:
    """Load and check a config file; ``None`` loads the shipped default."""
    if path is None:
        text = resources.files("riskstream").joinpath(DEFAULT_CONFIG).read_text()
        source = f"<default config {DEFAULT_CONFIG}>"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
        source = str(path)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None:
        raise ConfigError(f"{source}: the config file is empty")
    return _Reader(source).config(YamlNode(root, "$"))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def config(self, root: YamlNode) -> Config:
        try:
            return self._config(root)
        except Problem as p:
            raise ConfigError(f"{self.source}:{p.node.line}: {p.node.path}: {p.message}") from None

    def _config(self, root: YamlNode) -> Config:
        topics, processor, known = Topics(), ProcessorSettings(), None
        containment: dict[str, YamlNode] = {}
        enrichment: dict[str, YamlNode] = {}
        reporting: dict[str, YamlNode] = {}
        labels = LabelSettings()
        notifications = NotificationSettings()
        monitors: list[MonitorSpec] = []
        seen: set[str] = set()
        for key, node in root.items():
            if key == "version":
                if node.plain() != 1:
                    raise Problem(node, "unsupported config version; this riskstream reads 1")
            elif key in _CONTAINMENT_SECTIONS:
                containment[key] = node
            elif key in _ENRICHMENT_SECTIONS:
                enrichment[key] = node
            elif key in _REPORT_SECTIONS:
                reporting[key] = node
            elif key == "labels":
                f = node.known(("ttl_days", "positive"))
                labels = LabelSettings(
                    ttl_s=number(f["ttl_days"]) * 86_400.0 if "ttl_days" in f else 30 * 86_400.0,
                    positive=frozenset(string(v) for v in f["positive"].seq())
                    if "positive" in f
                    else None,
                )
            elif key == "topics":
                topics = Topics(**{k: string(v) for k, v in self._known(node, Topics)})
            elif key == "processor":
                values: dict[str, Any] = {
                    k: (string(v) if k == "group_id" else integer(v, 1))
                    for k, v in self._known(node, ProcessorSettings)
                    if k != "checkpoint_budget"
                }
                if "checkpoint_budget" in (fields := dict(node.items())):
                    budget = number(fields["checkpoint_budget"])
                    if not 0.0 < budget <= 1.0:
                        raise Problem(
                            fields["checkpoint_budget"],
                            "checkpoint_budget is a share of the time: above 0, at most 1",
                        )
                    values["checkpoint_budget"] = budget
                processor = ProcessorSettings(**values)
            elif key == "notifications":
                notifications = read_notifications(node, self.source)
            elif key == "known_subjects":
                known = frozenset(string(v) for v in node.seq())
            elif key == "monitors":
                for m_node in node.seq():
                    monitor = self._monitor(m_node)
                    if monitor.name in seen:
                        raise Problem(m_node, f"monitor name {monitor.name!r} is used twice")
                    seen.add(monitor.name)
                    monitors.append(monitor)
            else:
                raise Problem(
                    node,
                    f"unknown section {key!r}; known: version, topics, processor, "
                    f"known_subjects, monitors, labels, notifications, "
                    f"{', '.join(_CONTAINMENT_SECTIONS + _ENRICHMENT_SECTIONS + _REPORT_SECTIONS)}",
                )
        policy = read_containment(containment, topics.routing_changes)
        if "models" in containment:
            reporting["models"] = containment["models"]
        return Config(
            self.source, topics, processor, tuple(monitors), known, policy,
            read_enrichment(enrichment), labels, notifications, read_reporting(reporting),
        )  # fmt: skip

    @staticmethod
    def _known(node: YamlNode, cls: type) -> Iterator[tuple[str, YamlNode]]:
        yield from node.known(f.name for f in dataclasses.fields(cls)).items()

    def _monitor(self, node: YamlNode) -> MonitorSpec:
        fields = dict(node.items())
        required: tuple[str, ...] = ("name", "reads", "key", "detector")
        if "detector" in fields and self._kind_of(fields["detector"]) != MISSING:
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
        kind, params = self._detector(fields["detector"])
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
                value=self._value(fields["value"]) if "value" in fields else ValueSpec("time"),
                key=key,
                subject=string(fields["subject"]) if "subject" in fields else key[0],
                detector=kind,
                params=params,
                settings=settings,
                where=where,
                severity=severity,
                incident_type=string(fields["incident_type"])
                if "incident_type" in fields
                else "drift",
                group=_paths(fields["group"]) if "group" in fields else (),
                episode_s=number(fields["episode"]) if "episode" in fields else 6 * 3600.0,
                gap=_gap(fields["gap"]) if "gap" in fields else GapSettings(),
                users=string(fields["users"]) if "users" in fields else None,
                users_window=integer(fields["users_window"], 1)
                if "users_window" in fields
                else 1024,
                fdr=_fdr(fields["fdr"], kind, settings) if "fdr" in fields else None,
            )
        except RiskstreamError as exc:
            raise Problem(node, str(exc)) from None

    @staticmethod
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

    @staticmethod
    def _kind_of(node: YamlNode) -> object:
        raw = node.plain()
        return raw.get("kind") if isinstance(raw, dict) else raw

    @staticmethod
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
