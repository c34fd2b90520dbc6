"""Hostile input on a real broker and a real Redis: the processor, the state commands
with the documented ACL, and the checkpoint metrics.  (The pure parts and the
embedded processor face the same table in tests/unit/test_hostile.py.)"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.adapters.redis.keys import STATE_ACL
from riskstream.adapters.redis.state import RedisStateStore
from riskstream.bootstrap import kafka_processor
from riskstream.core.monitors import saved_as_data
from riskstream.core.timeutil import format_time
from riskstream.dead_letters import KEY_KEPT, TRUNCATED_HEADER, VALUE_KEPT
from riskstream.services.state_admin import held_streams, reset_state
from support import (
    CONTAINMENT_YAML,
    START,
    ContainmentProcess,
    create_topics,
    encode,
    make_setup,
    processor_thread,
    produce,
    read_topic,
    sensor_events,
    wait_for,
    wait_until_saved,
)
from support import incident as an_incident

SENSOR = """
monitors:
  - {name: drift, reads: sensor, key: sensor_id, value: value, detector: shift, warmup: 20}
"""


def _reading(sensor: str, i: int, **changes: object) -> dict[str, object]:
    event = {"event_id": f"{sensor}/{i}", "time": format_time(START + i), "sensor_id": sensor,
             "value": 20.0 + (i % 7) / 10}  # fmt: skip
    return {**event, **changes}


def test_hostile_records_on_kafka_are_dead_lettered_or_kept_apart_and_the_partition_flows(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = make_setup(tmp_path, unique("hostile"), monitors_yaml=SENSOR)
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=1)
    good = [(b"s1", orjson.dumps(_reading("s1", i))) for i in range(100)]
    bad: list[tuple[bytes | None, bytes, str]] = [
        (b"s1", b'{"event_id":"\xff\xfe"}', "not_json"),
        (b"s1", b'{"a":' * 2000 + b"1" + b"}" * 2000, "oversize"),  # over max_event_bytes
        (b"s1", b"[" * 1100 + b"]" * 1100, "not_json"),  # too deep, within the size limit
        (b"s1", orjson.dumps(_reading("s1", 900, value=True)), "schema"),
        (b"s1", orjson.dumps(_reading("s1", 901, time="2999-01-01T00:00:00Z")), "time_ahead"),
        (None, orjson.dumps(_reading("s1", 902)), "null_key"),
        (b"\xff", b"", "not_json"),
    ]
    # ids named like state marks, and one with a bar: streams of their own, nothing reset
    odd = [
        (s.encode(), orjson.dumps(_reading(s, i)))
        for i in range(30)
        for s in ("\x18", "\x1e", "a|b")
    ]
    records = good[:50] + [(k, v) for k, v, _ in bad] + odd + good[50:]
    produce(kafka_bootstrap, topics["sensor"], records)

    registry = CollectorRegistry()
    with processor_thread(setup, kafka_bootstrap, redis_url, registry) as worker:
        states = wait_until_saved(redis_url, setup.group, {(topics["sensor"], 0): len(records)})
    assert not worker.is_alive()
    state = states[(topics["sensor"], 0)]
    assert state.counters == {"applied": len(good) + len(odd), "dead_lettered": len(bad)}
    letters = read_topic(kafka_bootstrap, topics["dead_letter"])
    assert sorted(dict(m.headers())["riskstream_reason"].decode() for m in letters) == sorted(
        reason for _, _, reason in bad
    )
    streams = {k.split("\x1f", 1)[1] for k in state.snapshots if k.startswith("drift\x1f")}
    assert {"s1", "\\x18", "\\x1e", "a\\|b"} <= streams
    assert saved_as_data(state.snapshots)["drift\x1fs1"]["n"] == len(good)
    assert registry.get_sample_value("riskstream_state_resets_total", {}) is None


def _produce_huge(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """As a producer that compresses and raised its own limit: what the broker then takes
    is larger than riskstream's producers may send (1,000,000 bytes)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "compression.type": "lz4", "message.max.bytes": 20_000_000}
    )
    for key, value in records:
        producer.produce(topic, value, key)
    assert producer.flush(60) == 0


