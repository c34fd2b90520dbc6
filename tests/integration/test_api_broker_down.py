"""The API on a real Redis while the Kafka broker does not answer.

A flag override and a resolve are written to Redis first and published after; when
the publish fails, the answer must say what did happen (the flag is changed, the
incident is resolved) and what to do, not only that a message was undelivered: a
caller told just "unavailable" believes nothing changed.  It must say so within
seconds, without holding every other write behind it, and an approval whose change
was not published must be completable once the broker is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from api_support import Answer, ApiProcess, free_port, write_tokens
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.api.context import WRITE_WAIT_S
from riskstream.core.approvals import PendingAction
from riskstream.core.incident_records import record_incident
from support import START, create_topics, make_setup, read_topic
from support import incident as an_incident

APPROVER = "rs_broker_down_approver_0001"
SECOND = "rs_broker_down_approver_0002"


def test_writes_whose_publish_fails_say_what_was_written_and_what_to_do(
    redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("broker-down")
    tokens = write_tokens(tmp_path / "tokens.yaml", {"dr.okafor": ("approver", APPROVER)})
    setup = make_setup(tmp_path, unique("api"))
    store = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    incident = an_incident("inc-down", "chatbot")
    store.update("inc-down", lambda r: record_incident(r, incident, START + 3700))
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    no_broker = f"127.0.0.1:{free_port()}"  # nothing listens there
    api = ApiProcess(setup, no_broker, redis_url, tokens, tmp_path / "api.log", namespace)
    try:
        put = {"version": "v2", "reason": "pin while the broker is down"}
        got = api.call("PUT", "/api/v1/flags/bot", APPROVER, put)
        assert got.status == 503, got.text
        message = got.body["message"]
        assert "flag of bot is changed" in message and "revision 1" in message, message
        assert "not published" in message, message
        flag = api.call("GET", "/api/v1/flags/bot", APPROVER)
        assert (flag.status, flag.body["active_version"]) == (200, "v2"), flag.text

        assert approvals.add(_held("act-down", incident))
        got = api.call("POST", "/api/v1/actions/act-down/approve", APPROVER, {})
        assert got.status == 503, got.text
        message = got.body["message"]
        assert "act-down is approved by dr.okafor" in message, message
        assert "flag of bot is at revision 2 (v3" in message, message

        got = api.call("POST", "/api/v1/incidents/inc-down/resolve", APPROVER, {})
        assert got.status == 503, got.text
        message = got.body["message"]
        assert "inc-down is resolved" in message and "resolve it again" in message, message
        record = store.get("inc-down")
        assert record is not None and (record.status, record.unpublished) == ("resolved", True)
        health = api.call("GET", "/api/v1/health")  # it said ok all through the outage
        assert (health.status, health.body["status"]) == (503, "degraded"), health.text
        assert health.body["kafka"] == "did not take a publish"
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
        store.close()
        approvals.close()


def test_with_the_broker_down_writes_answer_in_seconds_and_an_approval_completes_later(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Each write waited 30 s for the broker while holding the API's write lock, so the
    writes behind it waited 30 s more each; an approval whose change was not published
    stayed "approved" (never "applied") and approving it again answered 409."""
    namespace = unique("broker-back")
    tokens = write_tokens(
        tmp_path / "tokens.yaml",
        {"dr.okafor": ("approver", APPROVER), "dr.lee": ("approver", SECOND)},
    )
    setup = make_setup(tmp_path, unique("api"))
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    store = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    incident = an_incident("inc-back", "bot")
    store.update("inc-back", lambda r: record_incident(r, incident, START + 3700))
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    assert approvals.add(_held("act-back", incident))
    no_broker = f"127.0.0.1:{free_port()}"  # nothing listens there
    api = ApiProcess(setup, no_broker, redis_url, tokens, tmp_path / "down.log", namespace)
    try:
        answers: dict[str, tuple[Answer, float]] = {}

        def call(name: str, method: str, path: str, body: Any) -> None:
            started = time.monotonic()
            answers[name] = (api.call(method, path, APPROVER, body), time.monotonic() - started)

        writes = [  # one after another into the API's write lock
            ("approve", "POST", "/api/v1/actions/act-back/approve", {}),  # waits for the broker
            ("override", "PUT", "/api/v1/flags/other", {"version": "v1", "reason": "pin"}),
            ("ack", "POST", "/api/v1/incidents/inc-back/acknowledge", {}),  # waits too long
        ]
        threads = []
        for write in writes:
            threads.append(threading.Thread(target=call, args=write))
            threads[-1].start()
            time.sleep(0.3)
        for thread in threads:
            thread.join(60)
        (approved, took), (overridden, took_2), (acked, took_3) = (
            answers[name] for name, *_ in writes
        )
        assert approved.status == 503 and took < WRITE_WAIT_S + 2, (took, approved.text)
        assert "approved by dr.okafor" in approved.body["message"], approved.text
        assert "Approve it again once the broker answers" in approved.body["message"]
        assert overridden.status == 503, overridden.text  # it waited for the approval
        assert "flag of other is changed" in overridden.body["message"], overridden.text
        assert took_2 < 2 * WRITE_WAIT_S + 2, took_2
        assert acked.status == 503 and took_3 < WRITE_WAIT_S + 2, (took_3, acked.text)
        assert "nothing was written" in acked.body["message"], acked.text
        assert acked.headers["Retry-After"] == str(int(WRITE_WAIT_S)), acked.headers
        record = store.get("inc-back")
        assert record is not None and record.acknowledged_by is None

        again = api.call("POST", "/api/v1/actions/act-back/approve", SECOND, {})
        assert again.status == 503, again.text  # not 409: it can still be completed
        assert "approved by dr.okafor" in again.body["message"], again.text
    finally:
        api.stop()
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "up.log", namespace)
    try:
        done = api.call("POST", "/api/v1/actions/act-back/approve", SECOND, {})
        assert done.status == 200, done.text
        assert (done.body["status"], done.body["decided_by"]) == ("applied", "dr.okafor")
        flag = flags.get("bot")
        assert flag is not None and (flag.revision, flag.active_version) == (1, "v3"), flag
        assert flag.actor == "dr.okafor"
        events = [
            (dict(m.headers())["ce_id"], orjson.loads(m.value())["revision"])
            for m in read_topic(kafka_bootstrap, setup.topics["routing_changes"])
        ]
        # the change's own id, applied once; and the override the broker did not take,
        # published from the outbox with it (before the outbox it was never published)
        assert events[0] == (b"act-back", 1) and len(events) == 2, events
        assert events[1][0].startswith(b"manual:other:") and events[1][1] == 1, events
        twice = api.call("POST", "/api/v1/actions/act-back/approve", SECOND, {})
        assert twice.status == 409 and "already applied" in twice.body["message"], twice.text
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
        store.close()
        approvals.close()
        flags.close()


def _held(action_id: str, incident: dict[str, Any]) -> PendingAction:
    """A route-to-version v3 of bot for ``incident``, held for a person's approval."""
    labels = {
        "incident_id": incident["incident_id"], "type": "safety", "severity": "critical",
        "subject": "bot", "onset_at": incident["onset_at"],
    }  # fmt: skip
    return PendingAction(
        action_id, incident["incident_id"], "bot", {"kind": "route-to-version", "version": "v3"},
        "riskstream/containment", START, None, labels=labels,
    )  # fmt: skip
