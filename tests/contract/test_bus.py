"""The message bus contract, run over the in-memory bus and a real Kafka broker.

The embedded mode, the demo and the unit tests run on the in-memory bus; these
checks keep it honest: whatever they assert, Kafka does too.  Topics have one
partition here, where both buses promise the produce order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from riskstream.adapters.kafka.bus import KafkaBus
from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.config.environment import KafkaSettings
from riskstream.ports import Consumer, MessageBus, Record, TopicPartition
from support import create_topics

BACKENDS = [pytest.param("memory"), pytest.param("real-kafka", marks=pytest.mark.integration)]


class Bus(NamedTuple):
    """A bus and a fresh single-partition topic on it."""

    bus: MessageBus
    topic: str
    group: Callable[[str], str]


@pytest.fixture(params=BACKENDS)
def bus(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> Iterator[Bus]:
    topic = unique(f"bus-{request.node.name[:40]}".replace("[", "-").replace("]", ""))
    if request.param == "memory":
        yield Bus(InMemoryBus(), topic, unique)
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    create_topics(bootstrap, [topic], partitions=1)
    settings = KafkaSettings(bootstrap=bootstrap)
    yield Bus(KafkaBus(settings, synchronous_commits=True), topic, unique)


def _produce(bus: Bus, count: int) -> None:
    producer = bus.bus.producer()
    for i in range(count):
        producer.produce(bus.topic, f"v{i}".encode(), f"k{i % 2}".encode(), [("h", b"%d" % i)])
    producer.flush(30.0)


def _poll(consumer: Consumer, want: int, seconds: float = 60.0) -> list[Record]:
    """Records until ``want`` came (Kafka needs a group join first) or time is up."""
    out: list[Record] = []
    deadline = time.monotonic() + seconds
    while len(out) < want and time.monotonic() < deadline:
        out.extend(consumer.poll_batch(want - len(out), 0.5))
    return out


def _subscribe(
    bus: Bus, group: str, starts: dict[TopicPartition, int | None]
) -> tuple[Consumer, list[list[TopicPartition]], list[list[TopicPartition]]]:
    consumer = bus.bus.consumer(group)
    assigned: list[list[TopicPartition]] = []
    revoked: list[list[TopicPartition]] = []

    def on_assign(tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        assigned.append(sorted(tps))
        return {tp: starts.get(tp) for tp in tps}

    consumer.subscribe([bus.topic], on_assign, lambda tps, lost: revoked.append(sorted(tps)))
    return consumer, assigned, revoked


def test_records_come_back_in_order_with_key_value_headers_and_offsets(bus: Bus) -> None:
    _produce(bus, 5)
    consumer, assigned, _ = _subscribe(bus, bus.group("g"), {})
    try:
        records = _poll(consumer, 5)
    finally:
        consumer.close()
    assert assigned == [[(bus.topic, 0)]]
    assert [(r.topic, r.partition, r.offset) for r in records] == [
        (bus.topic, 0, i) for i in range(5)
    ]
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(5)]
    assert [r.key for r in records] == [b"k0", b"k1", b"k0", b"k1", b"k0"]
    assert [r.headers for r in records] == [(("h", b"%d" % i),) for i in range(5)]


def test_reading_starts_where_the_assign_handler_says(bus: Bus) -> None:
    _produce(bus, 5)
    consumer, _, _ = _subscribe(bus, bus.group("g"), {(bus.topic, 0): 3})
    try:
        records = _poll(consumer, 2)
        assert [r.offset for r in records] == [3, 4]
        assert consumer.poll_batch(10, 0.5) == []
        assert consumer.high_watermark((bus.topic, 0)) == 5
    finally:
        consumer.close()


def test_a_group_reads_back_what_it_committed(bus: Bus) -> None:
    _produce(bus, 3)
    group = bus.group("g")
    consumer, _, _ = _subscribe(bus, group, {})
    try:
        assert len(_poll(consumer, 3)) == 3
        assert consumer.committed([(bus.topic, 0)]) == {(bus.topic, 0): None}
        consumer.commit({(bus.topic, 0): 2})
        assert consumer.committed([(bus.topic, 0)]) == {(bus.topic, 0): 2}
    finally:
        consumer.close()
    other, _, _ = _subscribe(bus, bus.group("other"), {})
    try:
        assert other.committed([(bus.topic, 0)]) == {(bus.topic, 0): None}
    finally:
        other.close()


def test_closing_revokes_the_assigned_partitions(bus: Bus) -> None:
    _produce(bus, 1)
    consumer, _, revoked = _subscribe(bus, bus.group("g"), {})
    assert len(_poll(consumer, 1)) == 1
    consumer.close()
    assert revoked == [[(bus.topic, 0)]]
