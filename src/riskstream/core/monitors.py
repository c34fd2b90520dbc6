"""Monitors: which events a detector reads, which value, and per which stream key.

A :class:`MonitorSpec` is the immutable, declared part (from the config file).
The mutable part — one :class:`StreamDetector` per stream key — lives in a
:class:`PartitionDetectors`, one per input partition, because that is the unit
Kafka assigns and the unit whose state is checkpointed with its offset.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from riskstream.core.detectors import Alarm, Detector, WindowStats, make_detector
from riskstream.core.discoveries import (
    DiscoveryControl,
    FdrSettings,
    alarm_from_data,
    alarm_to_data,
)
from riskstream.core.episodes import EPISODE_MARK, Episodes
from riskstream.core.groups import GapSample, GroupRates, group_getter
from riskstream.core.learned import LEARNED_KINDS, LearnedStream, learned_params
from riskstream.core.reach import RecentUsers
from riskstream.core.silence import SilenceWatch, Silent, check_silence_params
from riskstream.core.streams import StreamAlarm, StreamDetector, StreamSettings
from riskstream.core.timeutil import format_time, parse_time

__all__ = [
    "Finding",
    "MonitorSpec",
    "PartitionDetectors",
    "ValueSpec",
    "field_getter",
]

Event = Mapping[str, Any]
Getter = Callable[[Event], Any]


def field_getter(path: str) -> Getter:
    """A fast accessor for a dotted field path; missing parts give ``None``.

    >>> field_getter("safety.toxicity")({"safety": {"toxicity": 0.2}})
    0.2
    >>> field_getter("segment.group")({"segment": None}) is None
    True
    """
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (only,) = parts
        return lambda e: e.get(only)
    if len(parts) == 2:
        first, second = parts

        def get2(e: Event) -> Any:
            inner = e.get(first)
            return inner.get(second) if isinstance(inner, dict) else None

        return get2

    def get(e: Event) -> Any:
        cur: Any = e
        for p in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    return get


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
            return LearnedStream.restore(snap, kind, params, settings.warmup, settings.seasonality)
        return StreamDetector.restore(snap, self.new_detector, settings)


@dataclass(frozen=True, slots=True)
class Finding:
    """A stream alarm, attributed to its monitor and subject, with a stable id."""

    finding_id: str
    monitor: MonitorSpec
    stream_key: str
    subject: str
    alarm: StreamAlarm
    detail: dict[str, Any] | None = None  # e.g. the group's rate and the rest's
    episode: dict[str, Any] | None = None  # alarms so far in this incident's episode
    update: bool = False  # True: a later alarm of an incident already opened
    users: tuple[int, bool] | None = None  # distinct users since onset; whether all were kept
    fdr: dict[str, Any] | None = None  # the confirmation test that let it through


def _key_getter(paths: Sequence[str]) -> Callable[[Event], str]:
    """The stream key of an event: its key fields' values joined by ``|``."""
    getters = tuple(field_getter(p) for p in paths)
    if len(getters) == 1:
        (get,) = getters

        def one(e: Event) -> str:
            v = get(e)
            return v if type(v) is str else str(v)

        return one
    return lambda e: "|".join([str(get(e)) for get in getters])


