from __future__ import annotations

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.ports import TopicPartition


def test_consumer_reads_topics_in_produce_order_from_the_assigned_offsets() -> None:
    bus = InMemoryBus()
    producer = bus.producer()
    for i in range(3):
        producer.produce("a", f"a{i}".encode(), b"k")
        producer.produce("b", f"b{i}".encode(), b"k")
    revoked: list[list[TopicPartition]] = []
    consumer = bus.consumer("g")
    consumer.subscribe(
        ["a", "b"],
        on_assign=lambda tps: {("a", 0): 1, ("b", 0): None},
        on_revoke=lambda tps, lost: revoked.append(tps),
    )
    assert [r.value for r in consumer.poll_batch(10, 0)] == [b"b0", b"a1", b"b1", b"a2", b"b2"]
    assert consumer.poll_batch(10, 0) == []
    assert consumer.high_watermark(("a", 0)) == 3
    consumer.close()
    assert revoked == [[("a", 0), ("b", 0)]]
