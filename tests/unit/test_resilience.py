"""Stream limits, a processor whose state store fails, and the worker's flag guard —
on the in-memory bus and stores (the chaos tests run them on Kafka and Redis)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import embedded_processor
from riskstream.config import load_config
from riskstream.core.limits import StreamLimits
from riskstream.core.monitors import MonitorSpec, PartitionDetectors
from riskstream.core.routing import RoutingFlag
from riskstream.core.specs import StreamSettings, ValueSpec
from riskstream.core.state_keys import LIMITS_KEY
from riskstream.core.timeutil import format_time
from riskstream.errors import StateStoreError
from riskstream.ports import PartitionState, TopicPartition
from riskstream.services.flag_epoch import FlagGuard

T0 = 1.8e9


def _spec(name: str) -> MonitorSpec:
    return MonitorSpec(
        name=name, reads="sensor", value=ValueSpec("value"), key=("sensor_id",),
        subject="sensor_id", detector="threshold", params={"upper": 1000.0},
        settings=StreamSettings(warmup=0, scale=False),
    )  # fmt: skip


def _reading(sensor: str, t: float, value: float = 1.0) -> dict[str, Any]:
    return {"event_id": f"{sensor}/{t}", "time": format_time(t), "sensor_id": sensor,
            "value": value}  # fmt: skip


def _events() -> list[dict[str, Any]]:
    """5 steady sensors each second for 2000 s; 100 one-reading sensors at 300 s."""
    out = []
    for t in range(2000):
        out += [_reading(f"s{i}", T0 + t, float(i + t % 3)) for i in range(5)]
        if t == 300:
            out += [_reading(f"flood-{i}", T0 + t) for i in range(100)]
    return out


def test_new_keys_past_the_cap_are_dropped_counted_and_reported_once() -> None:
    detectors = PartitionDetectors([_spec("a"), _spec("b")], "sensor", StreamLimits(20, 600))
    findings = [f for e in _events() for f in detectors.observe(e)]
    limits = [f for f in findings if f.monitor.incident_type == "stream-limit"]
    assert sorted(f.monitor.name for f in limits) == ["a", "b"]  # one per monitor
    assert limits[0].limit is not None and limits[0].limit["max_streams"] == 20
    assert limits[0].stream_key == "flood-15"  # the first key past the cap
    assert detectors.take_limit_counts() == {"a": (85, 15), "b": (85, 15)}
    snapshot = detectors.snapshot_all()
    assert snapshot[LIMITS_KEY]["monitors"] == {"a": [85, 15, 0], "b": [85, 15, 0]}
    assert not [k for k in snapshot if "flood" in k]  # idle 600 s of data time: evicted
    assert detectors.stream_count == 10


def test_eviction_is_the_same_however_often_the_partition_restarts() -> None:
    specs, limits = [_spec("a")], StreamLimits(20, 600)
    events = _events()
    straight = PartitionDetectors(specs, "sensor", limits)
    for e in events:
        straight.observe(e)
    restarted = PartitionDetectors(specs, "sensor", limits)
    saved: dict[str, bytes] = {}
    for i, e in enumerate(events):
        restarted.observe(e)
        if i % 1777 == 0:  # a checkpoint, then a new process restores it
            changed = restarted.take_changed()
            for key in restarted.take_deleted():
                saved.pop(key, None)
            saved.update(changed)
            restarted = PartitionDetectors(specs, "sensor", limits)
            restarted.load(saved)
    assert restarted.snapshot_all() == straight.snapshot_all()


def test_one_reading_dated_years_ahead_evicts_nothing() -> None:
    detectors = PartitionDetectors([_spec("a")], "sensor", StreamLimits(100, 600))
    for t in range(200):
        for i in range(5):
            detectors.observe(_reading(f"s{i}", T0 + t))
    detectors.observe(_reading("s0", T0 + 10 * 365 * 86_400))
    for t in range(200, 400):
        for i in range(5):
            detectors.observe(_reading(f"s{i}", T0 + t))
    assert detectors.stream_count == 5 and detectors.take_limit_counts() == {}


class _FlakyStore(InMemoryStateStore):
    """Fails every call while ``down``."""

    down = False

    def claim(self, scope: str, partition: TopicPartition) -> PartitionState:
        self._check()
        return super().claim(scope, partition)

    def save(
        self, scope: str, partition: TopicPartition, epoch: int, offset: int,
        counters: Mapping[str, int], changed: Mapping[str, bytes], deleted: Iterable[str] = (),
    ) -> None:  # fmt: skip
        self._check()
        super().save(scope, partition, epoch, offset, counters, changed, deleted)

    def _check(self) -> None:
        if self.down:
            raise StateStoreError("Redis state store could not save: ConnectionError (test)")


def test_a_processor_whose_store_fails_holds_retries_and_ends_as_an_unbroken_run() -> None:
    def fill(bus: InMemoryBus) -> None:
        producer, rng = bus.producer(), random.Random(3)
        for i in range(4000):
            event = _reading("s1", T0 + i, rng.gauss(5.0 if i > 2500 else 0.0, 1.0))
            producer.produce("sensor-events", orjson.dumps(event), b"s1")

    straight_bus, straight_store = InMemoryBus(), InMemoryStateStore()
    fill(straight_bus)
    ideal: list[dict[str, object]] = []
    reference = embedded_processor(
        load_config(None), straight_bus, straight_store, None, ideal.append
    )
    reference.start()
    while reference.step(0):
        pass
    reference.close()

    bus, store, seen = InMemoryBus(), _FlakyStore(), []
    fill(bus)
    registry = CollectorRegistry()
    now = [0.0]
    processor = embedded_processor(load_config(None), bus, store, registry, seen.append)
    processor._clock = lambda: now[0]  # the backoff waits on this clock
    processor._last_checkpoint = 0.0
    processor.start()
    for _ in range(3):
        now[0] += 2.0
        processor.step(0)
    store.down = True
    for _ in range(5):
        now[0] += 2.0
        processor.step(0)  # never raises
    assert processor.health()["status"] == "degraded"
    assert registry.get_sample_value("riskstream_state_store_up") == 0.0
    assert registry.get_sample_value("riskstream_partitions_held") >= 1
    store.down = False
    for _ in range(200):
        now[0] += 2.0
        processor.step(0)
    processor.close()
    assert processor.health()["status"] == "ok"
    final = store.peek("riskstream-processor", ("sensor-events", 0))
    expected = straight_store.peek("riskstream-processor", ("sensor-events", 0))
    assert (final.offset, final.counters, final.snapshots) == (
        expected.offset, expected.counters, expected.snapshots
    )  # fmt: skip
    assert {i["incident_id"] for i in seen} == {i["incident_id"] for i in ideal}


class _FakeEpoch:
    def __init__(self) -> None:
        self.epoch: str | None = None
        self.flags: dict[str, bytes] = {}

    def read(self) -> tuple[str | None, dict[str, bytes]]:
        return self.epoch, dict(self.flags)

    def restore(self, epoch: str, flags: Mapping[str, bytes]) -> int | None:
        if self.epoch is not None:
            return None
        missing = {m: r for m, r in flags.items() if m not in self.flags}
        self.flags.update(missing)
        self.epoch = epoch
        return len(missing)

    def probe_write(self) -> None:
        return None


def _flag(model: str, version: str, revision: int) -> bytes:
    flag = RoutingFlag(model_id=model, active_version=version, revision=revision)
    return orjson.dumps(flag.to_data())


@pytest.mark.parametrize("written_since", [False, True])
def test_the_guard_writes_back_lost_flags_keeping_newer_ones(written_since: bool) -> None:
    store = _FakeEpoch()
    restored = Counter("restored", "", registry=CollectorRegistry())
    ids = iter(["e1", "e2"])
    guard = FlagGuard(store, restored, new_epoch=lambda: next(ids))
    store.flags = {"bot": _flag("bot", "bot-1.4", 3), "dx": _flag("dx", "dx-2", 1)}
    assert guard.check() == "started" and store.epoch == "e1"
    assert guard.check() == "ok"
    store.epoch, store.flags = None, {}  # Redis restarted empty
    if written_since:
        store.flags = {"dx": _flag("dx", "dx-3", 1)}
    assert guard.check() == "restored" and store.epoch == "e2"
    assert store.flags["bot"] == _flag("bot", "bot-1.4", 3)
    assert store.flags["dx"] == _flag("dx", "dx-3" if written_since else "dx-2", 1)
    assert restored._value.get() == (1 if written_since else 2)


def test_a_guard_adopts_the_epoch_another_worker_wrote() -> None:
    store = _FakeEpoch()
    counter = Counter("restored", "", registry=CollectorRegistry())
    ids = iter(["a1", "a2"])
    first = FlagGuard(store, counter, lambda: next(ids))
    second = FlagGuard(store, counter, lambda: "b")
    assert first.check() == "started" and second.check() == "ok"
    store.epoch = None
    assert first.check() == "restored" and store.epoch == "a2"
    assert second.check() == "adopted" and second.epoch == "a2"
