"""One event can stop nothing: bad times, huge values, exceptions, changed monitors,
redeliveries and dates in 2099, on the in-memory bus and store (issue 12, 1-4, 6, 7)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import embedded_processor
from riskstream.config import Config, load_config
from riskstream.core.learned import LearnedStream
from riskstream.core.monitors import PartitionDetectors, saved_as_data
from riskstream.core.timeutil import format_time, parse_time
from riskstream.errors import SnapshotError
from riskstream.services.detection import Processor
from riskstream.services.state_admin import held_streams, reset_state

TOPIC = "sensor-events"
SCOPE = "riskstream-processor"
NOW = 1.8e9  # the wall clock in these tests: events are dated just before it


def _reading(
    i: int, sensor: str = "s1", value: float | None = None, **extra: Any
) -> dict[str, Any]:
    rng = random.Random(i * 7919 + hash(sensor) % 1000)
    return {
        "event_id": f"{sensor}/{i}",
        "time": format_time(NOW - 10_000 + i),
        "sensor_id": sensor,
        "value": rng.gauss(20.0, 1.0) if value is None else value,
        **extra,
    }


def _produce(bus: InMemoryBus, events: list[dict[str, Any]], raw: bool = False) -> None:
    producer = bus.producer()
    for e in events:
        producer.produce(TOPIC, orjson.dumps(e), str(e.get("sensor_id", "k")).encode())


def _run(
    bus: InMemoryBus,
    store: InMemoryStateStore,
    config: Config | None = None,
    registry: CollectorRegistry | None = None,
) -> Processor:
    processor = embedded_processor(
        config or load_config(None),
        bus,
        store,
        registry=registry or CollectorRegistry(),
        wall_clock=lambda: NOW,
    )
    processor.start()
    while processor.step(0):
        pass
    processor.checkpoint()
    return processor


def _reasons(bus: InMemoryBus) -> list[bytes]:
    return [dict(r.headers)["riskstream_reason"] for r in bus.records("dead-letter")]


# -- 1. times the calendar cannot hold, or far from the wall clock ------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0000-01-01T00:00:00Z", b"time_out_of_range"),
        ("9999-12-31T23:59:59-23:59", b"time_ahead"),
        ("0001-01-01T00:00:00+23:59", b"time_out_of_range"),
    ],
)
def test_absurd_times_are_dead_lettered_and_the_partition_carries_on(
    text: str, reason: bytes
) -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    events = [_reading(i) for i in range(400)]
    events.insert(200, {**_reading(10_000, "s2"), "time": text})
    _produce(bus, events)
    processor = _run(bus, store)
    processor.close()
    assert _reasons(bus) == [reason]
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {"applied": 400, "dead_lettered": 1}
    (letter,) = bus.records("dead-letter")
    assert text.encode() in dict(letter.headers)["riskstream_error"]


def test_formatting_a_stored_time_never_raises() -> None:
    for text in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
        assert format_time(parse_time(text))[:4] in ("9999", "0001")
    assert format_time(float("inf")) == "9999-12-31T23:59:59.000Z"
    assert format_time(float("-inf")) == format_time(float("nan")) == "0001-01-01T00:00:00.000Z"


def test_time_limits_are_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nprocessor: {max_time_age_days: 1, max_time_ahead_s: 5}\n")
    config = load_config(path)
    bus, store = InMemoryBus(), InMemoryStateStore()
    _produce(
        bus,
        [
            {**_reading(1), "time": format_time(NOW - 2 * 86_400)},  # too old
            {**_reading(2), "time": format_time(NOW + 60)},  # too far ahead
            {**_reading(3), "time": format_time(NOW + 4)},  # within 5 s
        ],
    )
    _run(bus, store, config).close()
    assert _reasons(bus) == [b"time_out_of_range", b"time_ahead"]
    with pytest.raises(Exception, match="max_time_ahead_s must be a number above 0"):
        path.write_text("version: 1\nprocessor: {max_time_ahead_s: 0}\n")
        load_config(path)


# -- 2. values that would overflow, and state that would not restore ----------------------


def test_huge_values_are_clamped_counted_and_the_state_restores() -> None:
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    events = [_reading(i) for i in range(600)]
    events[400] = _reading(400, value=1e308)
    events[401] = _reading(401, value=1e308)
    _produce(bus, events)
    _run(bus, store, registry=registry).close()
    clamped = registry.get_sample_value(
        "riskstream_values_clamped_total", {"monitor": "sensor-value-drift"}
    )
    assert clamped == 2
    saved = store.peek(SCOPE, (TOPIC, 0))
    assert saved.counters == {"applied": 600, "dead_lettered": 0}
    # every snapshot restores: a new owner resumes without a reset or a held stream
    registry = CollectorRegistry()
    _produce(bus, [_reading(i) for i in range(600, 700)])
    _run(bus, store, registry=registry).close()
    assert registry.get_sample_value("riskstream_state_resets_total", {}) is None
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {"applied": 700, "dead_lettered": 0}
    assert held_streams(store, SCOPE) == []


def test_monitors_that_share_a_read_each_count_the_clamped_values() -> None:
    """The default's sensor monitors read the same value and key in pairs (drift and
    noise, out-of-range and stuck): the second takes the first one's read, and still
    counts a clamped value as its own."""
    from riskstream.core.monitors import PartitionDetectors

    shared = [same for _, same, _ in PartitionDetectors(load_config(None).monitors, "sensor")._plan]
    assert shared == [False, True, False, True]
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    events = [_reading(i) for i in range(600)]
    events[400] = _reading(400, value=1e308)
    events[401] = _reading(401, value=-1e308)
    _produce(bus, events)
    _run(bus, store, registry=registry).close()
    for monitor in ("sensor-value-drift", "sensor-noise", "sensor-out-of-range", "sensor-stuck"):
        clamped = registry.get_sample_value("riskstream_values_clamped_total", {"monitor": monitor})
        assert clamped == 2, monitor


def test_a_snapshot_that_would_not_restore_is_not_saved_and_its_stream_is_held() -> None:
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    _produce(bus, [_reading(i) for i in range(50)])
    processor = _run(bus, store, registry=registry)
    key = "sensor-value-drift\x1fs1"
    good = store.peek(SCOPE, (TOPIC, 0)).snapshots[key]
    stream = processor._owned[(TOPIC, 0)].detectors._by_name["sensor-value-drift"].streams["s1"]
    assert isinstance(stream, LearnedStream)
    stream._e = float("inf")  # what two readings of 1e308 once did
    _produce(bus, [_reading(50)])
    while processor.step(0):
        pass
    processor.checkpoint()
    saved = store.peek(SCOPE, (TOPIC, 0))
    assert saved.snapshots[key] == good  # the last good state stays
    assert saved.offset == 51
    ((_, monitor, stream_key, why),) = held_streams(store, SCOPE)
    assert (monitor, stream_key) == ("sensor-value-drift", "s1")
    assert b"non-finite number at e" in why
    assert (
        registry.get_sample_value(
            "riskstream_stream_holds_total", {"monitor": "sensor-value-drift"}
        )
        == 1
    )
    processor.close()


def test_a_snapshot_saved_with_a_null_names_the_stream_and_field_and_restarts_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    _produce(bus, [_reading(i) for i in range(400)])
    _run(bus, store).close()
    saved = store.claim(SCOPE, (TOPIC, 0))
    key = "sensor-value-drift\x1fs1"
    snap = saved_as_data({key: saved.snapshots[key]})[key]  # (saved packed now)
    snap["base"][2] = None  # as orjson wrote an infinity before this version
    store.save(SCOPE, (TOPIC, 0), saved.epoch, saved.offset or 0, saved.counters,
               {key: orjson.dumps(snap)})  # fmt: skip
    registry = CollectorRegistry()
    _produce(bus, [_reading(i) for i in range(400, 450)])
    with caplog.at_level("WARNING"):
        _run(bus, store, registry=registry).close()
    assert "monitor 'sensor-value-drift', stream 's1'" in caplog.text
    assert "field 'base[2]' is null" in caplog.text
    assert (
        registry.get_sample_value(
            "riskstream_state_resets_total", {"monitor": "sensor-value-drift", "scope": "stream"}
        )
        == 1
    )
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {"applied": 450, "dead_lettered": 0}


# -- 3. the poison-pill rule --------------------------------------------------------------


def test_an_exception_while_applying_holds_that_stream_only_and_dead_letters_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    update = LearnedStream.update

    def explode(self: LearnedStream, x: float, t: float) -> Any:
        if x == 666.0:
            raise ZeroDivisionError("float division by zero")
        return update(self, x, t)

    monkeypatch.setattr(LearnedStream, "update", explode)
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    events = [e for i in range(300) for e in (_reading(i, "s1"), _reading(i, "s2"))]
    events.insert(100, _reading(1000, "s2", value=666.0))  # the poison pill
    _produce(bus, events)
    processor = _run(bus, store, registry=registry)
    (letter,) = bus.records("dead-letter")
    headers = dict(letter.headers)
    assert headers["riskstream_reason"] == b"apply_error"
    assert b"ZeroDivisionError: float division by zero" in headers["riskstream_error"]
    assert b"stream 's2'" in headers["riskstream_error"]
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {"applied": 600, "dead_lettered": 1}
    held = {(m, k) for _, m, k, _ in held_streams(store, SCOPE)}
    sensors = [m for m in load_config(None).monitors if m.reads == "sensor"]
    assert held == {(m.name, "s2") for m in sensors if m.detector != "missing"}
    skipped = registry.get_sample_value(
        "riskstream_held_events_total", {"monitor": "sensor-value-drift"}
    )
    assert skipped == 250  # s2's 250 later events; s1 carried on
    state = processor.state()[(TOPIC, 0)]
    assert state["sensor-value-drift\x1fs1"]["n"] == 300
    processor.close()
    # held across a restart, until reset
    _produce(bus, [_reading(i, "s2") for i in range(300, 310)])
    registry = CollectorRegistry()
    _run(bus, store, registry=registry).close()
    assert (
        registry.get_sample_value("riskstream_held_events_total", {"monitor": "sensor-value-drift"})
        == 10
    )
    results = reset_state(store, SCOPE, "sensor-value-drift", "s2")
    assert [r.deleted for r in results] == [2]  # the stream's state and its hold
    assert ("sensor-value-drift", "s2") not in {(m, k) for _, m, k, _ in held_streams(store, SCOPE)}


# -- 4. config changes ----------------------------------------------------------------------

SEASONAL = """
version: 1
monitors:
  - name: temp
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: shift}
    warmup: 40
    seasonality: {period_s: 600, bins: 4, warmup: 5}
