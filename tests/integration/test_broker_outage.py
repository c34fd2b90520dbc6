"""The containment worker (faust) when the broker does not take its publishes: the
incident at hand waits for the broker and is handled again, nothing is dead-lettered
for an outage, the worker does not stop (on a real broker and a real Redis)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest

from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.core.routing import FlagChange, change_id
from support import (
    CONTAINMENT_YAML,
    START,
    ContainmentProcess,
    RiskstreamProcess,
    Setup,
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


class _Away(NamedTuple):
    """A worker (``broker_away_worker.py``) whose publishes go nowhere while ``down``
    exists, on its own topics and flag namespace."""

    setup: Setup
    flags: RedisFlagStore
    down: Path
    worker: RiskstreamProcess

    def published(self, bootstrap: str) -> list[Any]:
        return list(read_topic(bootstrap, self.setup.topics["routing_changes"], idle=1))

    def flip_while_away(self, bootstrap: str) -> None:
        """Two deploys published, then the broker away for the worker's publishes and an
        incident whose flag change is written and not published."""
        flags, topics = self.flags, self.setup.topics
        send_by_subject(
            bootstrap, topics["change"],
            deploy("d1", "chatbot", "bot-1.4", START),
            deploy("d2", "chatbot", "bot-1.5", START + 60),
        )  # fmt: skip
        wait_for("the deploys", lambda: (f := flags.get("chatbot")) and f.revision == 2)
        wait_for("their routing changes", lambda: len(self.published(bootstrap)) == 2)
        self.down.touch()  # the broker goes away for the worker's publishes
        send_by_subject(bootstrap, topics["incidents"], incident("inc-1", "chatbot"))
        wait_for("the flip", lambda: (f := flags.get("chatbot")) and f.incident_id == "inc-1")
        wait_for("a failed publish", lambda: "still undelivered" in self.worker.log(), timeout=30)


def _away(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str], name: str
) -> _Away:
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique(name), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    down = tmp_path / "broker-down"
    worker = RiskstreamProcess(
        [str(setup.config_path), kafka_bootstrap, redis_url, namespace,
         f"{setup.group}-containment", str(down)],
        tmp_path / f"{name}.log", command=(str(WORKER),),
    )  # fmt: skip
    return _Away(setup, flags, down, worker)


def test_an_incident_handled_while_the_broker_is_away_is_published_once_it_is_back(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The flag is written, then neither its routing change nor a dead letter reaches
    the broker: the worker retries the incident with backoff until the broker is back,
    then publishes its routing change; it dead-letters nothing and goes on."""
    setup, flags, down, worker = away = _away(kafka_bootstrap, redis_url, tmp_path, unique, "away")

    def published() -> list[dict[str, object]]:
        return [orjson.loads(m.value()) for m in away.published(kafka_bootstrap)]

    try:
        away.flip_while_away(kafka_bootstrap)
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


def test_a_worker_stopped_while_the_broker_is_away_leaves_its_change_to_the_next(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The flag is written, its routing change not taken, and the worker is killed
    meanwhile, and something else changes the flag before the next worker starts.  The
    next worker read the incident again (never committed), found it "duplicate", and
    published the flag as it then stood, the other writer's, under the incident's
    change id.  Now it publishes the change from the outbox (as it starts, or as it
    reads the incident again: whichever is first), once, as the first worker wrote it."""
    away = _away(kafka_bootstrap, redis_url, tmp_path, unique, "restart")
    setup, flags, first = away.setup, away.flags, away.worker

    def published() -> list[Any]:
        return away.published(kafka_bootstrap)

    try:
        away.flip_while_away(kafka_bootstrap)
    finally:
        first.kill()  # while it waits for the broker
    written = flags.get("chatbot")
    assert written is not None and flags.outbox().size == 1
    assert len(published()) == 2
    by_hand = written.evolve(
        active_version="bot-1.6", revision=written.revision + 1, actor="ops-script",
        reason="pinned by a script that does not announce", incident_id=None,
    )  # fmt: skip
    assert flags.apply(FlagChange("script-1", written.revision, by_hand), START).outcome == (
        "applied"
    )
    second = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "second.log", flags.namespace
    )
    try:
        wait_for("the outbox published", lambda: flags.outbox().size == 0)
    finally:
        second.stop()
    changes = published()
    ids = [dict(m.headers())["ce_id"].decode() for m in changes]
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert ids[-1] == change_id("inc-1", 0)
    assert orjson.loads(changes[-1].value()) == written.to_data()  # not the script's flag
    assert written.incident_id == "inc-1" and written.active_version == "bot-1.4"
    flags.close()
