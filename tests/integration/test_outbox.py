"""The outbox on a real broker and a real Redis: a routing change written by a worker
whose broker did not take it is published by the next worker (a restart), once, with
the flag as that change wrote it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.core.routing import change_id
from riskstream.errors import BusError
from riskstream.metrics import ContainmentMetrics
from riskstream.ports import Producer
from riskstream.services.containment import ContainmentService
from support import CONTAINMENT_YAML, START, create_topics, deploy, incident, make_setup, read_topic

pytestmark = pytest.mark.integration


def test_a_routing_change_the_broker_did_not_take_is_published_once_by_the_next_worker(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Worker A writes an incident's rollback to Redis; its producer (pointed at
    127.0.0.1:1) does not deliver the routing change, and A stops.  A person then
    changes the flag again through a process whose broker is away too.  Before the
    outbox, the change A wrote was announced only if its incident came again, and
    then with the flag as it stood at that moment (the person's, under A's change
    id); a restarted worker's timer published nothing.  Now worker B publishes, at its
    first tick, both changes in the order they were made, each with the flag as it
    wrote it, and nothing more after."""
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("outbox"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    topic = setup.topics["routing_changes"]
    opened: list[Any] = []

    def worker(producer: Producer) -> ContainmentService:
        stores = [
            RedisFlagStore.from_url(redis_url, namespace=namespace),
            RedisApprovalStore.from_url(redis_url, namespace=namespace),
            RedisIncidentStore.from_url(redis_url, namespace=namespace),
        ]
        opened.extend(stores)
        return ContainmentService(
            setup.config.containment, stores[0], stores[1], producer,  # type: ignore[arg-type]
            ContainmentMetrics(CollectorRegistry()), incidents=stores[2],  # type: ignore[arg-type]
        )  # fmt: skip

    def away() -> Producer:
        return KafkaBus(KafkaSettings.from_env("127.0.0.1:1")).producer(flush_timeout=1.0)

    def published() -> list[tuple[str, dict[str, Any]]]:
        return [
            (dict(m.headers())["ce_id"].decode(), orjson.loads(m.value()))
            for m in read_topic(kafka_bootstrap, topic, idle=1)
        ]

    try:
        up = KafkaBus(KafkaSettings.from_env(kafka_bootstrap)).producer()
        first = worker(up)
        for event in (deploy("d1", "chatbot", "bot-1.4", START),
                      deploy("d2", "chatbot", "bot-1.5", START + 60)):  # fmt: skip
            first.on_change_event(event)
        assert len(published()) == 2

        a = worker(away())
        with pytest.raises(BusError):  # written to Redis, not delivered: A stops here
            a.receive_incident(orjson.dumps(incident("inc-1", "chatbot")))
        written = opened[0].get("chatbot")
        assert (written.active_version, written.incident_id) == ("bot-1.4", "inc-1")
        with pytest.raises(BusError):
            worker(away()).override("chatbot", "alice", "back to 1.5", version="bot-1.5")
        assert len(published()) == 2  # neither change is on the topic

        b = worker(KafkaBus(KafkaSettings.from_env(kafka_bootstrap)).producer())
        b.run_due()  # its first tick
        changes = published()
        cid = change_id("inc-1", 0)
        assert [c for c, _ in changes].count(cid) == 1
        (ours, data), (_, manual) = changes[2:]
        assert ours == cid
        assert (data["active_version"], data["incident_id"]) == ("bot-1.4", "inc-1")
        assert data == written.to_data()  # as A wrote it, not as the flag is now
        assert (manual["active_version"], manual["actor"]) == ("bot-1.5", "alice")
        assert opened[0].outbox().size == 0

        # the incident comes again (its offset was never committed): nothing is
        # published again, and no tick publishes it again
        handled, outcomes = b.receive_incident(orjson.dumps(incident("inc-1", "chatbot")))
        assert handled is not None and outcomes == ["duplicate"]
        b.run_due()
        assert len(published()) == 4
    finally:
        for store in opened:
            store.close()
