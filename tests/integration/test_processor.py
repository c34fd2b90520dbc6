"""The processor on a real broker and a real Redis: incidents, checkpoints, dead letters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from support import (
    create_topics,
    embedded_run,
    encode,
    end_offsets,
    make_setup,
    processor_thread,
    produce,
    read_topic,
    redis_state,
    sensor_events,
    wait_until_saved,
)


def test_incidents_reach_the_topic_as_cloudevents_and_state_is_saved_with_offsets(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = make_setup(tmp_path, unique("proc"))
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values())
    records = list(encode(sensor_events(seed=5, sensors=6, per_sensor=2000, drifting={2: 1200})))
    produce(kafka_bootstrap, topics["sensor"], records)

    registry = CollectorRegistry()
    with processor_thread(setup, kafka_bootstrap, redis_url, registry) as worker:
        ends = end_offsets(kafka_bootstrap, topics["sensor"], 2)
        states = wait_until_saved(redis_url, setup.group, ends)
    assert not worker.is_alive()

    applied = sum(s.counters.get("applied", 0) for s in states.values())
    assert applied == len(records) == sum(ends.values())

    incidents = read_topic(kafka_bootstrap, topics["incidents"])
    expected, expected_state, _ = embedded_run(setup, {topics["sensor"]: records})
    assert {m.key() for m in incidents} == {b"s-0002"}
    assert sorted(orjson.loads(m.value())["incident_id"] for m in incidents) == sorted(
        i["incident_id"] for i in expected
    )
    headers = dict(incidents[0].headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"io.riskstream.incident.opened"
    assert headers["ce_id"] == orjson.loads(incidents[0].value())["incident_id"].encode()
    assert redis_state(redis_url, setup.group, ends) == expected_state

    assert registry.get_sample_value(
        "riskstream_events_applied_total", {"topic": topics["sensor"]}
    ) == len(records)
    assert registry.get_sample_value("riskstream_streams") == 0  # released on shutdown
    # The state above was saved by a forked writer (make_setup: checkpoint_writer fork):
    # the loop saw its report land; the child encoded and saved.
    assert registry.get_sample_value("riskstream_checkpoint_landed_seconds_count")
    for phase in ("encode", "save"):
        assert registry.get_sample_value(
            "riskstream_checkpoint_writer_seconds_total", {"phase": phase}
        )


def test_each_kind_of_bad_input_lands_on_the_dead_letter_topic_once_with_its_reason(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = make_setup(tmp_path, unique("poison"), extra_yaml="known_subjects: [s-0000]\n")
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=1)
    good = dict(next(sensor_events(seed=1, sensors=1, per_sensor=1, drifting={}))[1])
    bad: list[tuple[bytes | None, bytes, str]] = [
        (b"s-0000", b"{not json", "not_json"),
        (b"s-0000", orjson.dumps({**good, "value": "hot"}), "schema"),
        (b"s-0000", orjson.dumps(good)[:-1] + b', "extra": NaN}', "nan_or_infinity"),
        (b"s-0000", orjson.dumps({**good, "unit": "x" * 5000}), "oversize"),
        (None, orjson.dumps(good), "null_key"),
        (b"s-9999", orjson.dumps({**good, "sensor_id": "s-9999"}), "unknown_subject"),
    ]
    items = [(b"s-0000", orjson.dumps(good))] + [(k, v) for k, v, _ in bad]
    items.append((b"s-0000", orjson.dumps({**good, "event_id": "last"})))
    produce(kafka_bootstrap, topics["sensor"], items)

    with processor_thread(setup, kafka_bootstrap, redis_url):
        states = wait_until_saved(redis_url, setup.group, {(topics["sensor"], 0): len(items)})

    counters = states[(topics["sensor"], 0)].counters
    assert counters == {"applied": 2, "dead_lettered": len(bad)}
    letters = read_topic(kafka_bootstrap, topics["dead_letter"])
    got = sorted(
        (dict(m.headers())["riskstream_reason"].decode(), m.value(), m.key()) for m in letters
    )
    assert got == sorted((reason, value, key) for key, value, reason in bad)
    sources = [orjson.loads(dict(m.headers())["riskstream_source"]) for m in letters]
    assert sorted(s["offset"] for s in sources) == list(range(1, len(bad) + 1))
    assert {s["topic"] for s in sources} == {topics["sensor"]}