def test_a_record_too_large_to_copy_is_dead_lettered_cut_and_the_partition_flows(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Copying a 3 MB value (or a 1 MB key) to the dead-letter topic raised
    MSG_SIZE_TOO_LARGE in produce(): the processor stopped, and restarted it read the
    same record and stopped again.  Now the copy is cut, and says so."""
    setup = make_setup(tmp_path, unique("huge"), monitors_yaml=SENSOR)
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=1)
    huge_value = b'{"a":"' + b"x" * 3_000_000 + b'"}'
    records: list[tuple[bytes | None, bytes]] = [
        (b"s1", orjson.dumps(_reading("s1", i))) for i in range(10)
    ]
    records += [(b"s1", huge_value), (b"k" * 1_000_000, orjson.dumps(_reading("s1", 10)))]
    records += [(b"s1", orjson.dumps(_reading("s1", i))) for i in range(11, 20)]
    _produce_huge(kafka_bootstrap, topics["sensor"], records)

    with processor_thread(setup, kafka_bootstrap, redis_url) as worker:
        states = wait_until_saved(redis_url, setup.group, {(topics["sensor"], 0): len(records)})
        assert worker.is_alive()
    assert states[(topics["sensor"], 0)].counters == {"applied": 19, "dead_lettered": 2}
    letters = read_topic(kafka_bootstrap, topics["dead_letter"])
    seen = [
        (dict(m.headers())["riskstream_reason"], len(m.value()), len(m.key()),
         orjson.loads(dict(m.headers())[TRUNCATED_HEADER]))
        for m in letters
    ]  # fmt: skip
    assert seen == [
        (b"oversize", VALUE_KEPT, 2, {"value_bytes": len(huge_value)}),
        (b"key_mismatch", len(records[11][1]), KEY_KEPT, {"key_bytes": 1_000_000}),
    ]


def test_the_state_commands_work_with_the_documented_acl(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    """`riskstream state held/reset` SCAN for partitions; STATE_ACL lacked +scan."""
    user, password = f"rs-state-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", *STATE_ACL.split())
    store = RedisStateStore.from_url(redis_url, username=user, password=password)
    try:
        scope = unique("acl")
        tp = ("sensor-events", 0)
        epoch = store.claim(scope, tp).epoch
        hold = orjson.dumps({"why": "a test", "skipped": 3})
        store.save(scope, tp, epoch, 10, {"applied": 10}, {"drift\x1f\x17s1": hold})
        assert [(m, k) for _, m, k, _ in held_streams(store, scope)] == [("drift", "s1")]
        assert [r.deleted for r in reset_state(store, scope, "drift", "s1")] == [1]
        assert held_streams(store, scope) == []
    finally:
        store.close()
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


def test_a_checkpoint_whose_wait_times_out_is_counted(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """processor.checkpoint_replicas: 1 on a Redis without replicas: each WAIT times
    out; riskstream_checkpoint_unreplicated_total says so."""
    replicas = "  checkpoint_replicas: 1\n  checkpoint_replica_timeout_ms: 20\n"
    setup = make_setup(tmp_path, unique("wait"), monitors_yaml=SENSOR, processor_yaml=replicas)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    records = list(encode(sensor_events(seed=2, sensors=2, per_sensor=50, drifting={})))
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    registry = CollectorRegistry()
    processor = kafka_processor(setup.config, kafka_bootstrap, redis_url, registry)
    assert registry.get_sample_value("riskstream_checkpoint_unreplicated_total") == 0
    consumed = {"topic": setup.topics["sensor"]}
    processor.start()
    try:
        for _ in range(300):  # each step polls up to 1 s: the records are there already
            if registry.get_sample_value("riskstream_events_consumed_total", consumed) == len(
                records
            ):
                break
            processor.step(1.0)
        processor.checkpoint()
    finally:
        processor.close()
    assert registry.get_sample_value("riskstream_events_consumed_total", consumed) == len(records)
    unreplicated = registry.get_sample_value("riskstream_checkpoint_unreplicated_total")
    assert unreplicated is not None and unreplicated >= 1


def test_the_containment_worker_dead_letters_what_is_no_incident_and_keeps_working(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Each of these stopped the worker's agent (an exception out of it); the real
    incident after them was never contained."""
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("intake"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    good = an_incident("inc-1", "chatbot")
    bad = [
        b"[1, 2]",
        orjson.dumps({"type": "safety"}),
        orjson.dumps({**good, "incident_id": "inc-x", "detected_at": "yesterday"}),
        orjson.dumps({**good, "incident_id": "inc-y", "evidence": [1]}),
        orjson.dumps({**good, "incident_id": "inc-z", "suspected_changes": [1]}),
        b"\xff\xfe",
    ]
    produce(kafka_bootstrap, setup.topics["incidents"], [(b"chatbot", v) for v in bad])
    # too large to copy to the dead-letter topic whole: produce() raised and the worker
    # stopped
    huge = b'{"incident_id":"' + b"x" * 3_000_000 + b'"}'
    _produce_huge(kafka_bootstrap, setup.topics["incidents"], [(b"chatbot", huge)])
    produce(kafka_bootstrap, setup.topics["incidents"], [(b"chatbot", orjson.dumps(good))])
    records = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w.log", namespace)
    try:
        wait_for("the real incident handled", lambda: records.get("inc-1") is not None)
        assert worker.process.poll() is None, worker.log()
        assert [records.get(i) for i in ("inc-x", "inc-y", "inc-z")] == [None] * 3
    finally:
        assert worker.stop() == 0, worker.log()
        records.close()
    letters = read_topic(kafka_bootstrap, setup.topics["dead_letter"])
    assert [dict(m.headers())["riskstream_reason"] for m in letters] == [
        b"not_incident", b"not_incident", b"not_incident", b"not_incident", b"not_incident",
        b"not_json", b"not_incident",
    ]  # fmt: skip
    assert [m.value() for m in letters] == [*bad, huge[:VALUE_KEPT]]
    assert orjson.loads(dict(letters[-1].headers())[TRUNCATED_HEADER]) == {"value_bytes": len(huge)}


def test_with_a_key_the_worker_acts_only_on_incidents_a_riskstream_process_signed(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anyone who could write to the incidents topic could fence off a model. With
    RISKSTREAM_INCIDENT_KEY on the worker, what no riskstream process signed (unsigned,
    signed with another key, or a signed record of another topic copied over) is
    dead-lettered, and only the signed incident is recorded and acted on."""
    from confluent_kafka import Producer

    from riskstream.adapters.kafka.bus import KafkaBus
    from riskstream.codec import encode_cloudevent
    from riskstream.config.environment import KafkaSettings
    from riskstream.signing import RecordSigner

    monkeypatch.setenv("RISKSTREAM_INCIDENT_KEY", "the-shared-incident-key-of-this-test-0001")
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("signed"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    incidents_topic = setup.topics["incidents"]

    def cloudevent(incident_id: str) -> tuple[list[tuple[str, bytes]], bytes]:
        data = an_incident(incident_id, "chatbot")
        return encode_cloudevent(
            "io.riskstream.incident.opened", incident_id, data["detected_at"], "chatbot", data
        )

    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    headers, value = cloudevent("inc-unsigned")
    raw.produce(incidents_topic, value, b"chatbot", headers=headers)
    headers, value = cloudevent("inc-other-key")
    other = RecordSigner([b"an-attacker-key-of-at-least-32-chars"]).sign(
        incidents_topic, value, headers
    )
    raw.produce(incidents_topic, value, b"chatbot", headers=[*headers, other])
    headers, value = cloudevent("inc-moved")
    signer = KafkaSettings.from_env(kafka_bootstrap).signer()
    assert signer is not None
    moved = signer.sign(setup.topics["dead_letter"], value, headers)
    raw.produce(incidents_topic, value, b"chatbot", headers=[*headers, moved])
    assert raw.flush(30) == 0
    producer = KafkaBus(KafkaSettings.from_env(kafka_bootstrap)).producer()
    headers, value = cloudevent("inc-signed")
    producer.produce(incidents_topic, value, b"chatbot", headers)
    producer.flush()

    records = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    worker = ContainmentProcess(setup, kafka_bootstrap, redis_url, tmp_path / "w.log", namespace)
    try:
        wait_for("the signed incident handled", lambda: records.get("inc-signed") is not None)
        forged = ("inc-unsigned", "inc-other-key", "inc-moved")
        assert [records.get(i) for i in forged] == [None] * 3
        assert worker.process.poll() is None, worker.log()
    finally:
        assert worker.stop() == 0, worker.log()
        records.close()
    letters = read_topic(kafka_bootstrap, setup.topics["dead_letter"])
    assert [dict(m.headers())["riskstream_reason"] for m in letters] == [
        b"unsigned",
        b"bad_signature",
        b"bad_signature",
    ]
    # the dead letters are the worker's own records: signed, for their own topic
    for letter in letters:
        assert signer.problem(letter.topic(), letter.value(), letter.headers()) is None


def test_the_api_on_redis_addresses_a_model_id_with_a_slash_and_refuses_hostile_requests(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    from api_support import ApiProcess, write_tokens

    token = "rs_hostile_operator_token_0001"
    tokens = write_tokens(tmp_path / "tokens.yaml", {"ana": ("operator", token)})
    setup = make_setup(tmp_path, unique("api"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", unique("ns"))
    try:
        put = api.call("PUT", "/api/v1/flags/team/bot", token, {"version": "v1", "reason": "x"})
        assert put.status == 200, put.text
        for path in ("/api/v1/flags/team/bot", "/api/v1/flags/team%2Fbot"):
            got = api.call("GET", path, token)
            assert (got.status, got.body["model_id"]) == (200, "team/bot"), got.text
        attacks: list[tuple[str, str, bytes | None, int]] = [
            ("PUT", "/api/v1/flags/a%00b", b'{"version": "v1", "reason": "x"}', 400),
            ("PUT", "/api/v1/flags/x", b"\xff\xfe", 400),
            ("PUT", "/api/v1/flags/x", b'{"version": "' + b"v" * 70_000 + b'"}', 413),
            ("GET", "/api/v1/incidents?limit=1e9", None, 400),
            ("GET", "/api/v1/incidents/..%2F..%2Fetc%2Fpasswd", None, 404),
            ("GET", "/static/%2e%2e/%2e%2e/etc/passwd", None, 404),
        ]
        for method, path, body, want in attacks:
            request = urllib.request.Request(
                api.url + path, data=body, method=method,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
            assert status == want, (method, path, status)
        assert api.call("GET", "/api/v1/health").status == 200
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
