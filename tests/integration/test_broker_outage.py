"""The containment worker (faust) when the broker does not take its publishes: the
incident at hand waits for the broker and is handled again, nothing is dead-lettered
for an outage, the worker does not stop (on a real broker and a real Redis)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from riskstream.adapters.redis.flags import RedisFlagStore
from support import (
    CONTAINMENT_YAML,
    START,
    RiskstreamProcess,
    create_topics,
    deploy,
    incident,
    make_setup,
    read_topic,
    send_by_subject,
    wait_for,
)

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("broker_away_worker.py")


def test_an_incident_handled_while_the_broker_is_away_is_published_once_it_is_back(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The flag is written, then neither its routing change nor a dead letter reaches
    the broker: the worker retries the incident with backoff until the broker is back,
    then publishes its routing change; it dead-letters nothing and goes on."""
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("away"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    down = tmp_path / "broker-down"
    worker = RiskstreamProcess(
        [str(setup.config_path), kafka_bootstrap, redis_url, namespace,
         f"{setup.group}-containment", str(down)],
        tmp_path / "worker.log", command=(str(WORKER),),
    )  # fmt: skip

    def published() -> list[dict[str, object]]:
        return [
            orjson.loads(m.value())
            for m in read_topic(kafka_bootstrap, setup.topics["routing_changes"], idle=1)
        ]

    try:
        send_by_subject(
            kafka_bootstrap, setup.topics["change"],
            deploy("d1", "chatbot", "bot-1.4", START),
            deploy("d2", "chatbot", "bot-1.5", START + 60),
        )  # fmt: skip
        wait_for("the deploys", lambda: (f := flags.get("chatbot")) and f.revision == 2)
        wait_for("their routing changes", lambda: len(published()) == 2)
        down.touch()  # the broker goes away for the worker's publishes
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], incident("inc-1", "chatbot"))
        wait_for("the flip", lambda: (f := flags.get("chatbot")) and f.incident_id == "inc-1")
        wait_for("a failed publish", lambda: "still undelivered" in worker.log(), timeout=30)
        assert len(published()) == 2  # written, not published
        down.unlink()  # the broker is back
        changes = wait_for("its routing change", lambda: len(c := published()) == 3 and c)
        assert (changes[-1]["active_version"], changes[-1]["incident_id"]) == ("bot-1.4", "inc-1")
        # the worker goes on: the next incident is handled as usual
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], incident("inc-2", "chatbot"))
        wait_for("the next flip", lambda: (f := flags.get("chatbot")) and f.incident_id == "inc-2")
        wait_for("its routing change", lambda: len(published()) == 4)
        assert worker.process.poll() is None, worker.log()
    finally:
        down.unlink(missing_ok=True)
        worker.stop()
        flags.close()
    assert read_topic(kafka_bootstrap, setup.topics["dead_letter"], idle=1) == [], worker.log()
