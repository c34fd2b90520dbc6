"""Missing data: a stream that stops is reported once per silence, in data time."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_containment
from riskstream.config import load_config
from riskstream.core.monitors import PartitionDetectors
from riskstream.core.silence import (
    _LEARN_MAX,
    _NO_TIME,
    LEARN_GAPS,
    SilenceParams,
    SilenceWatch,
    Silent,
    _Stream,
)
from riskstream.core.timeutil import format_time, parse_time
from support import embedded_run, make_setup


def _events(seed: int, stops: dict[str, tuple[int, int]]) -> list[dict[str, object]]:
    """Three sensors reporting every 10 s; ``stops[s] = (from, to)`` silences s in between."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for step in range(400):
        for s in ("a", "b", "c"):
            start, end = stops.get(s, (-1, -1))
            if start <= step < end:
                continue
            out.append(
                {
                    "event_id": f"{s}{step}",
                    "time": format_time(1.8e9 + 10 * step + rng.random()),
                    "sensor_id": s,
                    "value": rng.gauss(0, 1),
                }
            )
    return out


def _missing_only() -> PartitionDetectors:
    specs = [m for m in load_config(None).monitors if m.detector == "missing"]
    assert specs, "the default config watches for missing sensors"
    return PartitionDetectors(specs, "sensor")


def test_each_silence_is_reported_once_with_its_last_event_as_onset() -> None:
    detectors = _missing_only()
    findings = [
        f for e in _events(1, {"b": (100, 150), "c": (300, 400)}) for f in detectors.observe(e)
    ]
    got = [(f.subject, f.alarm.onset_at) for f in findings]
    assert [s for s, _ in got] == ["b", "c"]
    b = findings[0]
    assert 60 <= b.alarm.detected_at - b.alarm.onset_at < 100  # 8 of its 10-s gaps
    assert parse_time(format_time(b.alarm.onset_at)) == pytest.approx(1.8e9 + 990, abs=1)


@pytest.mark.parametrize("cut", [50, 130, 333, 700])
def test_restored_silence_state_reports_exactly_what_an_unbroken_one_does(cut: int) -> None:
    events = _events(2, {"a": (40, 90), "b": (120, 125), "c": (200, 260)})
    straight, resumed = _missing_only(), _missing_only()
    a = [f.finding_id for e in events for f in straight.observe(e)]
    b = [f.finding_id for e in events[:cut] for f in resumed.observe(e)]
    saved = resumed.take_changed()
    resumed = _missing_only()
    resumed.load(saved)
    b += [f.finding_id for e in events[cut:] for f in resumed.observe(e)]
    assert a == b and len(a) == 2
    assert resumed.snapshot_all() == straight.snapshot_all()


def _sensor(sensor: str, t: float) -> dict[str, object]:
    return {"event_id": f"{sensor}@{t}", "time": format_time(t), "sensor_id": sensor, "value": 1.0}


def test_a_subject_is_the_field_it_came_from_even_with_a_bar_in_it() -> None:
    detectors = _missing_only()
    events = [_sensor(s, 1.8e9 + 10 * i) for i in range(100) for s in ("support-bot|x", "y")]
    events += [_sensor("y", 1.8e9 + 10 * i) for i in range(100, 200)]
    findings = [f for e in events for f in detectors.observe(e)]
    # the key escapes the bar (fields.key_part), the subject is the value as it came
    assert [(f.subject, f.stream_key) for f in findings] == [("support-bot|x", r"support-bot\|x")]


def test_a_reading_dated_in_the_future_does_not_make_the_others_missing() -> None:
    detectors = _missing_only()
    events = [_sensor(f"s{k}", 1.8e9 + 10 * i + k) for i in range(200) for k in range(20)]
    events.insert(2000, _sensor("new", 4.1e9))  # 2099
    assert [f for e in events for f in detectors.observe(e)] == []


def test_each_sensor_is_judged_by_its_own_cadence_and_arrival() -> None:
    """Hourly sensors, 10-s sensors, and a gateway that delivers its sensor's readings
    in batches every 15 minutes share a partition: none of them is missing."""
    t0, events = 1.8e9, []
    for i in range(24 * 360):  # a day of 10-s steps
        t = t0 + 10 * i
        events.append(_sensor("fast", t))
        if i % 360 == 0:
            events.append(_sensor("hourly", t + 3))
        if i % 90 == 89:  # the gateway: the last 15 minutes of readings at once
            events += [_sensor("batched", t - 10 * j) for j in range(89, -1, -1)]
    detectors = _missing_only()
    assert [f.subject for e in events for f in detectors.observe(e)] == []
    # ...and each is found when it stops: the hourly one after several hours, not minutes.
    late = [_sensor("fast", t0 + 10 * i) for i in range(24 * 360, 36 * 360)]
    found = {f.subject: f.alarm for e in late for f in detectors.observe(e)}
    assert set(found) == {"hourly", "batched"}
    hourly = found["hourly"]
    assert 4 * 3600 <= hourly.detected_at - hourly.onset_at <= 10 * 3600


