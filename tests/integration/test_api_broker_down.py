"""The API on a real Redis while the Kafka broker does not answer.

A flag override and a resolve are written to Redis first and published after; when
the publish fails, the answer must say what did happen (the flag is changed, the
incident is resolved) and what to do, not only that a message was undelivered: a
caller told just "unavailable" believes nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from api_support import ApiProcess, free_port, write_tokens
from riskstream.adapters.redis.flags import RedisApprovalStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.core.approvals import PendingAction
from riskstream.core.incident_records import record_incident
from support import START, make_setup
from support import incident as an_incident

APPROVER = "rs_broker_down_approver_0001"


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

        labels = {"incident_id": "inc-down", "type": "safety", "severity": "critical",
                  "subject": "bot", "onset_at": incident["onset_at"]}  # fmt: skip
        held = PendingAction("act-down", "inc-down", "bot", {"kind": "route-to-version",
                             "version": "v3"}, "riskstream/containment", START, None,
                             labels=labels)  # fmt: skip
        assert approvals.add(held)
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
