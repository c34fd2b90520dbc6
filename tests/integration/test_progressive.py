"""Progressive shifts on a real broker and a real Redis: steps the router honours per
request key, a failed step rolled back with an incident of its own, and a shift that
outlives a restart of the containment worker (faust, a child process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.kafka.bus import KafkaBus, KafkaProducer, KafkaSettings
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.core.routing import RoutingFlag
from riskstream.errors import BusError
from riskstream.metrics import ContainmentMetrics
from riskstream.router import Router
from riskstream.services.containment import ContainmentService
from riskstream.validation import validator_for
from support import (
    START,
    ContainmentProcess,
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


def _yaml(steps: str, dwell: float) -> str:
    return f"""
models:
  chatbot: {{fallback_version: canned-v1}}
playbooks:
  - name: safety
    match: {{type: safety, severity: critical}}
    actions:
      - kind: route-to-version
        version: last-known-good
        targets: [fallback]
        steps: {steps}
        dwell: {dwell}
"""


def _setup(tmp_path: Path, name: str, bootstrap: str, steps: str, dwell: float) -> Setup:
    setup = make_setup(tmp_path, name, extra_yaml=_yaml(steps, dwell))
    create_topics(bootstrap, setup.topics.values(), partitions=1)
    return setup


def _deployed(bootstrap: str, setup: Setup, flags: RedisFlagStore) -> RoutingFlag:
    send_by_subject(
        bootstrap, setup.topics["change"],
        deploy("d1", "chatbot", "bot-1.4", START), deploy("d2", "chatbot", "bot-1.5", START + 60),
    )  # fmt: skip
    wait_for("the deploys", lambda: (f := flags.get("chatbot")) and f.revision == 2)
    before = flags.get("chatbot")
    assert before is not None
    return before


def test_a_step_whose_analysis_fails_puts_traffic_back_and_opens_an_incident(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = _setup(tmp_path, unique("steps"), kafka_bootstrap, "[10, 50, 100]", 3600)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    records = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    router = Router(redis_url, namespace=namespace)
    worker = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "worker.log", namespace
    )
    try:
        before = _deployed(kafka_bootstrap, setup, flags)
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], incident("inc-1", "chatbot"))
        step = router.wait_for("chatbot", 3, timeout=60)
        assert (step.version, step.traffic_fraction, step.previous_version) == (
            "bot-1.4", 0.1, "bot-1.5"
        )  # fmt: skip
        # Per user: about a tenth on bot-1.4, each user on the same side every time.
        users = [f"user-{n:05d}" for n in range(2000)]
        served = [router.route("chatbot", key=u).version for u in users]
        assert served == [router.route("chatbot", key=u).version for u in users]
        assert 100 < served.count("bot-1.4") < 300 and served.count("bot-1.5") > 1700
        # The monitors, on the target's traffic, find bot-1.4 failing during the dwell.
        sick = incident(
            "inc-sick", "chatbot", type="refusal", severity="warning",
            stream_key="chatbot|bot-1.4", monitor="refusal-rate",
        )  # fmt: skip
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], sick)
        back = router.wait_for("chatbot", 4, timeout=60)
        own = wait_for(
            "the failed step's incident",
            lambda: [
                orjson.loads(m.value())
                for m in read_topic(kafka_bootstrap, setup.topics["incidents"], idle=1)
                if orjson.loads(m.value())["monitor"] == "riskstream/step-analysis"
            ],
        )
        audit = flags.audit()
        recorded = records.get("inc-1")
    finally:
        router.close()
        worker.stop()
    # Traffic is back where it was before the shift: bot-1.5, normal, everyone.
    assert (back.version, back.mode, back.traffic_fraction, back.previous_version) == (
        before.active_version, before.mode, 1.0, None
    )  # fmt: skip
    # The audit trail: two deploys, the 10 % step, the rollback that says why.
    shifts = [e.after for e in audit if "active_version" in e.after]
    assert [(s["active_version"], s["traffic_fraction"]) for s in shifts] == [
        ("bot-1.4", 1.0), ("bot-1.5", 1.0), ("bot-1.4", 0.1), ("bot-1.5", 1.0),
    ]  # fmt: skip
    assert shifts[3]["reason"].startswith("rolled back: step 1/3 (10%) of the shift of chatbot")
    assert "new incident inc-sick" in shifts[3]["reason"] and "names bot-1.4" in shifts[3]["reason"]
    assert shifts[3].get("rollout") is None and flags.verify_audit().ok
    # Its own incident, on the incidents topic, valid, naming the target it refused.
    (opened,) = own
    validator_for("incident")(opened)
    assert (opened["type"], opened["severity"], opened["subject"], opened["stream_key"]) == (
        "containment", "critical", "chatbot", "chatbot|bot-1.4"
    )  # fmt: skip
    assert opened["evidence"]["contained_incident"] == "inc-1"
    assert "Traffic is back on bot-1.5 (normal)" in opened["evidence"]["summary"]
    assert recorded is not None
    assert any("step rolled back: rolled back: step 1/3" in e.detail for e in recorded.timeline)


def test_a_shift_outlives_a_restart_of_the_worker_and_resumes(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("ns")
    setup = _setup(tmp_path, unique("resume"), kafka_bootstrap, "[50, 100]", 5)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w1.log", namespace)
    try:
        _deployed(kafka_bootstrap, setup, flags)
        send_by_subject(kafka_bootstrap, setup.topics["incidents"], incident("inc-r", "chatbot"))
        wait_for("the first step", lambda: (f := flags.get("chatbot")) and f.rollout is not None)
    finally:
        worker.kill()  # kill -9 mid-shift: the plan lives in the flag
    assert flags.get("chatbot").traffic_fraction == 0.5
    restarted = ContainmentProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "w2.log", namespace
    )
    try:
        # (after the killed member's session times out and the group rebalances)
        wait_for(
            "the last step",
            lambda: (f := flags.get("chatbot")) and f.traffic_fraction == 1.0,
            timeout=180,
        )
    finally:
        restarted.stop()
    events = [e.after.get("event") or e.after["traffic_fraction"] for e in flags.audit()]
    assert events[2:] == [0.5, "step.resumed", 1.0]  # resumed, dwelt again, then stepped
    assert flags.get("chatbot").active_version == "bot-1.4" and flags.verify_audit().ok


def test_a_flag_stored_before_fractions_reads_as_all_traffic(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    import redis

    from riskstream.adapters.redis.keys import flag_keys

    namespace = unique("ns")
    old = RoutingFlag("chatbot", "bot-1.4", revision=7).to_data()
    del old["traffic_fraction"]  # as an older riskstream wrote it
    client = redis.Redis.from_url(redis_url)
    client.hset(flag_keys(namespace).flags, "chatbot", orjson.dumps(old))
    client.close()
    store = RedisFlagStore.from_url(redis_url, namespace=namespace)
    router = Router(redis_url, namespace=namespace)
    try:
        stored = store.get("chatbot")
        decision = router.wait_for("chatbot", 7, timeout=30)
    finally:
        router.close()
        store.close()
    assert stored is not None and stored.traffic_fraction == 1.0
    assert (decision.version, decision.traffic_fraction) == ("bot-1.4", 1.0)
    assert router.route("chatbot", key="user-1").version == "bot-1.4"


class _BrokerAwayOnce:
    """Two real producers: once ``armed``, the next publish to ``topic`` goes to a broker
    that is not there (its flush raises, as librdkafka reports it); all else to ``up``."""

    def __init__(self, up: KafkaProducer, down: KafkaProducer, topic: str) -> None:
        self._up, self._down, self._topic = up, down, topic
        self.armed, self.failed, self._queued_down = False, 0, False

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = ()
    ) -> None:
        if topic == self._topic and self.armed:
            self._down.produce(topic, value, key, headers)
            self.armed, self._queued_down = False, True
        else:
            self._up.produce(topic, value, key, headers)

    def flush(self, timeout: float | None = None) -> None:
        if self._queued_down:
            self._queued_down, self.failed = False, self.failed + 1
            self._down.flush()  # raises: nobody answers there
        self._up.flush(timeout)


def test_a_rollback_the_broker_did_not_take_is_published_and_reported_by_the_timer(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The rollback of a failed step is written to Redis, then the broker does not take
    its routing change: the next tick publishes it from the outbox (under the same
    change id) and opens the failed step's incident, on the real topics."""
    namespace = unique("ns")
    setup = _setup(tmp_path, unique("away"), kafka_bootstrap, "[10, 50, 100]", 3600)
    url = redis_url
    producer = _BrokerAwayOnce(
        KafkaBus(KafkaSettings.from_env(kafka_bootstrap)).producer(),
        KafkaBus(KafkaSettings.from_env("127.0.0.1:1")).producer(flush_timeout=1.0),
        setup.topics["routing_changes"],
    )
    flags = RedisFlagStore.from_url(url, namespace=namespace)
    records = RedisIncidentStore.from_url(url, namespace=namespace)
    service = ContainmentService(
        setup.config.containment, flags, RedisApprovalStore.from_url(url, namespace=namespace),
        producer, ContainmentMetrics(CollectorRegistry()), incidents=records,
    )  # fmt: skip
    for event in (
        deploy("d1", "chatbot", "bot-1.4", START),
        deploy("d2", "chatbot", "bot-1.5", START + 60),
    ):
        service.on_change_event(event)
    assert service.on_incident(incident("inc-1", "chatbot"))[0] == "applied"
    producer.armed = True  # the deploys and the first step went through; the rollback will not
    sick = incident(
        "inc-sick", "chatbot", type="refusal", severity="warning",
        stream_key="chatbot|bot-1.4", monitor="refusal-rate",
    )  # fmt: skip
    with pytest.raises(BusError):  # handled; the publish failed: the worker retries it
        service.receive_incident(orjson.dumps(sick))
    assert producer.failed == 1
    back = flags.get("chatbot")
    assert back is not None and (back.active_version, back.rollout) == ("bot-1.5", None)

    def published() -> list[dict[str, Any]]:
        return [
            orjson.loads(m.value())
            for m in read_topic(kafka_bootstrap, setup.topics["routing_changes"], idle=1)
        ]

    assert back.revision not in [c["revision"] for c in published()]  # not on the topic
    assert service.run_due() == []  # nothing left to do but publish
    changes = published()
    assert [c["revision"] for c in changes] == [1, 2, 3, back.revision]
    assert changes[-1]["active_version"] == "bot-1.5" and changes[-1].get("rollout") is None
    own = [
        orjson.loads(m.value())
        for m in read_topic(kafka_bootstrap, setup.topics["incidents"], idle=1)
    ]
    assert [i["monitor"] for i in own] == ["riskstream/step-analysis"]
    validator_for("incident")(own[0])
    assert records.get(own[0]["incident_id"]) is not None
    assert service.run_due() == []  # finished: nothing published again
    assert len(published()) == 4
    flags.close()
