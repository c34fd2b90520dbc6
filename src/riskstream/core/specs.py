"""What a monitor is, as declared in the config: its value, key, detector and meaning.

Immutable and shared by every partition; the mutable per-stream state lives in
:class:`riskstream.core.monitors.PartitionDetectors`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.detectors import Detector, make_detector
from riskstream.core.discoveries import FdrSettings
from riskstream.core.fields import Event, field_getter
from riskstream.core.groups import GroupRates
from riskstream.core.learned import LEARNED_KINDS, LearnedStream, learned_params
from riskstream.core.streams import SNAPSHOT_VERSION as CLASSIC_SNAPSHOT_VERSION
from riskstream.core.streams import StreamDetector, StreamSettings

__all__ = ["MISSING", "GapSettings", "MonitorSpec", "ValueSpec"]

MISSING = "missing"
"""The detector kind for silence, which no per-sample detector can see."""


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """The tracked value: a field, or an indicator derived from it (for rates).

    ``above`` turns a score into 1.0/0.0 (the mean of which is a rate);
    ``equals`` does the same for a label.  Bools count as 1.0/0.0.
    """

    path: str
    above: float | None = None
    equals: Any = None

    def getter(self) -> Callable[[Event], float | None]:
        get = field_getter(self.path)
        above, equals = self.above, self.equals
        if equals is not None:
            return lambda e: None if (v := get(e)) is None else float(v == equals)
        if above is not None:

            def indicator(e: Event) -> float | None:
                v = get(e)
                if v is None or isinstance(v, str):
                    return None
                return 1.0 if v > above else 0.0

            return indicator

        def number(e: Event) -> float | None:
            v = get(e)
            if v is None or isinstance(v, str):
                return None
            x = float(v)
            return x if math.isfinite(x) else None

        return number


@dataclass(frozen=True, slots=True)
class GapSettings:
    """How a group-gap monitor weighs its groups' rates (see :class:`GroupRates`)."""

    half_life: float = 2000.0
    min_samples: int = 200
    ratio_floor: float = 1e-3

    def new_rates(self) -> GroupRates:
        return GroupRates(self.half_life, self.min_samples, self.ratio_floor)


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """One declared monitor: selection, value, key, detector and what it means."""

    name: str
    reads: str
    value: ValueSpec
    key: tuple[str, ...]
    subject: str
    detector: str
    params: Mapping[str, Any] = field(default_factory=dict)
    settings: StreamSettings = field(default_factory=StreamSettings)
    where: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    severity: str = "warning"
    incident_type: str = "drift"
    episode_s: float = 6 * 3600.0  # later alarms on the subject update the incident (0: off)
    group: tuple[str, ...] = ()  # set: track each group's gap to the rest (see core.groups)
    gap: GapSettings = field(default_factory=lambda: GapSettings())
    users: str | None = None  # field path of the user id: count people reached since onset
    users_window: int = 1024  # samples per stream the count can look back over
    fdr: FdrSettings | None = None  # set: alarms are confirmed under FDR control first

    def new_detector(self) -> Detector:
        return make_detector(self.detector, self.params)

    def stream_factory(self) -> Callable[[], StreamDetector | LearnedStream]:
        """What makes a new stream of this monitor: a learned stream for the learned
        kinds (see :mod:`riskstream.core.learned`), else a detector in a StreamDetector."""
        kind, settings = self.detector, self.settings
        if kind in LEARNED_KINDS:
            params = learned_params(kind, self.params)
            return lambda: LearnedStream(kind, params, settings.warmup, settings.seasonality)
        return lambda: StreamDetector(self.new_detector, settings)

    def restore_stream(self, snap: Mapping[str, Any]) -> StreamDetector | LearnedStream:
        kind, settings = self.detector, self.settings
        if kind in LEARNED_KINDS:
            params = learned_params(kind, self.params)
            if snap.get("v") == CLASSIC_SNAPSHOT_VERSION:
                # Written by this monitor when it ran a River or rule detector (the
                # default config before learned kinds): the stream learns afresh.
                return LearnedStream(kind, params, settings.warmup, settings.seasonality)
            return LearnedStream.restore(snap, kind, params, settings.warmup, settings.seasonality)
        return StreamDetector.restore(snap, self.new_detector, settings)