class _Compiled:
    """A spec with its getters precompiled, and its streams on this partition."""

    __slots__ = (
        "control",
        "dirty",
        "filters",
        "group_of",
        "key_of",
        "new_stream",
        "prefix",
        "rates",
        "rates_dirty",
        "spec",
        "streams",
        "subject",
        "trails",
        "trails_dirty",
        "users_of",
        "value",
    )

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.value = spec.value.getter()
        self.key_of = _key_getter(spec.key)
        self.group_of = group_getter(spec.group) if spec.group else None
        self.rates: dict[str, GroupRates] = {}  # per key, when group_of is set
        self.rates_dirty: set[str] = set()
        self.subject = field_getter(spec.subject)
        self.filters = tuple((field_getter(p), frozenset(v)) for p, v in spec.where.items())
        self.prefix = spec.name + STATE_KEY_SEPARATOR
        self.streams: dict[str, StreamDetector | LearnedStream] = {}
        self.new_stream = spec.stream_factory()
        self.dirty: set[str] = set()
        self.users_of = field_getter(spec.users) if spec.users else None
        self.trails: dict[str, RecentUsers] = {}  # per stream, when users_of is set
        self.trails_dirty: set[str] = set()
        self.control = DiscoveryControl(spec.fdr) if spec.fdr else None

    def encode(self, f: Finding) -> list[Any]:
        return [f.finding_id, f.stream_key, f.subject, alarm_to_data(f.alarm), f.detail, f.users]

    def decode(self, d: list[Any]) -> Finding:
        users = None if d[5] is None else (int(d[5][0]), bool(d[5][1]))
        return Finding(d[0], self.spec, d[1], d[2], alarm_from_data(d[3]), d[4], users=users)


STATE_KEY_SEPARATOR = "\x1f"
"""Between monitor name and stream key in a state key (cannot occur in either)."""

GAP_MARK = "\x1e"
"""Marks the state key of a monitor's group rates, apart from its streams' keys."""

FDR_MARK = "\x1b"
"""Marks the state key of a monitor's false-discovery control (one per partition)."""

USERS_MARK = "\x1c"
"""Marks the state key of a stream's recent users (see :mod:`riskstream.core.reach`)."""

MISSING = "missing"
"""The detector kind for silence, which no per-sample detector can see."""


class _SilenceMonitor:
    """A ``missing`` monitor: one :class:`SilenceWatch` per partition."""

    __slots__ = ("filters", "key_of", "prefix", "spec", "subject_index", "watch")

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.key_of = _key_getter(spec.key)
        self.filters = tuple((field_getter(p), frozenset(v)) for p, v in spec.where.items())
        self.prefix = spec.name + STATE_KEY_SEPARATOR
        self.subject_index = spec.key.index(spec.subject) if spec.subject in spec.key else None
        self.watch = SilenceWatch(check_silence_params(dict(spec.params)))

    def finding(self, silent: Silent) -> Finding:
        n = silent.events
        stats = WindowStats(n, 0.0)
        gap = silent.noticed_at - silent.last_seen
        alarm = StreamAlarm(
            alarm=Alarm(n, n + 1, stats, WindowStats(0, 0.0), MISSING, gap, self.watch_after),
            index=n,
            onset=n + 1,
            detected_at=silent.noticed_at,
            onset_at=silent.last_seen,
            reference=stats,
            reference_std=0.0,
            after=WindowStats(0, 0.0),
        )
        parts = silent.key.split("|")
        subject = parts[self.subject_index] if self.subject_index is not None else silent.key
        digest = hashlib.sha256(f"{self.prefix}{silent.key}\x1f{n}".encode()).hexdigest()
        return Finding(digest[:32], self.spec, silent.key, subject, alarm)

    @property
    def watch_after(self) -> float:
        return float(self.spec.params["after"])


