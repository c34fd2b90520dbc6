"""Monitors: which events a detector reads, which value, and per which stream key.

A :class:`MonitorSpec` is the immutable, declared part (from the config file).
The mutable part — one :class:`StreamDetector` per stream key — lives in a
:class:`PartitionDetectors`, one per input partition, because that is the unit
Kafka assigns and the unit whose state is checkpointed with its offset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from riskstream.core.detectors import Alarm, WindowStats
from riskstream.core.discoveries import DiscoveryControl, alarm_from_data, alarm_to_data
from riskstream.core.episodes import Episodes
from riskstream.core.fields import Event, field_getter, key_getter
from riskstream.core.findings import Finding
from riskstream.core.groups import GapSample, GroupRates, group_getter
from riskstream.core.learned import LearnedStream
from riskstream.core.reach import RecentUsers
from riskstream.core.silence import SilenceWatch, Silent, check_silence_params
from riskstream.core.specs import MISSING, GapSettings, MonitorSpec, ValueSpec
from riskstream.core.state_keys import (
    CLOCK_MARK,
    FDR_MARK,
    GAP_MARK,
    STATE_KEY_SEPARATOR,
    USERS_MARK,
    StateKind,
)
from riskstream.core.state_keys import parse as parse_state_key
from riskstream.core.streams import StreamAlarm, StreamDetector
from riskstream.core.timeutil import format_time, parse_time

# The monitor's parts live in their own modules; these names are re-exported because
# the rest of riskstream (and users' code) has always imported them from here.
__all__ = [
    "MISSING",
    "Finding",
    "GapSettings",
    "MonitorSpec",
    "PartitionDetectors",
    "ValueSpec",
    "field_getter",
]


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
        self.key_of = key_getter(spec.key)
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


class _SilenceMonitor:
    """A ``missing`` monitor: one :class:`SilenceWatch` per partition."""

    __slots__ = ("filters", "key_of", "prefix", "spec", "subject", "watch")

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.key_of = key_getter(spec.key)
        self.subject = field_getter(spec.subject)
        self.filters = tuple((field_getter(p), frozenset(v)) for p, v in spec.where.items())
        self.prefix = spec.name + STATE_KEY_SEPARATOR
        self.watch = SilenceWatch(check_silence_params(dict(spec.params)))

    def see(self, event: Event, t: float) -> None:
        subject = self.subject(event)
        self.watch.see(self.key_of(event), subject if type(subject) is str else str(subject), t)

    def finding(self, silent: Silent) -> Finding:
        n = silent.events
        stats = WindowStats(n, 0.0)
        gap = silent.noticed_at - silent.last_seen
        alarm = StreamAlarm(
            alarm=Alarm(n, n + 1, stats, WindowStats(0, 0.0), MISSING, gap, silent.allowed),
            index=n,
            onset=n + 1,
            detected_at=silent.noticed_at,
            onset_at=silent.last_seen,
            reference=stats,
            reference_std=0.0,
            after=WindowStats(0, 0.0),
        )
        digest = hashlib.sha256(f"{self.prefix}{silent.key}\x1f{n}".encode()).hexdigest()
        # The subject is the one its events named, never parsed out of a joined key.
        return Finding(digest[:32], self.spec, silent.key, silent.subject, alarm)


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
            sm.see(event, t)
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
            name, kind, key = parse_state_key(state_key)
            m = self._by_name.get(name)
            if kind is StateKind.EPISODE:
                self._episodes.dirty.add(state_key)
            elif (sm := self._silence_by_name.get(name)) is not None:
                sm.watch.dirty.add(CLOCK_MARK if kind is StateKind.CLOCK else key)
            elif m is None:
                continue
            elif kind is StateKind.STREAM and key in m.streams:
                m.dirty.add(key)
            elif kind is StateKind.GROUP_RATES:
                m.rates_dirty.add(key)
            elif kind is StateKind.USERS:
                m.trails_dirty.add(key)
            elif kind is StateKind.FDR and m.control is not None:
                m.control.dirty = True

    def load(self, snapshots: Mapping[str, bytes]) -> None:
        """Restore streams from a checkpoint; state of monitors no longer configured is ignored."""
        silent: dict[str, dict[str, Any]] = {}
        for state_key, raw in snapshots.items():
            name, kind, key = parse_state_key(state_key)
            if kind is StateKind.EPISODE:
                self._episodes.load(state_key, orjson.loads(raw))
                continue
            if name in self._silence_by_name:
                silent.setdefault(name, {})[CLOCK_MARK if kind is StateKind.CLOCK else key] = (
                    orjson.loads(raw)
                )
                continue
            m = self._by_name.get(name)
            if m is None:
                continue
            if kind is StateKind.GROUP_RATES:
                gap = m.spec.gap
                m.rates[key] = GroupRates.restore(
                    orjson.loads(raw), gap.half_life, gap.min_samples, gap.ratio_floor
                )
            elif kind is StateKind.USERS:
                m.trails[key] = RecentUsers.restore(orjson.loads(raw))
            elif kind is StateKind.FDR:
                if m.control is not None:
                    m.control.load(orjson.loads(raw), m.decode)
            elif kind is StateKind.STREAM:
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
            out[sm.prefix + CLOCK_MARK] = sm.watch.snapshot(CLOCK_MARK)
        out.update((k, self._episodes.snapshot(k)) for k in self._episodes.open_keys())
        return dict(sorted(out.items()))
