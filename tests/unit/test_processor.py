"""The processor on the in-memory bus and store: checkpoints, fencing, resume."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import embedded_processor
from riskstream.config import load_config
from riskstream.core.dedup import IDS_PREFIX
from riskstream.core.timeutil import format_time
from riskstream.ports import PartitionState

TOPIC = "sensor-events"
SCOPE = "riskstream-processor"
NOW = 1.8e9  # the events' times are judged against this wall clock


def _fill(bus: InMemoryBus, n: int, drift_at: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    producer = bus.producer()
    for i in range(n):
        event = {
            "event_id": str(i),
            "time": format_time(1.8e9 + i),
            "sensor_id": "s1",
            "value": rng.gauss(5.0 if i >= drift_at else 0.0, 1.0),
        }
        producer.produce(TOPIC, orjson.dumps(event), b"s1")


def _drain(bus: InMemoryBus, store: InMemoryStateStore, out: list[dict[str, Any]]) -> None:
    processor = embedded_processor(
        load_config(None), bus, store, on_incident=out.append, wall_clock=lambda: NOW
    )
    processor.start()
    while processor.step(0):
        pass
    processor.close()


def test_a_restart_resumes_from_the_checkpoint_and_matches_an_unbroken_run() -> None:
    straight_bus, straight_store, straight = InMemoryBus(), InMemoryStateStore(), []
    _fill(straight_bus, 3000, drift_at=2000)
    _drain(straight_bus, straight_store, straight)

    bus, store, resumed = InMemoryBus(), InMemoryStateStore(), []
    _fill(bus, 1500, drift_at=2000)
    _drain(bus, store, resumed)  # first life: up to offset 1500, then a clean stop
    producer = bus.producer()
    for r in straight_bus.records(TOPIC)[1500:]:
        producer.produce(TOPIC, r.value or b"", r.key)
    _drain(bus, store, resumed)  # second life: only the rest

    assert [i["incident_id"] for i in resumed] == [i["incident_id"] for i in straight]
    assert resumed and resumed[0]["subject"] == "s1"
    final, expected = store.peek(SCOPE, (TOPIC, 0)), straight_store.peek(SCOPE, (TOPIC, 0))
    assert (final.offset, final.counters, _detectors(final)) == (
        expected.offset, expected.counters, _detectors(expected)
    )  # fmt: skip
    # the ids seen (for de-duplication) are the same, chunked at each life's checkpoints
    assert _ids(final) == _ids(expected) == {str(i) for i in range(3000)}


def _detectors(state: PartitionState) -> dict[str, bytes]:
    return {k: v for k, v in state.snapshots.items() if not k.startswith(IDS_PREFIX)}


def _ids(state: PartitionState) -> set[str]:
    chunks = [orjson.loads(v) for k, v in state.snapshots.items() if k.startswith(IDS_PREFIX)]
    return {i for chunk in chunks for i in chunk}


def test_a_stale_owner_is_fenced_and_drops_the_partition_without_writing() -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    _fill(bus, 800, drift_at=10_000)
    registry = CollectorRegistry()
    stale = embedded_processor(
        load_config(None), bus, store, registry=registry, wall_clock=lambda: NOW
    )
    stale.start()
    stale.step(0)
    stale.checkpoint()
    before = store.peek(SCOPE, (TOPIC, 0))
    store.claim(SCOPE, (TOPIC, 0))  # another member takes the partition over
    _fill(bus, 50, drift_at=10_000, seed=2)
    stale.step(0)
    stale.checkpoint()
    after = store.peek(SCOPE, (TOPIC, 0))
    assert (after.offset, after.snapshots) == (before.offset, before.snapshots)
    assert registry.get_sample_value("riskstream_checkpoints_fenced_total") == 1
    assert (TOPIC, 0) not in stale.counters()


def test_bad_records_are_counted_dead_lettered_and_never_stop_the_loop() -> None:
    bus, store = InMemoryBus(), InMemoryStateStore()
    producer = bus.producer()
    producer.produce(TOPIC, b"[1, 2]", b"s1")
    producer.produce(TOPIC, b'{"event_id": "x"}', b"s1")
    _fill(bus, 10, drift_at=100)
    _drain(bus, store, [])
    reasons = [dict(r.headers)["riskstream_reason"] for r in bus.records("dead-letter")]
    assert reasons == [b"not_object", b"schema"]
    assert store.peek(SCOPE, (TOPIC, 0)).counters == {"applied": 10, "dead_lettered": 2}


def test_a_bus_failure_mid_batch_leaves_counters_and_offset_together() -> None:
    """Applied events are counted per run of records, not one by one: when the bus fails
    on an event, the count saved at shutdown still covers exactly the events before it,
    and the saved offset is that event's, so a restart applies it once."""
    import pytest

    from riskstream.errors import BusError

    bus, store = InMemoryBus(), InMemoryStateStore()
    _fill(bus, 300, drift_at=1000)
    processor = embedded_processor(load_config(None), bus, store, wall_clock=lambda: NOW)
    processor.start()
    detectors = processor._owned[(TOPIC, 0)].detectors
    observe, calls = detectors.observe, itertools.count(1)

    def failing(event: Any, t: float | None = None) -> Any:
        if next(calls) == 120:
            raise BusError("the broker is gone")
        return observe(event, t)

    detectors.observe = failing  # type: ignore[method-assign]
    with pytest.raises(BusError):
        while processor.step(0):
            pass
    processor.close()
    saved = store.peek(SCOPE, (TOPIC, 0))
    assert saved.offset == 119
    assert saved.counters == {"applied": 119, "dead_lettered": 0}


