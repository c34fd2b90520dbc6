"""What a monitor is, as declared in the config: its value, key, detector and meaning.

Immutable and shared by every partition; the mutable per-stream state lives in
:class:`riskstream.core.monitors.PartitionDetectors`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from riskstream.core.detectors import Detector, make_detector
from riskstream.core.discoveries import FdrSettings
from riskstream.core.fields import KEY_ENCODING, Event, field_getter
from riskstream.core.groups import GroupRates
from riskstream.core.learned import LEARNED_KINDS, LearnedStream, learned_params
from riskstream.core.streams import SNAPSHOT_VERSION as CLASSIC_SNAPSHOT_VERSION
from riskstream.core.streams import StreamDetector, StreamSettings
from riskstream.errors import SnapshotError

__all__ = ["MAX_MAGNITUDE", "MISSING", "GapSettings", "MonitorSpec", "ValueSpec"]

MISSING = "missing"
"""The detector kind for silence, which no per-sample detector can see."""

MAX_MAGNITUDE = 1e100
"""Tracked values are clamped to ±this.  Detectors sum squares and products of
values (and of values over learned spreads): two readings of 1e308 make an infinity,
which no snapshot can hold.  1e100 leaves 200 orders of magnitude of headroom and
is still far beyond any tail a stream learns, so a clamped reading still alarms."""


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """The tracked value: a field, or an indicator derived from it (for rates).

    ``above`` turns a score into 1.0/0.0 (the mean of which is a rate);
    ``equals`` does the same for a label.  Bools count as 1.0/0.0.
    """

    path: str
    above: float | None = None
    equals: Any = None

    def getter(self, clamped: list[int] | None = None) -> Callable[[Event], float | None]:
        """The value of an event (None: not there, or not a number).  A number beyond
        ±:data:`MAX_MAGNITUDE` is clamped to it, counted in ``clamped[0]``."""
        get = field_getter(self.path)
        counter = clamped if clamped is not None else [0]
        above, equals = self.above, self.equals
        if equals is not None:
            return lambda e: None if (v := get(e)) is None else float(v == equals)
        if above is not None:

            def indicator(e: Event) -> float | None:
                v = get(e)
                if not isinstance(v, int | float):  # absent, a string, an object
                    return None
                return 1.0 if v > above else 0.0

            return indicator

        if "." not in self.path:  # a top-level field: read inline, a call less per event
            field = self.path

            def top(e: Event) -> float | None:  # `number` below, the same but for the read
                v = e.get(field)
                if type(v) is float:
                    x = v
                elif isinstance(v, int | float):
                    x = float(v)
                else:
                    return None
                if -MAX_MAGNITUDE <= x <= MAX_MAGNITUDE:
                    return x
                if x != x:
                    return None
                counter[0] += 1
                return MAX_MAGNITUDE if x > 0 else -MAX_MAGNITUDE

            return top

        def number(e: Event) -> float | None:
            v = get(e)
            if type(v) is float:
                x = v
            elif isinstance(v, int | float):  # int, bool, float subclasses
                x = float(v)
            else:  # absent, a string, an object: nothing to track
                return None
            if -MAX_MAGNITUDE <= x <= MAX_MAGNITUDE:
                return x
            if x != x:
                return None
            counter[0] += 1
            return MAX_MAGNITUDE if x > 0 else -MAX_MAGNITUDE

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

    def fingerprint(self, legacy: bool = False) -> str:
        """A digest of what this monitor's saved state means: what it reads, which
        value, how streams are keyed, which detector with which parameters and
        settings.  When it differs from the one saved with the state, that state is
        another monitor's (see ``processor.on_monitor_change``).  Severity, incident
        type, episode, ``where`` and ``false_alarm_every`` (a threshold the restored
        streams take on as they are) can change without it.  ``legacy``: as written
        before stream keys were escaped (KEY_ENCODING 1), whose state is re-keyed."""
        params = sorted((k, repr(v)) for k, v in self.params.items() if k != "false_alarm_every")
        what: tuple[Any, ...] = (
            self.reads, self.value, self.key, self.detector, params, self.settings,
            self.group, self.gap, self.users, self.users_window, self.fdr,
        )  # fmt: skip
        if not legacy:
            what += (("keys", KEY_ENCODING),)
        return hashlib.sha256(repr(what).encode()).hexdigest()[:16]

    def paths(self) -> frozenset[str]:
        """The field paths this monitor reads from an event: what must be kept of one."""
        read = {self.value.path, *self.key, self.subject, *self.where, *self.group}
        if self.users is not None:
            read.add(self.users)
        return frozenset(read)

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

    def unpack_learned(self, raw: bytes) -> tuple[LearnedStream, float]:
        """A learned stream from its packed snapshot (:meth:`LearnedStream.pack`), and
        its ``seen``; a SnapshotError when this monitor is not of that learned kind."""
        kind, settings = self.detector, self.settings
        if kind not in LEARNED_KINDS:
            raise SnapshotError(
                f"stream snapshot is a packed learned stream's but the monitor's kind is "
                f"{kind!r}: the monitor changed; reset its state to continue"
            )
        params = learned_params(kind, self.params)
        return LearnedStream.unpack(raw, kind, params, settings.warmup, settings.seasonality)
