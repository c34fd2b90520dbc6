"""The ``topics``, ``processor`` and ``labels`` sections: what the processor reads,
how it batches and checkpoints, and how long predictions wait for their labels."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from riskstream.config.nodes import Problem, YamlNode, integer, number, string
from riskstream.core.admission import TimeLimits
from riskstream.core.limits import DEFAULT_IDLE_TTL_S, DEFAULT_MAX_STREAMS, StreamLimits

__all__ = [
    "EVENT_KINDS",
    "KEYED_BY",
    "LabelSettings",
    "ProcessorSettings",
    "Topics",
    "read_labels",
    "read_processor",
    "read_topics",
]

EVENT_KINDS = ("inference", "sensor", "label", "change")
KEYED_BY = {"inference": "model_id", "sensor": "sensor_id", "label": "model_id"}
"""The field whose UTF-8 is an input event's Kafka key, per kind, unless
``processor.keyed_by`` says otherwise (change events are not held to their key)."""
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


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
    # A cap on the records a crash replays where the interval would let more pile up (a
    # long interval), not a cadence: above one interval of what one processor reads
    # (~90-100k events/s), so the interval paces checkpoints.  See Processor.step.
    checkpoint_events: int = 500_000
    checkpoint_budget: float = 0.25  # at most this share of the time goes to checkpoints
    # "fork": a forked child encodes and writes each checkpoint while the loop reads on
    # (riskstream.services.forked_save); "inline": the loop does it; "auto": fork once
    # a checkpoint saves 8,000 snapshots, ~0.1 s inline (see Processor._forks).  A
    # store held in the process (the embedded one) is always written inline.
    checkpoint_writer: str = "auto"
    max_event_bytes: int = 64 * 1024
    # Streams per monitor per partition (0: no cap) and how long, in data time, a stream
    # without readings is kept (0: forever); see riskstream.core.limits.
    max_streams_per_monitor: int = DEFAULT_MAX_STREAMS
    stream_idle_ttl_s: int = int(DEFAULT_IDLE_TTL_S)

    # Event times outside [wall clock - age, wall clock + ahead] are dead-lettered.
    max_time_age_days: float = 3652.5
    max_time_ahead_s: float = 86_400.0
    # A monitor whose definition changed since its state was saved: "restart" its
    # streams from scratch (logged, counted), or "refuse" to start.
    on_monitor_change: str = "restart"
    dedup_window: int = 100_000  # event ids remembered per partition (0: no de-duplication)
    # Redis replicas that must hold each checkpoint (WAIT) before the processor moves on;
    # 0: do not wait (see riskstream.adapters.redis.state), and how long to wait at most.
    checkpoint_replicas: int = 0
    checkpoint_replica_timeout_ms: int = 1000
    # Kafka places a record by its key, and a stream's detectors live on one partition:
    # so each kind's events are keyed by one field, which every monitor reading them
    # has in its key (checked at load).  A record keyed otherwise is dead-lettered.
    keyed_by: dict[str, str] = field(default_factory=lambda: dict(KEYED_BY))

    @property
    def stream_limits(self) -> StreamLimits:
        return StreamLimits(self.max_streams_per_monitor, float(self.stream_idle_ttl_s))

    def time_limits(self) -> TimeLimits:
        return TimeLimits(self.max_time_age_days * 86_400.0, self.max_time_ahead_s)


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


_ZERO_MEANS_OFF = frozenset(
    {"max_streams_per_monitor", "stream_idle_ttl_s", "dedup_window", "checkpoint_replicas"}
)
_FLOATS = ("checkpoint_budget", "max_time_age_days", "max_time_ahead_s")
MONITOR_CHANGE = ("restart", "refuse")
CHECKPOINT_WRITERS = ("auto", "fork", "inline")


def read_processor(node: YamlNode) -> ProcessorSettings:
    values: dict[str, Any] = {
        k: (
            string(v) if k in ("group_id", "on_monitor_change", "checkpoint_writer")
            else integer(v, 0 if k in _ZERO_MEANS_OFF else 1)
        )
        for k, v in _known(node, ProcessorSettings)
        if k not in (*_FLOATS, "keyed_by")
    }  # fmt: skip
    fields = dict(node.items())
    if values.get("on_monitor_change", "restart") not in MONITOR_CHANGE:
        raise Problem(fields["on_monitor_change"], "on_monitor_change is restart or refuse")
    if values.get("checkpoint_writer", "auto") not in CHECKPOINT_WRITERS:
        raise Problem(
            fields["checkpoint_writer"],
            "checkpoint_writer is auto (fork once checkpoints save 8,000 snapshots), fork "
            "(a forked process writes checkpoints while the loop reads on) or inline (the "
            "loop writes them)",
        )
    for name in ("max_time_age_days", "max_time_ahead_s"):
        if name in fields:
            values[name] = number(fields[name])
            if not 0 < values[name] < float("inf"):
                raise Problem(fields[name], f"{name} must be a number above 0")
    if "checkpoint_budget" in fields:
        budget = number(fields["checkpoint_budget"])
        if not 0.0 < budget <= 1.0:
            raise Problem(
                fields["checkpoint_budget"],
                "checkpoint_budget is a share of the time: above 0, at most 1",
            )
        values["checkpoint_budget"] = budget
    if "keyed_by" in fields:
        values["keyed_by"] = _keyed_by(fields["keyed_by"])
    return ProcessorSettings(**values)


def _keyed_by(node: YamlNode) -> dict[str, str]:
    keyed = dict(KEYED_BY)
    for kind, v in node.items():
        if kind not in KEYED_BY:
            raise Problem(
                v, f"keyed_by takes {', '.join(KEYED_BY)} (change events are not held to a "
                f"key), not {kind!r}",
            )  # fmt: skip
        name = string(v)
        if not _FIELD_NAME.fullmatch(name):
            raise Problem(v, f"keyed_by.{kind} is a top-level field name, got {name!r}")
        keyed[kind] = name
    return keyed


def read_labels(node: YamlNode) -> LabelSettings:
    f = node.known(("ttl_days", "positive"))
    return LabelSettings(
        ttl_s=number(f["ttl_days"]) * 86_400.0 if "ttl_days" in f else 30 * 86_400.0,
        positive=frozenset(string(v) for v in f["positive"].seq()) if "positive" in f else None,
    )