def test_a_pause_of_the_whole_partition_is_nobodys_silence() -> None:
    """Every sensor stops for ten minutes (an outage upstream, a gap in a replayed
    file) and then all resume: none of them is missing; one that does not resume is."""
    t0, detectors = 1.8e9, _missing_only()
    sensors = [f"s{k}" for k in range(8)]
    before = [_sensor(s, t0 + i) for i in range(600) for s in sensors]
    after = [_sensor(s, t0 + 1200 + i) for i in range(600) for s in sensors[:-1]]
    found = [f.subject for e in before + after for f in detectors.observe(e)]
    assert found == ["s7"]


MISSING_ONLY = """\
monitors:
  - name: sensor-missing
    reads: sensor
    key: sensor_id
    detector: {kind: missing, min_gaps: 8}
    severity: warning
    incident_type: sensor-missing
"""
PLAYBOOKS = """\
playbooks:
  - name: chatbot
    match: {subject: support-bot}
    actions: [{kind: block}]
  - name: silent-sensor
    match: {type: sensor-missing}
    actions: [{kind: human-review}]
"""


def test_a_silent_sensor_named_like_a_model_opens_its_incident_on_the_sensor(
    tmp_path: Path,
) -> None:
    """Issue 12, item 5: through the processor and containment, not just the detector.

    A sensor ``support-bot|x`` goes silent; the incident's subject is that sensor, and
    containment touches its flag, never the model ``support-bot``'s.
    """
    setup = make_setup(tmp_path, "bar", monitors_yaml=MISSING_ONLY, extra_yaml=PLAYBOOKS)
    rng = random.Random(5)
    records = []
    for step in range(200):
        for sensor in ("support-bot|x", "y") if step < 100 else ("y",):
            reading = {
                "event_id": f"{sensor}-{step}", "time": format_time(1.75e9 + 10 * step),
                "line_id": "line-1", "asset_id": "a-1", "sensor_id": sensor,
                "value": rng.gauss(20, 1), "unit": "C", "quality": "good",
            }  # fmt: skip
            records.append((sensor.encode(), orjson.dumps(reading)))
    incidents, _, _ = embedded_run(setup, {setup.topics["sensor"]: records})
    assert [(i["subject"], i["stream_key"], i["monitor"]) for i in incidents] == [
        ("support-bot|x", r"support-bot\|x", "sensor-missing")
    ]
    containment = embedded_containment(setup.config, InMemoryBus())
    for found in incidents:
        containment.on_incident(found)
    flags = containment.flags()
    assert flags["support-bot|x"].mode == "human-review"
    assert "support-bot" not in flags


class _EveryReading(SilenceWatch):
    """The watch as it was before its heap kept one live deadline per stream: an entry
    per reading, each checked when the clock passes it.  The reference for the test
    below."""

    __slots__ = ()

    def see(self, key: str, subject: str, t: float, cap: float = math.inf) -> bool:
        streams = self._streams
        s = streams.get(key)
        if s is None and len(streams) >= cap:
            return False
        self._tick(t)
        busy = self._busy
        if s is None:
            s = streams[key] = _Stream(subject)
        elif s.arrived > _NO_TIME and not s.silent and busy > s.arrived:
            gap = busy - s.arrived
            s.gaps = gaps = s.gaps + 1
            w = 1.0 / min(gaps, _LEARN_MAX)
            s.mean = mean = s.mean + (gap - s.mean) * w
            s.mad += (abs(gap - mean) - s.mad) * w
        s.silent = False
        s.subject = subject
        s.count += 1
        s.arrived = busy
        if t > s.last_seen:
            s.last_seen = t
        if s.gaps >= LEARN_GAPS:
            heap = self._heap
            heapq.heappush(heap, (busy + self._allowed(s), key))
            if len(heap) > 4 * len(streams) + 64:
                self._rebuild()
        self.dirty.add(key)
        return True

    def _rebuild(self) -> None:
        self._heap = sorted(
            (s.arrived + self._allowed(s), k)
            for k, s in self._streams.items()
            if s.gaps >= LEARN_GAPS and not s.silent
        )

    def silent(self) -> Iterator[Silent]:
        heap, streams, clock = self._heap, self._streams, self._busy
        while heap and heap[0][0] < clock:
            deadline, key = heapq.heappop(heap)
            s = streams.get(key)
            if s is None:
                continue
            allowed = self._allowed(s)
            if s.silent or s.arrived + allowed != deadline:
                continue
            s.silent = True
            self.dirty.add(key)
            yield Silent(key, s.last_seen, self._clock, s.count, s.subject, allowed)