class PartitionDetectors:
    """Every monitor's per-stream detectors for one input partition.

    Each monitor remembers which of its streams changed since the last
    checkpoint, so a checkpoint encodes and writes only those.
    """

    def __init__(self, specs: Sequence[MonitorSpec], kind: str) -> None:
        mine = [s for s in specs if s.reads == kind]
        self._monitors = [_Compiled(s) for s in mine if s.detector != MISSING]
        self._silences = [_SilenceMonitor(s) for s in mine if s.detector == MISSING]
        self._by_name = {m.spec.name: m for m in self._monitors}
        self._silence_by_name = {m.spec.name: m for m in self._silences}
        self._episodes = Episodes()

    @property
    def stream_count(self) -> int:
        return sum(len(m.streams) for m in self._monitors) + sum(
            len(m.watch) for m in self._silences
        )

    def observe(self, event: Event) -> list[Finding]:
        findings: list[Finding] = []
        t: float | None = None
        for m in self._monitors:
            if m.filters and not all(get(event) in allowed for get, allowed in m.filters):
                continue
            x = m.value(event)
            if x is None:
                continue
            key = m.key_of(event)
            detail = None
            if m.group_of is not None:
                group = m.group_of(event)
                if group is None:
                    continue
                rates = m.rates.get(key)
                if rates is None:
                    rates = m.rates[key] = m.spec.gap.new_rates()
                m.rates_dirty.add(key)
                gap = rates.observe(group, x)
                if gap is None:  # the group or the rest is still too small to compare
                    continue
                x, key, detail = gap.excess, f"{key}|{group}", gap
            stream = m.streams.get(key)
            if stream is None:
                stream = m.streams[key] = m.new_stream()
            if t is None:
                t = parse_time(event["time"])
            m.dirty.add(key)
            if m.control is not None:
                findings.extend(self._confirm(m, key, x, t))
            trail = None
            if m.users_of is not None:
                trail = m.trails.get(key)
                if trail is None:
                    trail = m.trails[key] = RecentUsers(m.spec.users_window)
                trail.add(m.users_of(event))
                m.trails_dirty.add(key)
            alarm = stream.update(x, t)
            if alarm is not None:
                finding = self._finding(m, key, event, alarm, detail)
                if trail is not None:
                    finding = replace(
                        finding, users=trail.distinct_last(alarm.index - alarm.onset + 1)
                    )
                if m.control is not None:
                    m.control.hold(key, alarm, finding)
                else:
                    findings.append(finding)
        for sm in self._silences:
            if sm.filters and not all(get(event) in allowed for get, allowed in sm.filters):
                continue
            if t is None:
                t = parse_time(event["time"])
            sm.watch.see(sm.key_of(event), t)
            findings.extend(sm.finding(silent) for silent in sm.watch.silent())
        if findings:
            return [self._episodes.assign(f, STATE_KEY_SEPARATOR) for f in findings]
        return findings

    @staticmethod
    def _confirm(m: _Compiled, key: str, x: float, t: float) -> list[Finding]:
        """Feed a fresh value to the false-discovery control; what it lets through."""
        control = m.control
        assert control is not None
        streams = len(m.streams)
        passed = control.tick(t, streams)
        if (done := control.see(key, x)) is not None:
            p, finding = done
            if control.decide(p, finding, streams) is not None:
                passed.append((finding, p, control.settings.q / max(streams, 1)))
        settings = control.settings
        return [
            replace(
                f,
                alarm=replace(f.alarm, detected_at=t),
                fdr={
                    "p_value": p, "level": level, "q": settings.q, "streams": streams,
                    "confirm_samples": settings.confirm, "window_s": settings.window_s,
                    "alarm_at": format_time(f.alarm.detected_at),
                },
            )
            for f, p, level in passed
        ]  # fmt: skip

    @staticmethod
    def _finding(
        m: _Compiled, stream_key: str, event: Event, alarm: StreamAlarm, gap: GapSample | None
    ) -> Finding:
        digest = hashlib.sha256(f"{m.prefix}{stream_key}\x1f{alarm.index}".encode()).hexdigest()
        detail = None
        if gap is not None:
            detail = {
                "group": gap.group,
                "rate": gap.rate,
                "rest_rate": gap.rest_rate,
                "difference": gap.difference,
                "ratio": gap.ratio,
                "group_events": gap.events,
                "rest_events": gap.rest_events,
            }
        return Finding(digest[:32], m.spec, stream_key, str(m.subject(event)), alarm, detail)

    def take_changed(self) -> dict[str, bytes]:
        """Encoded snapshots of the streams changed since the last call, by state key."""
        out: dict[str, bytes] = {}
        dumps = orjson.dumps
        for m in self._monitors:
            streams, prefix = m.streams, m.prefix
            for key in m.dirty:
                out[prefix + key] = dumps(streams[key].snapshot())
            m.dirty.clear()
            for key in m.rates_dirty:
                out[prefix + GAP_MARK + key] = dumps(m.rates[key].snapshot())
            m.rates_dirty.clear()
            for key in m.trails_dirty:
                out[prefix + USERS_MARK + key] = dumps(m.trails[key].snapshot())
            m.trails_dirty.clear()
            if m.control is not None and m.control.dirty:
                out[prefix + FDR_MARK] = dumps(m.control.snapshot(m.encode))
                m.control.dirty = False
        for sm in self._silences:
            for key in sm.watch.dirty:
                out[sm.prefix + key] = dumps(sm.watch.snapshot(key))
            sm.watch.dirty.clear()
        for key in self._episodes.dirty:
            out[key] = dumps(self._episodes.snapshot(key))
        self._episodes.dirty.clear()
        return out

    def mark_dirty(self, state_keys: Iterable[str]) -> None:
        """Mark streams changed again (after a checkpoint that may not have landed)."""
        for state_key in state_keys:
            name, _, key = state_key.partition(STATE_KEY_SEPARATOR)
            if key.startswith(EPISODE_MARK):
                self._episodes.dirty.add(state_key)
            elif (m := self._by_name.get(name)) is not None and key in m.streams:
                m.dirty.add(key)
            elif m is not None and key.startswith(GAP_MARK):
                m.rates_dirty.add(key[len(GAP_MARK) :])
            elif m is not None and key.startswith(USERS_MARK):
                m.trails_dirty.add(key[len(USERS_MARK) :])
            elif m is not None and m.control is not None and key == FDR_MARK:
                m.control.dirty = True
            elif (sm := self._silence_by_name.get(name)) is not None:
                sm.watch.dirty.add(key)

    def load(self, snapshots: Mapping[str, bytes]) -> None:
        """Restore streams from a checkpoint; state of monitors no longer configured is ignored."""
        silent: dict[str, dict[str, Any]] = {}
        for state_key, raw in snapshots.items():
            name, _, key = state_key.partition(STATE_KEY_SEPARATOR)
            if key.startswith(EPISODE_MARK):
                self._episodes.load(state_key, orjson.loads(raw))
                continue
            if name in self._silence_by_name:
                silent.setdefault(name, {})[key] = orjson.loads(raw)
                continue
            m = self._by_name.get(name)
            if m is None:
                continue
            if key.startswith(GAP_MARK):
                gap = m.spec.gap
                m.rates[key[len(GAP_MARK) :]] = GroupRates.restore(
                    orjson.loads(raw), gap.half_life, gap.min_samples, gap.ratio_floor
                )
                continue
            if key.startswith(USERS_MARK):
                m.trails[key[len(USERS_MARK) :]] = RecentUsers.restore(orjson.loads(raw))
                continue
            if key == FDR_MARK:
                if m.control is not None:
                    m.control.load(orjson.loads(raw), m.decode)
                continue
            m.streams[key] = m.spec.restore_stream(orjson.loads(raw))

        for name, items in silent.items():
            self._silence_by_name[name].watch.load(items)

    def snapshot_all(self) -> dict[str, Any]:
        """Every stream's snapshot as plain data (for comparisons and tests)."""
        out: dict[str, Any] = {
            m.prefix + k: s.snapshot() for m in self._monitors for k, s in m.streams.items()
        }
        for m in self._monitors:
            out.update((m.prefix + GAP_MARK + k, r.snapshot()) for k, r in m.rates.items())
            out.update((m.prefix + USERS_MARK + k, u.snapshot()) for k, u in m.trails.items())
            if m.control is not None:
                out[m.prefix + FDR_MARK] = m.control.snapshot(m.encode)
        for sm in self._silences:
            out.update((sm.prefix + k, sm.watch.snapshot(k)) for k in sm.watch.streams())
        out.update((k, self._episodes.snapshot(k)) for k in self._episodes.open_keys())
        return dict(sorted(out.items()))
