"""A change event read after its incident is listed on it once, across a worker restart
(issue 15, item 4), on a real broker and a real Redis."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import orjson

from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.core.incidents import INCIDENT_UPDATED
from riskstream.core.timeutil import format_time
from support import (
    CONTAINMENT_YAML,
    START,
    ContainmentProcess,
    create_topics,
    deploy,
    incident,
    make_setup,
    read_topic,
    send_by_subject,
    wait_for,
)

# this file's waits span service restarts
_wait = functools.partial(wait_for, timeout=90.0)


def test_a_backfilled_change_is_listed_once_even_after_a_restart(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("backfill"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    records = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    topics = setup.topics
    prompt = {
        "event_id": "prompt-7", "time": format_time(START + 2700), "kind": "prompt",
        "subject": "chatbot", "version": "prompt-7", "actor": "pm@example.com",
        "description": "system prompt: shorter refusals",
    }  # fmt: skip

    def listed() -> list[str]:
        record = records.get("inc-b")
        suspects = record.incident.get("suspected_changes") or [] if record else []
        return [str(c["event_id"]) for c in suspects]

    no_commit = ("--commit-every", "100000", "--commit-interval", "600")
    first = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "w1.log", namespace, *no_commit
    )
    try:
        # (a deploy long before: beyond the look-back, no suspect; the worker is ready)
        old = deploy("d1", "chatbot", "bot-1.4", START - 8 * 3600)
        send_by_subject(kafka_bootstrap, topics["change"], old)
        _wait("the deploy", lambda: flags.get("chatbot"))
        # The incident is raised (by a processor that has not read the prompt change)...
        send_by_subject(kafka_bootstrap, topics["incidents"], incident("inc-b", "chatbot"))
        _wait("the incident's record", lambda: records.get("inc-b"))
        assert listed() == []
        # ...and the change, dated 5 min before the onset, is written after it.
        send_by_subject(kafka_bootstrap, topics["change"], prompt)
        _wait("the backfilled suspect", lambda: listed() == ["prompt-7"])
        record = records.get("inc-b")
        assert record is not None
        assert [e.key for e in record.timeline].count("suspect:prompt-7") == 1
        (change,) = record.incident["suspected_changes"]
        assert change["lead_seconds"] == 300.0 and change["kind"] == "prompt"
    finally:
        first.kill()  # nothing committed: both topics are read again from the start

    second = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w2.log", namespace)
    try:
        # Markers after everything redelivered: once they are handled, so is the rest.
        send_by_subject(
            kafka_bootstrap, topics["change"], deploy("d-marker", "marker", "m-1", START)
        )
        send_by_subject(
            kafka_bootstrap, topics["incidents"], incident("inc-marker", "marker-model")
        )
        _wait("the redelivered changes", lambda: flags.get("marker"))
        _wait("the redelivered incidents", lambda: records.get("inc-marker"))
    finally:
        second.stop()
    assert listed() == ["prompt-7"]
    updates = [
        orjson.loads(m.value())
        for m in read_topic(kafka_bootstrap, topics["incidents"], idle=1)
        if dict(m.headers() or ()).get("ce_type") == INCIDENT_UPDATED.encode()
    ]
    # One update published, by the first worker; the restarted one found it listed.
    assert [[c["event_id"] for c in u["suspected_changes"]] for u in updates] == [["prompt-7"]]