def _restored(watch: SilenceWatch, cls: type[SilenceWatch], params: SilenceParams) -> SilenceWatch:
    again = cls(params)
    keys = [SilenceWatch.CLOCK_KEY, *watch.streams()]
    again.load({k: orjson.loads(orjson.dumps(watch.snapshot(k))) for k in keys})
    return again


@pytest.mark.parametrize("seed", range(30))
def test_the_live_deadline_heap_finds_what_an_entry_per_reading_found(seed: int) -> None:
    """Randomized: streams of mixed cadences (regular, bursty, batched by a gateway),
    that stop for a while or for good and come back, new ones, a cap, evictions,
    readings out of order, partition pauses and restarts from snapshots: the same
    silences, in the same order, at the same events, and the same snapshots."""
    rng = random.Random(seed)
    params = SilenceParams(
        min_gaps=rng.choice([2.0, 5.0, 8.0]), after=rng.choice([0.0, 0.0, 30.0]),
        false_alarm_every=rng.choice([100.0, 1e6]),
    )  # fmt: skip
    old, new = _EveryReading(params), SilenceWatch(params)
    n_streams = rng.randint(3, 30)
    cadence = {f"s{i}": rng.choice([1.0, 5.0, 10.0, 60.0]) for i in range(n_streams)}
    bursty = {k for k in cadence if rng.random() < 0.3}
    off: dict[str, int] = {}
    cap = rng.choice([math.inf, math.inf, n_streams - 2])
    t, found = 1.8e9, 0
    for step in range(rng.randint(3000, 8000)):
        t += rng.expovariate(1.0) * rng.choice([0.2, 1.0, 1.0, 3.0])
        if rng.random() < 0.0005:
            t += 5000.0  # the whole partition pauses
        key = rng.choice(list(cadence))
        if key in off:
            if step < off[key]:
                continue
            del off[key]
        elif rng.random() < 0.002:
            off[key] = step + rng.choice([200, 2000, 10**9])
            continue
        if rng.random() > 1.0 / cadence[key] and key not in bursty:
            continue
        if rng.random() < 0.003:
            cadence[f"n{step}"] = rng.choice([1.0, 10.0])  # a new stream joins
            if rng.random() < 0.5:
                bursty.add(f"n{step}")
        repeat = rng.randint(1, 6) if key in bursty else 1
        for _ in range(repeat):
            seen_at = t + rng.uniform(-5.0, 5.0)  # out of order, now and then in the future
            assert old.see(key, key, seen_at, cap) == new.see(key, key, seen_at, cap)
            t += rng.choice([0.0, 0.001])
        if repeat > 1 and rng.random() < 0.2:  # a burst shrank its gap, then it stops:
            off[key] = step + rng.choice([300, 10**9])  # due earlier than it was before
        got_old, got_new = list(old.silent()), list(new.silent())
        assert got_new == got_old
        found += len(got_old)
        if rng.random() < 0.002:
            before = t - rng.choice([100.0, 1000.0])
            assert old.evict(before) == new.evict(before)
        if rng.random() < 0.003:
            old, new = _restored(old, _EveryReading, params), _restored(new, SilenceWatch, params)
        if rng.random() < 0.01:
            keys = [SilenceWatch.CLOCK_KEY, *old.streams()]
            assert new.streams() == old.streams()
            assert [new.snapshot(k) for k in keys] == [old.snapshot(k) for k in keys]
            assert new.dirty == old.dirty
            old.dirty.clear()
            new.dirty.clear()
    beat = old.streams()[0]
    for _ in range(5000):  # the others stop: every one watched falls silent, in order
        t += rng.choice([1.0] * 30 + [40.0])  # (a jump makes several due at one event)
        assert old.see(beat, beat, t, cap) == new.see(beat, beat, t, cap)
        got_old, got_new = list(old.silent()), list(new.silent())
        assert got_new == got_old
        found += len(got_old)
    assert found > 0, "some stream must fall silent"
