"""A batch's change events go to the change log with one call (one call each held a
flood of them at ~1.3k events/s, and every other topic of the processor with them),
keeping what one call each kept: a bad one dead-lettered alone, none lost to a store
that fails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import build_decoder
from riskstream.config import load_config
from riskstream.core.timeutil import format_time
from riskstream.errors import StateStoreError
from riskstream.metrics import ProcessorMetrics
from riskstream.services.detection import Processor

NOW = 1.8e9
SCOPE = "riskstream-processor"


class Log(InMemoryChangeLog):
    """The in-memory log, counting calls; ``bad`` ids it refuses, ``down`` it fails."""

    def __init__(self) -> None:
        super().__init__(3600.0, clock=lambda: NOW)
        self.calls: list[tuple[str, int]] = []
        self.down = False

    def add(self, change: Mapping[str, Any]) -> None:
        self.calls.append(("add", 1))
        self._check([change])
        super().add_many([change])  # (the log's add calls add_many: not counted twice)

    def add_many(self, changes: Sequence[Mapping[str, Any]]) -> None:
        self.calls.append(("add_many", len(changes)))
        self._check(changes)
        super().add_many(changes)

    def _check(self, changes: Sequence[Mapping[str, Any]]) -> None:
        if self.down:
            raise StateStoreError("the change log's Redis is gone")
        if any(c["event_id"] == "bad" for c in changes):
            raise TypeError("cannot keep this one")

    def ids(self) -> list[str]:
        return [str(c["event_id"]) for c in self.between(["m"], 0, 2 * NOW)]


def _processor(
    log: Log, store: InMemoryStateStore, now: list[float]
) -> tuple[Processor, InMemoryBus]:
    config = load_config(None)
    bus = InMemoryBus()
    processor = Processor(
        config, bus.consumer(config.processor.group_id), bus.producer(), store,
        build_decoder(config), ProcessorMetrics(CollectorRegistry()), log,
        clock=lambda: now[0], wall_clock=lambda: NOW,
    )  # fmt: skip
    processor.start()
    return processor, bus


def _change(event_id: str, i: int) -> bytes:
    return orjson.dumps({"event_id": event_id, "time": format_time(NOW - 600 + i),
                         "kind": "deploy", "subject": "m"})  # fmt: skip


def _sensor(i: int) -> bytes:
    return orjson.dumps({"event_id": f"s/{i}", "time": format_time(NOW - 600 + i),
                         "sensor_id": "s1", "value": 20.0 + i % 3})  # fmt: skip


def test_a_batch_of_changes_is_one_call_and_a_bad_one_is_dead_lettered_alone() -> None:
    log, store, now = Log(), InMemoryStateStore(), [0.0]
    processor, bus = _processor(log, store, now)
    config = load_config(None)
    change, sensor = config.topics.change, config.topics.sensor
    producer = bus.producer()
    for i in range(50):
        producer.produce(sensor, _sensor(i), b"s1")
        producer.produce(change, _change(f"c{i}", i), b"m")
    processor.step(0)
    assert log.calls == [("add_many", 50)]  # not 50 calls
    assert log.ids() == [f"c{i}" for i in range(50)]

    log.calls.clear()
    for i in range(50, 60):
        producer.produce(change, _change("bad" if i == 55 else f"c{i}", i), b"m")
    producer.produce(change, b"{not json", b"m")  # refused before the log: no call for it
    producer.produce(sensor, _sensor(60), b"s1")
    processor.step(0)
    # The batch's call fails but for the store: each alone finds the bad one.
    assert log.calls == [("add_many", 10)] + [("add", 1)] * 10
    assert log.ids()[-9:] == [f"c{i}" for i in range(50, 60) if i != 55]
    letters = bus.records(config.topics.dead_letter)
    assert [dict(r.headers)["riskstream_reason"] for r in letters] == [b"apply_error", b"not_json"]
    assert b"cannot keep this one" in dict(letters[0].headers)["riskstream_error"]

    log.calls.clear()
    producer.produce(sensor, _sensor(61), b"s1")
    processor.step(0)
    assert log.calls == []  # a batch without changes: no call
    processor.checkpoint()
    assert store.peek(SCOPE, (change, 0)).counters == {"applied": 59, "dead_lettered": 2}
    assert store.peek(SCOPE, (change, 0)).offset == 61
    processor.close()


def test_changes_the_store_failed_to_keep_are_read_again() -> None:
    log, store, now = Log(), InMemoryStateStore(), [0.0]
    processor, bus = _processor(log, store, now)
    change = load_config(None).topics.change
    producer = bus.producer()
    for i in range(5):
        producer.produce(change, _change(f"c{i}", i), b"m")
    processor.step(0)
    processor.checkpoint()
    for i in range(5, 10):
        producer.produce(change, _change(f"c{i}", i), b"m")
    log.down = True
    processor.step(0)  # the call fails: the partition is held, nothing saved past c4
    assert processor.health()["status"] == "degraded"
    assert store.peek(SCOPE, (change, 0)).offset == 5
    log.down = False
    now[0] += 60.0  # past the retry's backoff
    while processor.step(0):
        pass
    processor.checkpoint()
    assert processor.health()["status"] == "ok"
    assert log.ids() == [f"c{i}" for i in range(10)]
    saved = store.peek(SCOPE, (change, 0))
    assert (saved.offset, saved.counters) == (10, {"applied": 10, "dead_lettered": 0})
    processor.close()


def test_a_change_redelivered_in_its_batch_or_later_is_stored_and_counted_once() -> None:
    log, store, now = Log(), InMemoryStateStore(), [0.0]
    processor, bus = _processor(log, store, now)
    change = load_config(None).topics.change
    producer = bus.producer()
    for event_id in ("c0", "c1", "c0", "c2", "c1"):
        producer.produce(change, _change(event_id, int(event_id[1])), b"m")
    processor.step(0)
    assert log.calls == [("add_many", 3)]
    producer.produce(change, _change("c2", 2), b"m")
    producer.produce(change, _change("c3", 3), b"m")
    processor.step(0)
    assert log.calls == [("add_many", 3), ("add_many", 1)]
    assert log.ids() == ["c0", "c1", "c2", "c3"]
    processor.checkpoint()
    saved = store.peek(SCOPE, (change, 0))
    assert (saved.offset, saved.counters) == (
        7,
        {"applied": 4, "dead_lettered": 0, "duplicates": 3},
    )
    processor.close()
