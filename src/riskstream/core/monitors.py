"""Monitors: which events a detector reads, which value, and per which stream key.

A :class:`MonitorSpec` is the immutable, declared part (from the config file).
The mutable part — one :class:`StreamDetector` per stream key — lives in a
:class:`PartitionDetectors`, one per input partition, because that is the unit
Kafka assigns and the unit whose state is checkpointed with its offset.
"""

from __future__ import annotations

import hashlib
import math
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
from riskstream.core.limits import REARM_SHARE, SAMPLE_EVERY, IdleClock, MonitorLimit, StreamLimits
from riskstream.core.reach import RecentUsers
from riskstream.core.silence import SilenceWatch, Silent, check_silence_params
from riskstream.core.specs import MISSING, GapSettings, MonitorSpec, ValueSpec
from riskstream.core.state_keys import (
    CLOCK_MARK,
    FDR_MARK,
    GAP_MARK,
    LIMITS_KEY,
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
        "limit",
        "new_stream",
        "prefix",
        "rates",
        "rates_dirty",
        "seen",
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
        self.seen: dict[str, float] = {}  # per stream: the data time of its newest reading
        self.limit = MonitorLimit()

    def encode(self, f: Finding) -> list[Any]:
        return [f.finding_id, f.stream_key, f.subject, alarm_to_data(f.alarm), f.detail, f.users]

    def decode(self, d: list[Any]) -> Finding:
        users = None if d[5] is None else (int(d[5][0]), bool(d[5][1]))
        return Finding(d[0], self.spec, d[1], d[2], alarm_from_data(d[3]), d[4], users=users)


class _SilenceMonitor:
    """A ``missing`` monitor: one :class:`SilenceWatch` per partition."""

    __slots__ = ("filters", "key_of", "limit", "prefix", "spec", "subject", "watch")

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.key_of = key_getter(spec.key)
        self.subject = field_getter(spec.subject)
        self.filters = tuple((field_getter(p), frozenset(v)) for p, v in spec.where.items())
        self.prefix = spec.name + STATE_KEY_SEPARATOR
        self.watch = SilenceWatch(check_silence_params(dict(spec.params)))
        self.limit = MonitorLimit()

    def see(self, event: Event, t: float, cap: float) -> str | None:
        """Watch the event's stream; its key if it was dropped at the cap."""
        key = self.key_of(event)
        if len(self.watch) >= cap and key not in self.watch:
            return key
        subject = self.subject(event)
        self.watch.see(key, subject if type(subject) is str else str(subject), t)
        return None

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

    def __init__(
        self, specs: Sequence[MonitorSpec], kind: str, limits: StreamLimits | None = None
    ) -> None:
        mine = [s for s in specs if s.reads == kind]
        self._monitors = [_Compiled(s) for s in mine if s.detector != MISSING]
        self._silences = [_SilenceMonitor(s) for s in mine if s.detector == MISSING]
        self._by_name = {m.spec.name: m for m in self._monitors}
        self._silence_by_name = {m.spec.name: m for m in self._silences}
        self._episodes = Episodes()
        self._limits = limits or StreamLimits()
        self._cap = self._limits.cap
        self._clock = IdleClock(self._limits.idle_ttl_s)
        self._events = 0  # the idle clock samples one event in SAMPLE_EVERY
        self._saved_events = 0
        self._limits_dirty = False
        self._deleted: set[str] = set()  # state keys of evicted streams, not yet saved

    @property
    def stream_count(self) -> int:
        return sum(len(m.streams) for m in self._monitors) + sum(
            len(m.watch) for m in self._silences
        )

    def observe(self, event: Event) -> list[Finding]:
        findings: list[Finding] = []
        t: float | None = None
        cap = self._cap
        self._events += 1
        if not self._events % SAMPLE_EVERY:
            t = parse_time(event["time"])
            if self._clock.tick(t):
                self._evict_idle()
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
                    if len(m.rates) >= cap:
                        t = parse_time(event["time"]) if t is None else t
                        findings.extend(self._dropped(m, key, t))
                        continue
                    rates = m.rates[key] = m.spec.gap.new_rates()
                m.rates_dirty.add(key)
                gap = rates.observe(group, x)
                if gap is None:  # the group or the rest is still too small to compare
                    continue
                x, key, detail = gap.excess, f"{key}|{group}", gap
            stream = m.streams.get(key)
            if t is None:
                t = parse_time(event["time"])
            if stream is None:
                if len(m.streams) >= cap:
                    findings.extend(self._dropped(m, key, t))
                    continue
                stream = m.streams[key] = m.new_stream()
            m.seen[key] = t
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
            dropped = sm.see(event, t, cap)
            if dropped is not None:
                findings.extend(self._dropped(sm, dropped, t))
            findings.extend(sm.finding(silent) for silent in sm.watch.silent())
        if findings:
            return [self._episodes.assign(f, STATE_KEY_SEPARATOR) for f in findings]
        return findings

    def _dropped(self, m: _Compiled | _SilenceMonitor, key: str, t: float) -> list[Finding]:
        """Count an event of a new key past the cap; the incident, the first time."""
        if not m.limit.drop():
            return []
        self._limits_dirty = True
        cap = self._limits.max_streams
        spec = replace(m.spec, incident_type="stream-limit", severity="warning")
        stats = WindowStats(cap, 0.0)
        alarm = StreamAlarm(
            alarm=Alarm(cap, cap + 1, stats, WindowStats(0, 0.0), "max_streams", cap, cap),
            index=cap,
            onset=cap + 1,
            detected_at=t,
            onset_at=t,
            reference=stats,
            reference_std=0.0,
            after=WindowStats(0, 0.0),
        )
        limit = {
            "max_streams": cap,
            "first_dropped_key": key,
            "dropped_events": m.limit.dropped,
            "what": (
                f"monitor {m.spec.name!r} tracks {cap} streams on this partition, its "
                "max_streams_per_monitor; events of new keys are counted "
                "(riskstream_stream_events_dropped_total) and not tracked until streams "
                "go idle (stream_idle_ttl_s) or the limit is raised"
            ),
        }
        digest = hashlib.sha256(
            f"{m.prefix}{LIMITS_KEY}\x1f{m.limit.dropped + m.limit.evicted}".encode()
        ).hexdigest()
        return [Finding(digest[:32], spec, key, m.spec.name, alarm, limit=limit)]

    def _evict_idle(self) -> None:
        """Forget the streams without a reading for idle_ttl_s of the idle clock."""
        before = self._clock.now - self._limits.idle_ttl_s
        deleted = self._deleted
        for m in self._monitors:
            seen = m.seen
            gone = []
            for key, at in seen.items():
                if at < before:
                    if at == -math.inf:  # restored from before eviction: idle from now
                        seen[key] = self._clock.now
                    else:
                        gone.append(key)
            for key in gone:
                del seen[key], m.streams[key]
                m.dirty.discard(key)
                deleted.add(m.prefix + key)
                if m.trails.pop(key, None) is not None:
                    m.trails_dirty.discard(key)
                    deleted.add(m.prefix + USERS_MARK + key)
            self._evicted(m, len(gone), len(m.streams))
        for sm in self._silences:
            gone = sm.watch.evict(before)
            deleted.update(sm.prefix + key for key in gone)
            self._evicted(sm, len(gone), len(sm.watch))

    def _evicted(self, m: _Compiled | _SilenceMonitor, n: int, left: int) -> None:
        limit = m.limit
        if n:
            limit.evicted += n
            limit.new_evicted += n
            limit.dirty = self._limits_dirty = True
        if limit.capped and left < REARM_SHARE * self._cap:
            limit.capped = False  # the next drop reports again
            limit.dirty = self._limits_dirty = True

    def take_deleted(self, changed: Mapping[str, bytes]) -> list[str]:
        """State keys of streams evicted since the last call (and not back in ``changed``)."""
        out = [k for k in self._deleted if k not in changed]
        self._deleted.clear()
        return out

    def mark_deleted(self, state_keys: Iterable[str]) -> None:
        """Delete these again at the next save (after a save that may not have landed)."""
        self._deleted.update(state_keys)

    def take_limit_counts(self) -> dict[str, tuple[int, int]]:
        """Per monitor, (events dropped at the cap, streams evicted) since the last call."""
        out = {}
        for m in self._all():
            limit = m.limit
            if limit.new_dropped or limit.new_evicted:
                out[m.spec.name] = (limit.new_dropped, limit.new_evicted)
                limit.new_dropped = limit.new_evicted = 0
        return out

    def _all(self) -> list[_Compiled | _SilenceMonitor]:
        return [*self._monitors, *self._silences]

    def _limits_snapshot(self) -> dict[str, Any]:
        return {
            "events": self._events,
            "clock": self._clock.dump(),
            "monitors": {
                m.spec.name: m.limit.dump()
                for m in self._all()
                if m.limit.dropped or m.limit.evicted or m.limit.capped
            },
        }

    def _load_limits(self, data: Mapping[str, Any]) -> None:
        self._events = self._saved_events = int(data["events"])
        self._clock.load(data["clock"])
        for m in self._all():
            if m.spec.name in data["monitors"]:
                m.limit.load(data["monitors"][m.spec.name])

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
            seen = m.seen
            for key in m.dirty:
                snap = streams[key].snapshot()
                snap["seen"] = seen[key]  # for idle eviction after a restore
                out[prefix + key] = dumps(snap)
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
        if self._limits_dirty or self._events != self._saved_events:
            out[LIMITS_KEY] = dumps(self._limits_snapshot())
            self._limits_dirty = False
            self._saved_events = self._events
        return out

    def mark_dirty(self, state_keys: Iterable[str]) -> None:
        """Mark streams changed again (after a checkpoint that may not have landed)."""
        for state_key in state_keys:
            if state_key == LIMITS_KEY:
                self._limits_dirty = True
                continue
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
        unseen: list[tuple[_Compiled, str]] = []
        for state_key, raw in snapshots.items():
            if state_key == LIMITS_KEY:
                self._load_limits(orjson.loads(raw))
                continue
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
                snap = orjson.loads(raw)
                seen = snap.pop("seen", None)
                m.streams[key] = m.spec.restore_stream(snap)
                if seen is None:  # saved before idle eviction existed
                    unseen.append((m, key))
                else:
                    m.seen[key] = float(seen)
        for m, key in unseen:  # idle from now on, by the partition's clock
            m.seen[key] = self._clock.now

        for name, items in silent.items():
            self._silence_by_name[name].watch.load(items)

    def snapshot_all(self) -> dict[str, Any]:
        """Every stream's snapshot as plain data (for comparisons and tests)."""
        out: dict[str, Any] = {
            m.prefix + k: {**s.snapshot(), "seen": m.seen[k]}
            for m in self._monitors
            for k, s in m.streams.items()
        }
        if self._events or self._limits_dirty:  # as take_changed writes it
            out[LIMITS_KEY] = self._limits_snapshot()
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
