"""The notifier service on the in-memory bus, a scripted webhook and a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.codec import encode_cloudevent
from riskstream.core.delivery import AttemptResult, RetryPolicy
from riskstream.core.notifications import (
    INCIDENT_OPENED,
    INCIDENT_UPDATED,
    NotificationSettings,
    Receiver,
)
from riskstream.metrics import NotifierMetrics
from riskstream.ports import IncidentStore
from riskstream.services.notifier import Destination, Notifier
from riskstream.signing import RecordSigner

TOPIC, DEAD = "incidents", "dead"
OK = AttemptResult("delivered", "HTTP 200", 200)
DOWN = AttemptResult("retryable", "HTTP 503: maintenance", 503)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Webhook:
    """Answers per URL from a script: f(now) -> result; records every call."""

    def __init__(self, clock: Clock, script: dict[str, Callable[[float], AttemptResult]]):
        self.clock, self.script = clock, script
        self.calls: list[tuple[str, dict[str, Any], float]] = []

    def post(self, url: str, body: bytes, timeout: float) -> AttemptResult:
        self.calls.append((url, orjson.loads(body), self.clock.now))
        return self.script.get(url, lambda now: OK)(self.clock.now)

    def delivered(self, url: str) -> list[dict[str, Any]]:
        return [
            body
            for u, body, at in self.calls
            if u == url and self.script.get(url, lambda now: OK)(at).outcome == "delivered"
        ]


def incident(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": f"inc-{n}", "type": "safety", "severity": "critical", "status": "open",
        "subject": "chatbot", "monitor": "m", "stream_key": "chatbot|b",
        "detected_at": "2026-11-26T11:00:00.000Z", "onset_at": "2026-11-26T10:50:00.000Z",
        "evidence": {}, **extra,
    }  # fmt: skip


def send(bus: InMemoryBus, data: dict[str, Any], ce_type: str = INCIDENT_OPENED) -> None:
    headers, value = encode_cloudevent(
        ce_type, data["incident_id"], data["detected_at"], data["subject"], data
    )
    bus.producer().produce(TOPIC, value, data["subject"].encode(), headers)


def notifier(
    bus: InMemoryBus,
    clock: Clock,
    webhook: Webhook,
    receivers: list[Receiver],
    retry: RetryPolicy | None = None,
    registry: CollectorRegistry | None = None,
    records: IncidentStore | None = None,
    signer: RecordSigner | None = None,
) -> Notifier:
    settings = NotificationSettings(
        receivers=tuple(receivers),
        retry=retry or RetryPolicy(max_attempts=6, initial_backoff_s=1, max_elapsed_s=60),
        dead_letter_topic=DEAD,
    )
    destinations = [
        Destination(r, f"http://{r.name}", "PDKEY" if r.kind == "pagerduty" else None)
        for r in receivers
    ]
    n = Notifier(
        settings, destinations, TOPIC, bus.consumer(settings.group_id), bus.producer(), webhook,
        NotifierMetrics(registry or CollectorRegistry()), clock, clock.sleep, lambda: 0.5,
        records, signer,
    )  # fmt: skip
    n.start()
    return n


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


AM = Receiver("am", "alertmanager", url="http://am")
PD = Receiver("pd", "pagerduty", url="http://pd", routing_key_env="PD_KEY")
SLACK = Receiver("slack", "slack", url="http://slack", min_severity="critical")


def test_an_outage_delays_but_loses_nothing_and_order_is_kept() -> None:
    bus, clock, registry = InMemoryBus(), Clock(), CollectorRegistry()
    hook = Webhook(clock, {"http://am": lambda now: DOWN if now < 10 else OK})
    n = notifier(bus, clock, hook, [AM, SLACK], registry=registry)
    for i in range(5):
        send(bus, incident(i))
    send(bus, incident(0, status="resolved"), INCIDENT_UPDATED)
    assert n.step(0) == 6
    am = hook.delivered("http://am")
    assert [(b["alerts"][0]["labels"]["incident_id"], b["status"]) for b in am] == [
        ("inc-0", "firing"), ("inc-1", "firing"), ("inc-2", "firing"), ("inc-3", "firing"),
        ("inc-4", "firing"), ("inc-0", "resolved"),
    ]  # fmt: skip
    assert len(hook.delivered("http://slack")) == 6 and clock.now >= 10  # slack never waited
    assert hook.calls[1][0] == "http://slack" and hook.calls[1][2] == 0.0
    assert (
        metric(registry, "riskstream_notifications_total", receiver="am", outcome="delivered") == 6
    )
    attempts = "riskstream_notification_attempts_total"
    retries = metric(registry, attempts, receiver="am", result="retryable")
    assert retries == 5  # tried at 0, 0.5, 1.5, 3.5 and 7.5 s (jitter 0.5); delivered at 15.5
    assert bus.records(DEAD) == []
    assert bus.consumer("riskstream-notifier").committed([(TOPIC, 0)]) == {(TOPIC, 0): 6}


def test_a_permanent_refusal_is_dead_lettered_at_once_without_the_routing_key() -> None:
    bus, clock = InMemoryBus(), Clock()
    refused = AttemptResult("permanent", "HTTP 400: invalid routing key", 400)
    hook = Webhook(clock, {"http://pd": lambda now: refused})
    n = notifier(bus, clock, hook, [PD])
    send(bus, incident(7))
    n.step(0)
    (dead,) = bus.records(DEAD)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["riskstream_reason"] == "rejected"
    assert headers["riskstream_error"] == "HTTP 400: invalid routing key"
    assert (headers["riskstream_receiver"], headers["riskstream_receiver_kind"]) == (
        "pd",
        "pagerduty",
    )
    assert (headers["riskstream_incident_id"], headers["riskstream_attempts"]) == ("inc-7", "1")
    assert orjson.loads(headers["riskstream_source"]) == {
        "topic": TOPIC,
        "partition": 0,
        "offset": 0,
    }
    payload = orjson.loads(dead.value or b"")
    assert payload["routing_key"] == "${PD_KEY}" and payload["dedup_key"] == "inc-7"
    assert b"PDKEY" not in (dead.value or b"")
    assert hook.calls[0][1]["routing_key"] == "PDKEY"  # the receiver did get the key


def test_a_receiver_that_stays_down_costs_one_budget_per_batch_then_one_try_each() -> None:
    bus, clock, registry = InMemoryBus(), Clock(), CollectorRegistry()
    hook = Webhook(clock, {"http://am": lambda now: DOWN})
    retry = RetryPolicy(max_attempts=4, initial_backoff_s=1, max_backoff_s=10, max_elapsed_s=60)
    n = notifier(bus, clock, hook, [AM, SLACK], retry=retry, registry=registry)
    for i in range(3):
        send(bus, incident(i))
    n.step(0)
    am_calls = [c for c in hook.calls if c[0] == "http://am"]
    assert len(am_calls) == 4 + 1 + 1
    reasons = [dict(r.headers)["riskstream_reason"] for r in bus.records(DEAD)]
    assert reasons == [b"retries_exhausted", b"receiver_down", b"receiver_down"]
    assert dict(bus.records(DEAD)[0].headers)["riskstream_attempts"] == b"4"
    assert (
        metric(registry, "riskstream_notifications_total", receiver="am", outcome="dead_lettered")
        == 3
    )
    assert metric(registry, "riskstream_notifier_retrying") == 0
    assert bus.consumer("riskstream-notifier").committed([(TOPIC, 0)]) == {(TOPIC, 0): 3}

    # A restart of the group resends nothing that was settled.
    again = Webhook(clock, {})
    restarted = notifier(bus, clock, again, [AM, SLACK])
    assert restarted.step(0) == 0 and again.calls == []
    send(bus, incident(9))
    assert restarted.step(0) == 1
    assert [c[0] for c in again.calls] == ["http://am", "http://slack"]


def test_filters_and_updates_decide_who_hears_what() -> None:
    bus, clock, registry = InMemoryBus(), Clock(), CollectorRegistry()
    hook = Webhook(clock, {})
    updates = Receiver("upd", "slack", url="http://upd", updates=True)
    n = notifier(bus, clock, hook, [SLACK, updates], registry=registry)
    send(bus, incident(1, severity="warning"))
    send(bus, incident(2), INCIDENT_UPDATED)
    send(bus, incident(5))
    n.step(0)
    assert len(hook.delivered("http://upd")) == 3
    assert len(hook.delivered("http://slack")) == 1  # inc-5; inc-1 is only a warning
    assert bus.consumer("riskstream-notifier").committed([(TOPIC, 0)]) == {(TOPIC, 0): 3}


def test_what_containment_refuses_is_skipped_and_counted_not_dead_lettered() -> None:
    """The containment worker dead-letters what is no incident; the notifier did too
    (the record landed twice), and paged people for records containment refused."""
    bus, clock, registry = InMemoryBus(), Clock(), CollectorRegistry()
    hook = Webhook(clock, {})
    n = notifier(bus, clock, hook, [AM], registry=registry)
    bus.producer().produce(TOPIC, b"not json", b"k")
    bus.producer().produce(TOPIC, b"\xef\xbb\xbf{}", b"k")
    send(bus, incident(3, suspected_changes=[{"lead_seconds": 5}], evidence=[1]))  # odd types
    send(bus, incident(4, suspected_changes=["?"], blast_radius={"estimated_cost": "lots"}))
    send(bus, incident(6, detected_at="2026-11-26T11:00:00"))  # no offset: containment refuses
    send(bus, incident(7, severity="apocalyptic"))
    send(bus, incident(8))
    n.step(0)
    assert [b["groupLabels"]["incident_id"] for b in hook.delivered("http://am")] == ["inc-8"]
    assert bus.records(DEAD) == []
    assert metric(registry, "riskstream_notifier_incidents_total", event="unreadable") == 6
    assert bus.consumer("riskstream-notifier").committed([(TOPIC, 0)]) == {(TOPIC, 0): 7}


def test_a_stop_mid_batch_commits_only_what_is_settled() -> None:
    bus, clock = InMemoryBus(), Clock()
    hook = Webhook(clock, {"http://am": lambda now: OK if now < 1 else DOWN})
    n = notifier(bus, clock, hook, [AM])
    for i in range(3):
        send(bus, incident(i))
    clock.now = 0.5
    hook.script["http://am"] = lambda now: OK if len(hook.calls) <= 1 else DOWN
    n._should_stop = lambda: clock.now > 5  # what run() installs
    n.step(0)
    assert bus.consumer("riskstream-notifier").committed([(TOPIC, 0)]) == {(TOPIC, 0): 1}
    assert bus.records(DEAD) == []  # inc-1 and inc-2 are resent after the restart


def test_a_resolved_its_record_does_not_confirm_closes_no_page() -> None:
    """Anyone who can write the incidents topic could close real pages with a forged
    "resolved"; with the incident records the notifier sends only the resolutions a
    person made (their record says resolved), as the containment worker acts only on
    those.  The forged one is counted and logged, not dead-lettered (containment does)."""
    from riskstream.adapters.memory.incidents import InMemoryIncidentStore
    from riskstream.core.incident_records import record_incident, resolve

    records = InMemoryIncidentStore()
    for n in (1, 2):
        records.update(f"inc-{n}", lambda r, n=n: record_incident(r, incident(n), 0.0))
    records.update("inc-2", lambda r: None if r is None else resolve(r, "dr.lee", 5.0, "no drift"))
    bus, clock, registry = InMemoryBus(), Clock(), CollectorRegistry()
    hook = Webhook(clock, {})
    n = notifier(bus, clock, hook, [PD], registry=registry, records=records)
    for i in (1, 2):
        send(bus, incident(i))
    send(bus, incident(1, status="resolved"), INCIDENT_UPDATED)  # forged: the record is open
    send(bus, incident(2, status="resolved"), INCIDENT_UPDATED)  # a person's
    send(bus, incident(3, status="resolved"), INCIDENT_UPDATED)  # no record: as before
    assert n.step(0) == 5
    sent = [(b["dedup_key"], b["event_action"]) for b in hook.delivered("http://pd")]
    assert sent == [
        ("inc-1", "trigger"), ("inc-2", "trigger"), ("inc-2", "resolve"), ("inc-3", "resolve"),
    ]  # fmt: skip
    doubted = {"event": "unconfirmed_resolution"}
    assert registry.get_sample_value("riskstream_notifier_incidents_total", doubted) == 1
    assert bus.records(DEAD) == []


def test_with_a_key_only_signed_incidents_page_anyone() -> None:
    """A forger who can write to the incidents topic could page on-call at will, or
    close real pages; with RISKSTREAM_INCIDENT_KEY the notifier sends signed ones only."""
    signer = RecordSigner([b"s" * 32])
    bus, clock, registry = InMemoryBus(), Clock(), CollectorRegistry()
    hook = Webhook(clock, {})
    n = notifier(bus, clock, hook, [PD], registry=registry, signer=signer)
    send(bus, incident(1))  # unsigned
    for i, key in ((2, b"s" * 32), (3, b"f" * 32)):
        headers, value = encode_cloudevent(INCIDENT_OPENED, f"inc-{i}", "t", "chatbot", incident(i))
        signature = RecordSigner([key]).sign(TOPIC, value, headers)
        bus.producer().produce(TOPIC, value, b"chatbot", [*headers, signature])
    assert n.step(0) == 3
    assert [b["dedup_key"] for b in hook.delivered("http://pd")] == ["inc-2"]
    for event in ("unsigned", "bad_signature"):
        sample = registry.get_sample_value("riskstream_notifier_incidents_total", {"event": event})
        assert sample == 1, event
    assert bus.records(DEAD) == []  # the containment worker dead-letters them


def test_a_receiver_that_hangs_until_its_timeout_holds_no_other() -> None:
    """Posts ran one at a time: while one receiver took its whole timeout to fail, every
    other waited, so a hung receiver let each healthy one have one notification per
    timeout (here 10 to Slack took 10 x 0.2 s). Each receiver is posted to on its own."""
    import threading
    import time

    class Hanging:
        def __init__(self) -> None:
            self.calls: list[tuple[str, float]] = []
            self.lock = threading.Lock()

        def post(self, url: str, body: bytes, timeout: float) -> AttemptResult:
            with self.lock:
                self.calls.append((url, time.monotonic()))
            if url == "http://am":
                time.sleep(0.2)
                return AttemptResult("retryable", "no answer from http://am within 0.2 s")
            return OK

    bus, hook = InMemoryBus(), Hanging()
    settings = NotificationSettings(
        receivers=(AM, SLACK),
        retry=RetryPolicy(max_attempts=1, initial_backoff_s=0.01, max_elapsed_s=5),
        dead_letter_topic=DEAD,
    )
    destinations = [Destination(r, f"http://{r.name}") for r in (AM, SLACK)]
    n = Notifier(
        settings, destinations, TOPIC, bus.consumer(settings.group_id), bus.producer(), hook,
        NotifierMetrics(CollectorRegistry()), time.monotonic, time.sleep, lambda: 0.5,
    )  # fmt: skip
    n.start()
    for i in range(10):
        send(bus, incident(i))
    start = time.monotonic()
    assert n.step(0) == 10
    slack = [at - start for url, at in hook.calls if url == "http://slack"]
    assert len(slack) == 10
    assert slack[-1] < 0.15, f"the 10th Slack notification went out after {slack[-1]:.2f} s"
    assert len(bus.records(DEAD)) == 10  # am: down after one try, then one try each
