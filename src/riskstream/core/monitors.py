"""Monitors: which events a detector reads, which value, and per which stream key.

A :class:`MonitorSpec` is the immutable, declared part (from the config file).
The mutable part — one :class:`StreamDetector` per stream key — lives in a
:class:`PartitionDetectors`, one per input partition, because that is the unit
Kafka assigns and the unit whose state is checkpointed with its offset.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from riskstream.core.detectors import PACKED_KINDS, Alarm, WindowStats
from riskstream.core.discoveries import DiscoveryControl, alarm_from_data, alarm_to_data
from riskstream.core.episodes import Episodes
from riskstream.core.fields import Event, field_getter, key_getter, legacy_key
from riskstream.core.findings import Finding
from riskstream.core.groups import GapSample, GroupRates, group_getter
from riskstream.core.learned import LEARNED_KINDS, LEARNED_PACKED, LearnedStream, unpacked_as_data
from riskstream.core.limits import REARM_SHARE, SAMPLE_EVERY, IdleClock, MonitorLimit, StreamLimits
from riskstream.core.reach import RecentUsers
from riskstream.core.silence import SilenceWatch, Silent, check_silence_params
from riskstream.core.specs import MAX_MAGNITUDE, MISSING, GapSettings, MonitorSpec, ValueSpec
from riskstream.core.state_check import encode_checked, null_field
from riskstream.core.state_keys import (
    CLOCK_MARK,
    COLD_MARK,
    FDR_MARK,
    GAP_MARK,
    HELD_MARK,
    LIMITS_KEY,
    SPEC_MARK,
    STATE_KEY_SEPARATOR,
    USERS_MARK,
    StateKind,
)
from riskstream.core.state_keys import parse as parse_state_key
from riskstream.core.streams import PACKED_VERSION, StreamAlarm, StreamDetector, packed_as_data
from riskstream.core.timeutil import format_time, parse_time
from riskstream.errors import SnapshotError

# The monitor's parts live in their own modules; these names are re-exported because
# the rest of riskstream (and users' code) has always imported them from here.
__all__ = [
    "MISSING",
    "ApplyFailure",
    "Finding",
    "GapSettings",
    "MonitorSpec",
    "PartitionDetectors",
    "StateReset",
    "ValueSpec",
    "field_getter",
    "saved_as_data",
]

# The kinds whose streams a checkpoint packs (StreamDetector.pack, LearnedStream.pack)
_PACKED_NAMES = frozenset(kind.kind for kind in PACKED_KINDS.values()) | frozenset(LEARNED_KINDS)
_PACKED_HEAD = bytes((PACKED_VERSION,))  # a packed stream snapshot's first byte (JSON's: "{")
_LEARNED_HEAD = bytes((LEARNED_PACKED,))  # ...and a packed learned stream's

ALL_STREAMS = "\x00"
"""The held key of a monitor held as a whole on a partition (its shared part failed)."""


@dataclass(frozen=True, slots=True)
class ApplyFailure:
    """A stream that failed on an event (or on saving its state) and is now held."""

    monitor: str
    stream_key: str | None  # None: it failed before a stream was known (nothing held)
    error: BaseException | None
    message: str


@dataclass(frozen=True, slots=True)
class StateReset:
    """Saved state dropped at load: a whole monitor's (``stream_key`` None) or one stream's."""

    monitor: str
    stream_key: str | None
    reason: str


class _Compiled:
    """A spec with its getters precompiled, and its streams on this partition."""

    __slots__ = (
        "clamped",
        "control",
        "dirty",
        "filters",
        "group_of",
        "held",
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
        "untracked",
        "users_of",
        "value",
    )

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.clamped = [0]  # values clamped to ±MAX_MAGNITUDE since last taken
        self.untracked = 0  # events of groups new past MAX_GROUPS, since last taken
        self.value = spec.value.getter(self.clamped)
        self.held: dict[str, list[Any]] = {}  # quarantined streams: key -> [why, events skipped]
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

    __slots__ = (
        "clamped", "filters", "held", "key_of", "limit", "prefix", "spec", "subject", "watch",
    )  # fmt: skip

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec = spec
        self.clamped = [0]
        self.held: dict[str, list[Any]] = {}
        self.key_of = key_getter(spec.key)
        self.subject = field_getter(spec.subject)
        self.filters = tuple((field_getter(p), frozenset(v)) for p, v in spec.where.items())
        self.prefix = spec.name + STATE_KEY_SEPARATOR
        self.watch = SilenceWatch(check_silence_params(dict(spec.params)))
        self.limit = MonitorLimit()

    def see(self, key: str, event: Event, t: float, cap: float) -> bool:
        """Watch the event's stream ``key``; False when it was dropped at the cap."""
        subject = self.subject(event)
        return self.watch.see(key, subject if type(subject) is str else str(subject), t, cap)

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

    What can go wrong with one stream stays with that stream.  An exception while
    it applies an event *holds* it (quarantine): its state is kept as it was, the
    events for it are counted and skipped, every other stream carries on, and the
    event is reported in :attr:`failures` for the caller to dead-letter.  A snapshot
    that would not restore (a non-finite number) is never saved: the stream is held
    and its last good snapshot stays in the store.  Held streams are saved as such
    and stay held across restarts until their state is reset (``riskstream state
    reset``) or their monitor changes.
    """

    def __init__(
        self, specs: Sequence[MonitorSpec], kind: str, limits: StreamLimits | None = None
    ) -> None:
        mine = [s for s in specs if s.reads == kind]
        self._monitors = [_Compiled(s) for s in mine if s.detector != MISSING]
        self._plan = _plan(self._monitors)
        self._plan_of = self._monitors  # the list the plan was made for (load may replace it)
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
        self._specs = {s.name: s for s in mine}
        self._fingerprints = {s.name: s.fingerprint() for s in mine}
        self._legacy_fingerprints = {s.name: s.fingerprint(legacy=True) for s in mine}
        self._spec_dirty = set(self._specs)  # fingerprints to save (once per partition)
        self._held_dirty: set[str] = set()  # held records to save, by state key
        self._deleted: set[str] = set()  # state keys to delete at the next save
        self.failures: list[ApplyFailure] = []  # since the caller last cleared it
        self.skipped: dict[str, int] = {}  # events skipped for held streams, per monitor

    @property
    def stream_count(self) -> int:
        return sum(len(m.streams) for m in self._monitors) + sum(
            len(m.watch) for m in self._silences
        )

    @property
    def held_count(self) -> int:
        return sum(len(m.held) for m in self._monitors) + sum(len(m.held) for m in self._silences)

    def observe(self, event: Event, t: float | None = None) -> list[Finding]:
        """Apply one event to every monitor's stream; ``t``: its time, when parsed already."""
        findings: list[Finding] = []
        cap = self._cap
        self._events += 1
        if not self._events % SAMPLE_EVERY:
            if t is None:
                t = parse_time(event["time"])
            if self._clock.tick(t):
                self._evict_idle()
        if self._plan_of is not self._monitors:
            self._plan, self._plan_of = _plan(self._monitors), self._monitors
        read: tuple[float, str] | None = None  # the previous monitor's value and key
        for m, same, plain in self._plan:
            key = None
            try:
                if same and read is not None:
                    x, key = read
                    if not _CLAMP_BELOW < x < MAX_MAGNITUDE:
                        m.value(event)  # clamped, perhaps: this monitor counts it too
                else:
                    read = None
                    if m.filters and not all(get(event) in allowed for get, allowed in m.filters):
                        continue
                    value = m.value(event)
                    if value is None:
                        continue
                    x, key = value, m.key_of(event)
                    read = x, key
                if m.held and (key in m.held or ALL_STREAMS in m.held):
                    self._skip(m, key)
                    continue
                if plain:  # the general path below, less what this monitor does not use
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
                    alarm = stream.update(x, t)
                    if alarm is not None:
                        findings.append(self._finding(m, key, event, alarm, None))
                    continue
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
                    untracked = rates.untracked
                    gap = rates.observe(group, x)
                    if gap is None:  # the group or the rest is still too small to compare
                        m.untracked += rates.untracked - untracked  # or one group too many
                        continue
                    x, key, detail = gap.excess, f"{key}|{group}", gap
                    if m.held and key in m.held:
                        self._skip(m, key)
                        continue
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
            except Exception as exc:  # one stream's failure must stay its own
                self._fail(m, key, exc)
        for sm in self._silences:
            key = None
            try:
                if sm.filters and not all(get(event) in allowed for get, allowed in sm.filters):
                    continue
                key = sm.key_of(event)
                if sm.held and (key in sm.held or ALL_STREAMS in sm.held):
                    self._skip(sm, key)
                    continue
                if t is None:
                    t = parse_time(event["time"])
                if not sm.see(key, event, t, cap):
                    findings.extend(self._dropped(sm, key, t))
                key = ALL_STREAMS  # what follows is the partition's, not one stream's
                findings.extend(sm.finding(silent) for silent in sm.watch.silent())
            except Exception as exc:
                self._fail(sm, key, exc)
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
                deleted.add(m.prefix + COLD_MARK + key)
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

    def _skip(self, m: _Compiled | _SilenceMonitor, key: str) -> None:
        record = m.held.get(key) or m.held[ALL_STREAMS]
        record[1] += 1
        self._held_dirty.add(m.prefix + HELD_MARK + (key if key in m.held else ALL_STREAMS))
        name = m.spec.name
        self.skipped[name] = self.skipped.get(name, 0) + 1

    def _fail(self, m: _Compiled | _SilenceMonitor, key: str | None, exc: BaseException) -> None:
        """Hold the stream that raised (when known) and report the failure."""
        what = f"{type(exc).__name__}: {exc}"
        if key is None:
            message = f"monitor {m.spec.name!r} could not read the event: {what}"
        else:
            shown = "all its streams" if key == ALL_STREAMS else f"stream {key!r}"
            message = f"monitor {m.spec.name!r}, {shown}: {what}; the stream is held"
            self.hold(m.spec.name, key, what)
        self.failures.append(ApplyFailure(m.spec.name, key, exc, message))

    def hold(self, monitor: str, key: str, why: str) -> None:
        """Quarantine one stream of ``monitor`` (``ALL_STREAMS``: the monitor) here."""
        m = self._by_name.get(monitor) or self._silence_by_name[monitor]
        if key not in m.held:
            m.held[key] = [why[:500], 0]
            self._held_dirty.add(m.prefix + HELD_MARK + key)

    def take_clamped(self) -> dict[str, int]:
        """Values clamped to ±MAX_MAGNITUDE since the last call, per monitor."""
        out: dict[str, int] = {}
        monitors: list[_Compiled | _SilenceMonitor] = [*self._monitors, *self._silences]
        for m in monitors:
            if m.clamped[0]:
                out[m.spec.name] = m.clamped[0]
                m.clamped[0] = 0
        return out

    def take_untracked(self) -> dict[str, int]:
        """Events of groups that were new past the MAX_GROUPS a stream tracks (counted
        in the rest only, no gap of their own) since the last call, per monitor."""
        out: dict[str, int] = {}
        for m in self._monitors:
            if m.untracked:
                out[m.spec.name], m.untracked = m.untracked, 0
        return out

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

    # -- saving -----------------------------------------------------------------------

    def take_changed(self) -> dict[str, bytes]:
        """Encoded snapshots of the streams changed since the last call, by state key.

        A stream whose snapshot would not restore is left out and held (reported in
        :attr:`failures`); its last good snapshot stays where it was saved.
        """
        out: dict[str, bytes] = {}
        put = self._put
        for m in self._monitors:
            streams, prefix = m.streams, m.prefix
            seen = m.seen
            dirty: Iterable[str] = m.dirty
            if m.spec.detector in _PACKED_NAMES and m.spec.settings.seasonality is None:
                dirty = self._take_packed(m, out)  # the bulk of a checkpoint, packed
            for key in dirty:  # _put inlined for the usual case
                try:
                    snap = streams[key].snapshot()
                    snap["seen"] = seen[key]  # for idle eviction after a restore
                    raw, bad = encode_checked(snap)
                except Exception:
                    bad = "?"
                if bad is None:
                    out[prefix + key] = raw
                else:
                    put(out, m, key, prefix + key, streams[key].snapshot)
            m.dirty.clear()
            for key in m.rates_dirty:
                put(out, m, key, prefix + GAP_MARK + key, m.rates[key].snapshot)
            m.rates_dirty.clear()
            for key in m.trails_dirty:
                put(out, m, key, prefix + USERS_MARK + key, m.trails[key].snapshot)
            m.trails_dirty.clear()
            if m.control is not None and m.control.dirty:
                fdr = functools.partial(m.control.snapshot, m.encode)
                put(out, m, ALL_STREAMS, prefix + FDR_MARK, fdr)
                m.control.dirty = False
        for sm in self._silences:
            watch = sm.watch
            for key in watch.dirty:
                at = ALL_STREAMS if key == CLOCK_MARK else key
                put(out, sm, at, sm.prefix + key, functools.partial(watch.snapshot, key))
            watch.dirty.clear()
        for key in self._episodes.dirty:
            out[key] = orjson.dumps(self._episodes.snapshot(key))
        self._episodes.dirty.clear()
        if self._limits_dirty or self._events != self._saved_events:
            out[LIMITS_KEY] = orjson.dumps(self._limits_snapshot())
            self._limits_dirty = False
            self._saved_events = self._events
        for state_key in self._held_dirty:
            name, _, key = parse_state_key(state_key)
            held = self._by_name.get(name) or self._silence_by_name.get(name)
            if held is not None and key in held.held:
                why, skipped = held.held[key]
                out[state_key] = orjson.dumps({"why": why, "skipped": skipped})
        self._held_dirty.clear()
        for name in self._spec_dirty:
            out[name + STATE_KEY_SEPARATOR + SPEC_MARK] = orjson.dumps(self._fingerprints[name])
        self._spec_dirty.clear()
        self._deleted.difference_update(out)
        return out

    @staticmethod
    def _take_packed(m: _Compiled, out: dict[str, bytes]) -> list[str]:
        """Pack ``m``'s changed streams into ``out`` (the cold part, under its own state
        key, only when it moved); the keys of those that have no packed form."""
        streams, seen, prefix = m.streams, m.seen, m.prefix
        cold_prefix = prefix + COLD_MARK
        unpacked = []
        for key in m.dirty:
            try:
                packed = streams[key].pack(seen[key])
            except Exception:  # (a time beyond int64 ms, say): the plain snapshot says what
                packed = None
            if packed is None:
                unpacked.append(key)
                continue
            hot, cold = packed
            out[prefix + key] = hot
            if cold is not None:
                out[cold_prefix + key] = cold
        return unpacked

    def _put(
        self,
        out: dict[str, bytes],
        m: _Compiled | _SilenceMonitor,
        key: str,
        state_key: str,
        snapshot: Callable[[], Any],
    ) -> None:
        """Encode one snapshot into ``out`` unless it would not restore (then hold it)."""
        try:
            raw, bad = encode_checked(snapshot())
        except Exception as exc:
            raw, bad = b"", f"(cannot encode: {type(exc).__name__}: {exc})"
        if bad is None:
            out[state_key] = raw
            return
        why = f"its state holds a non-finite number at {bad}: not saved"
        if key not in m.held:
            self.hold(m.spec.name, key, why)
            shown = "all its streams" if key == ALL_STREAMS else f"stream {key!r}"
            self.failures.append(
                ApplyFailure(m.spec.name, key, None, f"monitor {m.spec.name!r}, {shown}: {why}")
            )

    def forget_changes(self) -> None:
        """Drop every change mark, as :meth:`take_changed` and :meth:`take_deleted` do,
        without encoding anything: the processor calls it in the parent after forking a
        process that encodes and saves them (:mod:`riskstream.services.forked_save`).
        After a save that failed, the partition is claimed again, so nothing is lost."""
        for m in self._monitors:
            m.dirty.clear()
            m.rates_dirty.clear()
            m.trails_dirty.clear()
            if m.control is not None:
                m.control.dirty = False
        for sm in self._silences:
            sm.watch.dirty.clear()
        self._episodes.dirty.clear()
        self._limits_dirty = False
        self._saved_events = self._events
        self._held_dirty.clear()
        self._spec_dirty.clear()
        self._deleted.clear()

    def cold_tags(self, saved: Iterable[str]) -> list[tuple[str, str, int, Any]]:
        """For the cold parts among the state keys ``saved``: monitor, stream key, and
        the stream's :meth:`~StreamDetector.cold_tag` (for :meth:`cold_saved`)."""
        out = []
        for state_key in saved:
            if COLD_MARK not in state_key:
                continue
            name, _, key = parse_state_key(state_key)
            m = self._by_name.get(name)
            stream = None if m is None else m.streams.get(key)
            if isinstance(stream, StreamDetector):
                out.append((name, key, *stream.cold_tag()))
        return out

    def cold_saved(self, tags: Iterable[tuple[str, str, int, Any]]) -> None:
        """Cold parts a forked process saved (:meth:`cold_tags` there): the next
        :meth:`take_changed` here gives them again only where they moved since."""
        for name, key, born, tag in tags:
            m = self._by_name.get(name)
            stream = None if m is None else m.streams.get(key)
            if isinstance(stream, StreamDetector):
                stream.cold_saved(born, tag)

    def take_deleted(self) -> list[str]:
        """State keys to delete from the store at the next save (monitors restarted)."""
        out = sorted(self._deleted)
        self._deleted.clear()
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
            elif kind is StateKind.SPEC:
                self._spec_dirty.add(name)
            elif kind is StateKind.HELD:
                self._held_dirty.add(state_key)
            elif (sm := self._silence_by_name.get(name)) is not None:
                sm.watch.dirty.add(CLOCK_MARK if kind is StateKind.CLOCK else key)
            elif m is None:
                continue
            elif kind in (StateKind.STREAM, StateKind.COLD) and key in m.streams:
                m.dirty.add(key)
                stream = m.streams[key]
                if isinstance(stream, StreamDetector):
                    stream.forget_cold()
            elif kind is StateKind.GROUP_RATES:
                m.rates_dirty.add(key)
            elif kind is StateKind.USERS:
                m.trails_dirty.add(key)
            elif kind is StateKind.FDR and m.control is not None:
                m.control.dirty = True

    def mark_deleted(self, state_keys: Iterable[str]) -> None:
        """Delete these again at the next save (after a save that may not have landed)."""
        self._deleted.update(state_keys)

    # -- loading ------------------------------------------------------------------------

    def load(self, snapshots: Mapping[str, bytes], on_change: str = "restart") -> list[StateReset]:
        """Restore streams from a checkpoint; state of monitors no longer configured is ignored.

        A monitor whose definition changed since its state was saved (its fingerprint
        differs, or, for state saved before fingerprints, some of it does not restore)
        starts afresh on this partition and its old state is deleted at the next save —
        or, with ``on_change="refuse"``, a :class:`SnapshotError` says how to go on.
        One stream whose snapshot does not restore under an unchanged monitor starts
        afresh alone.  What was dropped is returned.
        """
        by_monitor: dict[str, dict[str, bytes]] = {}
        for state_key, raw in snapshots.items():
            if state_key == LIMITS_KEY:
                self._load_limits(orjson.loads(raw))
                continue
            name, kind, _ = parse_state_key(state_key)
            if kind is StateKind.EPISODE:
                self._episodes.load(state_key, orjson.loads(raw))
            elif name in self._specs:
                by_monitor.setdefault(name, {})[state_key] = raw
        resets: list[StateReset] = []
        for name, items in by_monitor.items():
            saved = items.get(name + STATE_KEY_SEPARATOR + SPEC_MARK)
            fingerprint = self._fingerprints[name]
            saved_fp = None if saved is None else str(orjson.loads(saved))
            rekeyed: list[str] = []
            if saved_fp is not None and saved_fp == self._legacy_fingerprints[name]:
                items, rekeyed, dropped = self._rekey(name, items)  # keys saved unescaped
                resets += dropped
                saved_fp = None
            changed = saved_fp is not None and saved_fp != fingerprint
            problems: list[tuple[str | None, str]] = []
            if not changed:
                problems = self._restore(name, items)
                # No fingerprint (saved by an older version): what does not restore means
                # the monitor changed.  Nor can part of a partition-wide state be dropped.
                changed = bool(problems) and (saved is None or any(k is None for k, _ in problems))
            if changed:
                why = (
                    f"its definition changed since its state was saved (fingerprint "
                    f"{saved_fp} -> {fingerprint})"
                    if saved_fp is not None and saved_fp != fingerprint
                    else f"its saved state does not restore under its definition: {problems[0][1]}"
                )
                if on_change == "refuse":
                    raise SnapshotError(
                        f"monitor {name!r}: {why}.  Set processor.on_monitor_change: restart "
                        f"to start its streams afresh, or run `riskstream state reset "
                        f"--monitor {name}` with the processors stopped"
                    )
                self._renew(name)
                self._deleted.update(items)
                resets.append(StateReset(name, None, why))
                continue
            if saved_fp == fingerprint:
                self._spec_dirty.discard(name)
            for stream_key, why in problems:  # an unchanged monitor: those streams only
                resets.append(StateReset(name, stream_key, why))
                if stream_key is not None:
                    self._deleted.update(k for k in items if parse_state_key(k).key == stream_key)
            self.mark_dirty(rekeyed)
        for m in self._monitors:  # saved before idle eviction: idle from now, by the clock
            for key, at in m.seen.items():
                if at == -math.inf:
                    m.seen[key] = self._clock.now
        return resets

    def _rekey(
        self, name: str, items: dict[str, bytes]
    ) -> tuple[dict[str, bytes], list[str], list[StateReset]]:
        """A monitor's state saved before stream keys were escaped (KEY_ENCODING 1),
        under escaped keys: the items, the state keys renamed (to save) and the
        streams dropped because their old key was ambiguous (a value held ``|``, so
        two streams may have shared it).  The old keys are deleted at the next save."""
        spec = self._specs[name]
        n_key, n_group = len(spec.key), len(spec.group)
        out: dict[str, bytes] = {}
        renamed: list[str] = []
        dropped: list[StateReset] = []
        for state_key, raw in items.items():
            _, kind, key = parse_state_key(state_key)
            if kind in (StateKind.SPEC, StateKind.FDR, StateKind.CLOCK, StateKind.EPISODE):
                out[state_key] = raw
                continue
            parts = n_key if kind is StateKind.GROUP_RATES or not n_group else n_key + n_group
            new = legacy_key(key, parts)
            if new is None and kind is StateKind.HELD and n_group:
                new = legacy_key(key, n_key)  # a hold of the rates (before the group)
            if new == key:
                out[state_key] = raw
                continue
            self._deleted.add(state_key)
            if new is None:
                why = f"its key {key!r} was saved before keys were escaped and is ambiguous"
                dropped.append(StateReset(name, key, why + ": that stream starts afresh"))
                continue
            new_state_key = state_key[: len(state_key) - len(key)] + new
            out[new_state_key] = raw
            renamed.append(new_state_key)
        return out, renamed, dropped

    def _renew(self, name: str) -> None:
        """Replace a monitor's state on this partition by a fresh one."""
        spec = self._specs[name]
        if spec.detector == MISSING:
            fresh_silence = _SilenceMonitor(spec)
            self._silences = [fresh_silence if s.spec.name == name else s for s in self._silences]
            self._silence_by_name[name] = fresh_silence
        else:
            fresh = _Compiled(spec)
            self._monitors = [fresh if m.spec.name == name else m for m in self._monitors]
            self._by_name[name] = fresh
        self._spec_dirty.add(name)

    def _restore(self, name: str, items: Mapping[str, bytes]) -> list[tuple[str | None, str]]:
        """Restore one monitor's state; the streams that failed, with why (named)."""
        problems: list[tuple[str | None, str]] = []
        silence = self._silence_by_name.get(name)
        m = self._by_name.get(name)
        silent: dict[str, Any] = {}
        colds = {parse_state_key(k).key: raw for k, raw in items.items() if COLD_MARK in k}
        for state_key, raw in items.items():
            _, kind, key = parse_state_key(state_key)
            snap: Any = None
            try:
                if kind is StateKind.SPEC or kind is StateKind.COLD:
                    continue
                if kind is StateKind.STREAM and raw[:1] == _PACKED_HEAD and m is not None:
                    stream, seen_at = StreamDetector.unpack(
                        raw, colds.get(key), m.spec.new_detector, m.spec.settings
                    )
                    m.streams[key] = stream
                    m.seen[key] = seen_at
                    continue
                if kind is StateKind.STREAM and raw[:1] == _LEARNED_HEAD and m is not None:
                    m.streams[key], m.seen[key] = m.spec.unpack_learned(raw)
                    continue
                snap = orjson.loads(raw)
                if kind is StateKind.HELD:
                    target = silence or m
                    assert target is not None
                    target.held[key] = [str(snap["why"]), int(snap["skipped"])]
                elif silence is not None:
                    silent[CLOCK_MARK if kind is StateKind.CLOCK else key] = snap
                elif m is None:
                    continue
                elif kind is StateKind.GROUP_RATES:
                    gap = m.spec.gap
                    m.rates[key] = GroupRates.restore(
                        snap, gap.half_life, gap.min_samples, gap.ratio_floor
                    )
                elif kind is StateKind.USERS:
                    m.trails[key] = RecentUsers.restore(snap)
                elif kind is StateKind.FDR:
                    if m.control is not None:
                        m.control.load(snap, m.decode)
                elif kind is StateKind.STREAM:
                    seen = snap.pop("seen", None)
                    m.streams[key] = m.spec.restore_stream(snap)
                    m.seen[key] = -math.inf if seen is None else float(seen)
            except Exception as exc:  # named, and handled by the caller
                problems.append((key or None, _restore_error(name, key, snap, exc)))
        if silence is not None and silent:
            try:
                silence.watch.load(silent)
            except Exception as exc:
                problems.append((None, _restore_error(name, "", silent, exc)))
        return problems

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