def test_checkpoints_take_at_most_their_budget_of_the_time() -> None:
    from riskstream.adapters.memory.changes import InMemoryChangeLog
    from riskstream.bootstrap import build_decoder
    from riskstream.metrics import ProcessorMetrics
    from riskstream.services.detection import Processor

    now = [0.0]

    class SlowStore(InMemoryStateStore):
        def save(self, *args: Any, **kwargs: Any) -> Any:
            now[0] += 0.5  # a big state: each save takes half a second
            return super().save(*args, **kwargs)

    config = load_config(None)  # interval 1 s
    config = replace(config, processor=replace(config.processor, checkpoint_budget=0.1))
    bus, store = InMemoryBus(), SlowStore()
    processor = Processor(
        config, bus.consumer(config.processor.group_id), bus.producer(), store,
        build_decoder(config), ProcessorMetrics(CollectorRegistry()), InMemoryChangeLog(),
        clock=lambda: now[0],
    )  # fmt: skip
    processor.start()
    saves = []
    for second in range(20):
        _fill(bus, 10, drift_at=10**9, seed=second)
        before = now[0]
        processor.step(0)
        if now[0] > before:
            saves.append(before)
        now[0] += 1.0
    processor.close()
    # 0.5 s per save at a 10% budget: the next waits 4.5 s, so about one save in 5.5 s
    gaps = [b - a for a, b in itertools.pairwise(saves)]
    assert len(saves) >= 3 and all(gap >= 4.5 for gap in gaps), saves


def _timed_processor(
    settings: dict[str, Any], now: list[float]
) -> tuple[Any, InMemoryBus, list[float]]:
    """A processor on a fake clock whose store records when each save happened."""
    from riskstream.adapters.memory.changes import InMemoryChangeLog
    from riskstream.bootstrap import build_decoder
    from riskstream.metrics import ProcessorMetrics
    from riskstream.services.detection import Processor

    saves: list[float] = []

    class TimedStore(InMemoryStateStore):
        def save(self, *args: Any, **kwargs: Any) -> Any:
            saves.append(now[0])
            return super().save(*args, **kwargs)

    config = load_config(None)
    config = replace(config, processor=replace(config.processor, **settings))
    bus = InMemoryBus()
    processor = Processor(
        config, bus.consumer(config.processor.group_id), bus.producer(), TimedStore(),
        build_decoder(config), ProcessorMetrics(CollectorRegistry()), InMemoryChangeLog(),
        clock=lambda: now[0],
    )  # fmt: skip
    processor.start()
    return processor, bus, saves


def _tombstones(bus: InMemoryBus, n: int) -> None:
    """``n`` records the processor goes through fastest (each dead-lettered at once):
    the checkpoint count counts records, whatever they are."""
    producer = bus.producer()
    for _ in range(n):
        producer.produce(TOPIC, None, b"s1")


def test_at_75k_events_a_second_the_default_config_checkpoints_once_a_second() -> None:
    """checkpoint_events was 50,000: past 50k events/s it checkpointed before each 1 s
    interval was up (every 0.67 s at 75k/s, ~3% of a fast machine's CPU) to keep a crash's
    replay under 50k events, about half a second of work, while recovering from a crash
    takes the consumer group's session timeout first.  The count bounds replay only where
    the interval lets more events pile up than one processor reads in a second."""
    now = [0.0]
    processor, bus, saves = _timed_processor({"batch_size": 7500}, now)
    for _ in range(30):  # 3 s at 75,000 events/s: 7,500 every 0.1 s
        _tombstones(bus, 7500)
        processor.step(0)
        now[0] = round(now[0] + 0.1, 1)
    processor.close()
    assert saves == [1.0, 2.0, 3.0]  # (the last at close)