"""


def _config(tmp_path: Path, text: str, name: str = "c.yaml") -> Config:
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(
    "changed",
    [
        SEASONAL.replace("    seasonality: {period_s: 600, bins: 4, warmup: 5}\n", ""),
        SEASONAL.replace("detector: {kind: shift}", "detector: {kind: missing}").replace(
            "    value: value\n", ""
        ),
    ],
    ids=["seasonality-removed", "became-missing"],
)
def test_a_changed_monitor_restarts_its_streams_or_refuses(tmp_path: Path, changed: str) -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    _produce(bus, [_reading(i) for i in range(200)])
    _run(bus, store, _config(tmp_path, SEASONAL)).close()

    refusing = _config(tmp_path, changed + "processor: {on_monitor_change: refuse}\n", "r.yaml")
    with pytest.raises(SnapshotError, match="riskstream state reset --monitor temp"):
        _run(bus, store, refusing)

    registry = CollectorRegistry()
    _produce(bus, [_reading(i) for i in range(200, 300)])
    _run(bus, store, _config(tmp_path, changed), registry=registry).close()
    assert (
        registry.get_sample_value(
            "riskstream_state_resets_total", {"monitor": "temp", "scope": "monitor"}
        )
        == 1
    )
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {"applied": 300, "dead_lettered": 0}
    # and back again: changed once more, restarted once more, never a crash
    registry = CollectorRegistry()
    _run(bus, store, _config(tmp_path, SEASONAL), registry=registry).close()
    assert (
        registry.get_sample_value(
            "riskstream_state_resets_total", {"monitor": "temp", "scope": "monitor"}
        )
        == 1
    )


def test_state_saved_before_fingerprints_that_does_not_restore_counts_as_changed(
    tmp_path: Path,
) -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    _produce(bus, [_reading(i) for i in range(100)])
    _run(bus, store, _config(tmp_path, SEASONAL)).close()
    saved = store.claim(SCOPE, (TOPIC, 0))
    spec_key = "temp\x1f\x18"
    store.save(SCOPE, (TOPIC, 0), saved.epoch, saved.offset or 0, saved.counters, {}, [spec_key])
    detectors = PartitionDetectors(
        _config(tmp_path, SEASONAL.replace("bins: 4", "bins: 6")).monitors, "sensor"
    )
    (reset,) = detectors.load(store.peek(SCOPE, (TOPIC, 0)).snapshots)
    assert reset.stream_key is None and "6 bins" in reset.reason


def test_a_threshold_change_keeps_the_learned_state(tmp_path: Path) -> None:
    tuned = SEASONAL.replace("{kind: shift}", "{kind: shift, false_alarm_every: 5000}")
    a, b = _config(tmp_path, SEASONAL).monitors[0], _config(tmp_path, tuned, "t.yaml").monitors[0]
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != replace(a, key=("line_id",)).fingerprint()


# -- 6. a reading dated 2099 -----------------------------------------------------------------


def test_a_change_dated_2099_is_dead_lettered_and_cannot_clear_the_change_log() -> None:
    log = InMemoryChangeLog(retention_s=3600.0, clock=lambda: NOW)
    log.add({"event_id": "d1", "time": format_time(NOW - 60), "subject": "m"})
    log.add({"event_id": "far", "time": "2099-01-01T00:00:00Z", "subject": "m"})
    assert [c["event_id"] for c in log.between(["m"], NOW - 600, NOW)] == ["d1"]


def test_a_new_sensor_dated_2099_makes_no_other_sensor_missing() -> None:
    specs = [m for m in load_config(None).monitors if m.detector == "missing"]
    detectors = PartitionDetectors(specs, "sensor")
    findings = []
    for step in range(300):
        for s in range(19):
            e = {"event_id": f"{s}/{step}", "time": format_time(NOW + 10 * step + s * 0.01),
                 "sensor_id": f"s{s}", "value": 1.0}  # fmt: skip
            findings += detectors.observe(e)
        if step == 150:
            findings += detectors.observe(
                {"event_id": "x", "time": "2099-01-01T00:00:00Z", "sensor_id": "new", "value": 1.0}
            )
    assert findings == []
    # ...and one that really stops is still found
    for step in range(300, 400):
        for s in range(18):
            e = {"event_id": f"{s}/{step}", "time": format_time(NOW + 10 * step + s * 0.01),
                 "sensor_id": f"s{s}", "value": 1.0}  # fmt: skip
            findings += detectors.observe(e)
    assert [f.subject for f in findings] == ["s18"]


# -- 7. redeliveries -------------------------------------------------------------------------


def test_redelivered_events_are_dropped_once_seen_even_across_a_restart() -> None:
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    events = [_reading(i) for i in range(400)]
    _produce(bus, events + [events[399]] * 60)  # one reading, redelivered 60 times
    _run(bus, store, registry=registry).close()
    counters = store.peek(SCOPE, (TOPIC, 0)).counters
    assert counters == {"applied": 400, "dead_lettered": 0, "duplicates": 60}
    assert registry.get_sample_value("riskstream_events_duplicate_total", {"topic": TOPIC}) == 60
    _produce(bus, [events[10], _reading(400)])  # after a restart: still remembered
    _run(bus, store).close()
    counters = store.peek(SCOPE, (TOPIC, 0)).counters
    assert counters == {"applied": 401, "dead_lettered": 0, "duplicates": 61}


def test_the_window_is_bounded_and_old_chunks_are_deleted(tmp_path: Path) -> None:
    config = _config(tmp_path, "version: 1\nprocessor: {dedup_window: 100}\n")
    bus, store = InMemoryBus(), InMemoryStateStore()
    processor = embedded_processor(config, bus, store, wall_clock=lambda: NOW)
    processor.start()
    for chunk in range(10):
        _produce(bus, [_reading(chunk * 50 + i) for i in range(50)])
        while processor.step(0):
            pass
        processor.checkpoint()
    processor.close()
    chunks = [k for k in store.peek(SCOPE, (TOPIC, 0)).snapshots if k.startswith("\x1aevent-ids")]
    assert len(chunks) == 2  # the last 100 ids, one chunk per checkpoint


def test_events_of_groups_past_the_cap_are_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A group field with a new value per event (an id where a segment was meant) stops
    growing a stream at MAX_GROUPS groups; what it leaves out is counted and said once."""
    from riskstream.core.groups import MAX_GROUPS

    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\nmonitors:\n"
        "  - {name: hot-assets, reads: sensor, key: [line_id, sensor_id], subject: sensor_id,\n"
        "     group: asset_id, value: {path: value, above: 25},\n"
        "     detector: {kind: page-hinkley}, warmup: 50}\n"
    )
    extra = 1_150  # two batches past the cap: said once, counted in both
    events = [
        _reading(i, line_id="line-1", asset_id=f"asset-{i}") for i in range(MAX_GROUPS + extra)
    ]
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    _produce(bus, events)
    with caplog.at_level("WARNING", logger="riskstream.services.detection"):
        _run(bus, store, load_config(path), registry).close()
    untracked = registry.get_sample_value(
        "riskstream_group_events_untracked_total", {"monitor": "hot-assets"}
    )
    assert untracked == extra
    told = [r.getMessage() for r in caplog.records if "groups; events of further" in r.getMessage()]
    assert len(told) == 1 and told[0].startswith(f"hot-assets: a stream has seen {MAX_GROUPS}")
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {
        "applied": MAX_GROUPS + extra,
        "dead_lettered": 0,
    }
