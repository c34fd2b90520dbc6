"""The test infrastructure itself: a real broker with consumer groups, a real Redis."""

from __future__ import annotations

from collections.abc import Callable

import redis
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def _create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)


def _consume(bootstrap: str, group: str, topic: str, want: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=100, timeout=1.0):
                if msg.error():
                    raise KafkaException(msg.error())
                got.append(msg.value())
            if len(got) >= want:
                break
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_kafka_consumer_group_resumes_from_committed_offsets(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("svc-roundtrip"), unique("svc-group")
    _create_topic(kafka_bootstrap, topic)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(100):
        producer.produce(topic, key=f"k{i % 7}".encode(), value=f"first-{i}".encode())
    assert producer.flush(30) == 0

    first = _consume(kafka_bootstrap, group, topic, want=100)
    assert sorted(first) == sorted(f"first-{i}".encode() for i in range(100))

    for i in range(10):
        producer.produce(topic, key=b"k", value=f"second-{i}".encode())
    assert producer.flush(30) == 0
    second = _consume(kafka_bootstrap, group, topic, want=10)
    assert sorted(second) == sorted(f"second-{i}".encode() for i in range(10))

    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    committed = probe.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    probe.close()
    assert sum(tp.offset for tp in committed) == 110


def test_redis_round_trips_bytes_and_hashes(redis_url: str, unique: Callable[[str], str]) -> None:
    client = redis.Redis.from_url(redis_url)
    key = unique("svc-roundtrip")
    payload = bytes(range(256))
    client.set(key, payload)
    client.hset(f"{key}:h", mapping={"a": "1", "b": payload})
    assert client.get(key) == payload
    assert client.hgetall(f"{key}:h") == {b"a": b"1", b"b": payload}
    client.delete(key, f"{key}:h")
    assert client.exists(key) == 0