_CLAMP_BELOW = -MAX_MAGNITUDE


def _plan(monitors: Sequence[_Compiled]) -> list[tuple[_Compiled, bool, bool]]:
    """How :meth:`PartitionDetectors.observe` runs each monitor: ``(monitor, same,
    plain)``.  ``same``: it reads the value and key its predecessor read (drift and ADWIN
    on one sensor value, say), so it takes that read.  ``plain``: no groups, users or
    discovery control, so the short path serves it."""
    return [
        (
            m,
            i > 0 and _same_reads(monitors[i - 1].spec, m.spec),
            m.group_of is None and m.users_of is None and m.control is None,
        )
        for i, m in enumerate(monitors)
    ]


def _same_reads(a: MonitorSpec, b: MonitorSpec) -> bool:
    """Whether ``b`` reads the value and stream key ``a`` reads from every event (same
    value, key and filters, and no groups, whose keys depend on more than the event)."""
    return (
        a.value == b.value and a.key == b.key and a.where == b.where and not a.group and not b.group
    )


def _restore_error(monitor: str, key: str, snap: Any, exc: BaseException) -> str:
    """Why a snapshot did not restore, naming the monitor, the stream and the field."""
    where = f"monitor {monitor!r}, " + (f"stream {key!r}" if key else "its partition state")
    field = null_field(snap) if snap is not None else None
    if field is None and isinstance(exc, KeyError):
        field = str(exc.args[0]) if exc.args else None
        hint = f"field {field!r} is missing" if field else ""
    else:
        hint = f"field {field!r} is null (a non-finite number saved by an older version)"
        hint = hint if field else ""
    return f"{where}: {type(exc).__name__}: {exc}" + (f"; {hint}" if hint else "")


def saved_as_data(snapshots: Mapping[str, bytes]) -> dict[str, Any]:
    """A partition's saved state as plain data, by state key: JSON decoded, and each
    packed stream as its :meth:`StreamDetector.snapshot` with ``seen`` (its cold part
    folded in), as :meth:`PartitionDetectors.snapshot_all` gives them; for tools and tests."""
    out: dict[str, Any] = {}
    for state_key, raw in snapshots.items():
        if COLD_MARK in state_key:
            continue
        if raw[:1] == _PACKED_HEAD:
            monitor, _, key = state_key.partition(STATE_KEY_SEPARATOR)
            cold = snapshots.get(monitor + STATE_KEY_SEPARATOR + COLD_MARK + key)
            out[state_key] = packed_as_data(raw, cold)
        elif raw[:1] == _LEARNED_HEAD:
            out[state_key] = unpacked_as_data(raw)
        else:
            out[state_key] = orjson.loads(raw)
    return out
