"""The ``topics``, ``processor`` and ``labels`` sections: what the processor reads,
how it batches and checkpoints, and how long predictions wait for their labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from riskstream.config.nodes import Problem, YamlNode, integer, number, string
from riskstream.core.limits import DEFAULT_IDLE_TTL_S, DEFAULT_MAX_STREAMS, StreamLimits

__all__ = [
    "EVENT_KINDS",
    "LabelSettings",
    "ProcessorSettings",
    "Topics",
    "read_labels",
    "read_processor",
    "read_topics",
]

EVENT_KINDS = ("inference", "sensor", "label", "change")


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
    # Streams per monitor per partition (0: no cap) and how long, in data time, a stream
    # without readings is kept (0: forever); see riskstream.core.limits.
    max_streams_per_monitor: int = DEFAULT_MAX_STREAMS
    stream_idle_ttl_s: int = int(DEFAULT_IDLE_TTL_S)

    @property
    def stream_limits(self) -> StreamLimits:
        return StreamLimits(self.max_streams_per_monitor, float(self.stream_idle_ttl_s))


@dataclass(frozen=True, slots=True)
class LabelSettings:
    """Delayed labels: how long predictions wait for theirs, and which classes'
    misses count (``None``: every class, i.e. per-class recall)."""

    ttl_s: float = 30 * 86_400.0
    positive: frozenset[str] | None = None


def _known(node: YamlNode, cls: type) -> Iterator[tuple[str, YamlNode]]:
    yield from node.known(f.name for f in dataclasses.fields(cls)).items()


def read_topics(node: YamlNode) -> Topics:
    return Topics(**{k: string(v) for k, v in _known(node, Topics)})


_ZERO_MEANS_OFF = frozenset({"max_streams_per_monitor", "stream_idle_ttl_s"})


def read_processor(node: YamlNode) -> ProcessorSettings:
    values: dict[str, Any] = {
        k: (string(v) if k == "group_id" else integer(v, 0 if k in _ZERO_MEANS_OFF else 1))
        for k, v in _known(node, ProcessorSettings)
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
    return ProcessorSettings(**values)


def read_labels(node: YamlNode) -> LabelSettings:
    f = node.known(("ttl_days", "positive"))
    return LabelSettings(
        ttl_s=number(f["ttl_days"]) * 86_400.0 if "ttl_days" in f else 30 * 86_400.0,
        positive=frozenset(string(v) for v in f["positive"].seq()) if "positive" in f else None,
    )
