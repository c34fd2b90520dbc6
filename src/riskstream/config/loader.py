"""The YAML reader: a config file in, a checked :class:`Config` out, or an error
that names the file and the line.

A bad config must be refused at start, with the file, the line and the problem,
before it can silently watch the wrong thing.  So the YAML is read as a node tree
(:mod:`.nodes`, which keeps line numbers) and every value is checked as it is
converted, by the module of its section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from riskstream.config.containment import read_containment, read_enrichment
from riskstream.config.monitors import read_monitor
from riskstream.config.nodes import Problem, YamlNode, string
from riskstream.config.notifications import read_notifications
from riskstream.config.processor import (
    LabelSettings,
    ProcessorSettings,
    Topics,
    read_labels,
    read_processor,
    read_topics,
)
from riskstream.config.reports import read_reporting
from riskstream.config.tickets import read_tickets
from riskstream.core.enrichment import Enrichment
from riskstream.core.monitors import MonitorSpec
from riskstream.core.notifications import NotificationSettings
from riskstream.core.playbooks import ContainmentPolicy
from riskstream.core.reports.settings import ReportSettings
from riskstream.core.tickets import TicketSettings
from riskstream.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "Config", "load_config"]

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
class Config:
    """Everything one config file says, checked; ``source`` names the file for messages."""

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
    tickets: TicketSettings = field(default_factory=TicketSettings)

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
        tickets = TicketSettings()
        monitors: list[MonitorSpec] = []
        monitor_nodes: list[YamlNode] = []
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
                labels = read_labels(node)
            elif key == "topics":
                topics = read_topics(node)
            elif key == "processor":
                processor = read_processor(node)
            elif key == "notifications":
                notifications = read_notifications(node, self.source)
            elif key == "tickets":
                tickets = read_tickets(node, self.source)
            elif key == "known_subjects":
                known = frozenset(string(v) for v in node.seq())
            elif key == "monitors":
                for m_node in node.seq():
                    monitor = read_monitor(m_node)
                    if monitor.name in seen:
                        raise Problem(m_node, f"monitor name {monitor.name!r} is used twice")
                    seen.add(monitor.name)
                    monitors.append(monitor)
                    monitor_nodes.append(m_node)
            else:
                raise Problem(
                    node,
                    f"unknown section {key!r}; known: version, topics, processor, "
                    f"known_subjects, monitors, labels, notifications, tickets, "
                    f"{', '.join(_CONTAINMENT_SECTIONS + _ENRICHMENT_SECTIONS + _REPORT_SECTIONS)}",
                )
        for monitor, m_node in zip(monitors, monitor_nodes, strict=True):
            _check_partitioned(monitor, m_node, processor.keyed_by)
        policy = read_containment(
            containment, topics.routing_changes, topics.incidents, topics.dead_letter
        )
        if "models" in containment:
            reporting["models"] = containment["models"]
        return Config(
            self.source, topics, processor, tuple(monitors), known, policy,
            read_enrichment(enrichment), labels, notifications, read_reporting(reporting),
            tickets,
        )  # fmt: skip


def _check_partitioned(monitor: MonitorSpec, node: YamlNode, keyed_by: Mapping[str, str]) -> None:
    """Refuse a monitor whose streams would be split across partitions.

    Kafka places a record by its key, and each partition's processor keeps its own
    copy of every stream it sees.  A monitor keyed by ``line_id`` over sensor events
    keyed by ``sensor_id`` would see each line on several partitions, a share of its
    events in each: partial, disagreeing detectors, each raising its own incidents.
    When the key field is among the monitor's key fields, all of a stream's events
    share one record key, hence one partition.
    """
    field = keyed_by.get(monitor.reads)
    if field is None or field in monitor.key:
        return
    kind, key = monitor.reads, ", ".join(monitor.key)
    first = monitor.key[0]
    raise Problem(
        node,
        f"monitor {monitor.name!r} keys its streams by {key}, but {kind} events are keyed "
        f"(so partitioned) by {field} (processor.keyed_by), so one {first}'s events would "
        f"arrive on several partitions and its stream be split between them. Add {field} "
        f"to the monitor's key, or have producers key {kind} events by {first} "
        f"(processor.keyed_by: {{{kind}: {first}}}) and put {first} in the key of every "
        f"monitor that reads them",
    )
