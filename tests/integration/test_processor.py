"""The processor on a real broker and a real Redis: incidents, checkpoints, dead letters."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import redis
from prometheus_client import CollectorRegistry

from riskstream.adapters.redis.changes import RedisChangeLog
from riskstream.adapters.redis.client import RedisClient
from riskstream.bootstrap import change_retention_s, kafka_processor
from riskstream.core.monitors import saved_as_data
from riskstream.core.timeutil import format_time
from support import (
    LABEL_MONITOR_YAML,
    START,
    create_topics,
    embedded_run,
    encode,
    end_offsets,
    make_setup,
    processor_thread,
    produce,
    read_topic,
    redis_state,
    send_by_subject,
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


DRIFT = """
monitors:
  - {name: drift, reads: sensor, key: sensor_id, value: value, detector: shift, warmup: 20}
"""


def test_a_record_keyed_by_another_subject_is_dead_lettered_and_starts_no_second_stream(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Kafka places a record by its key; s-0000's readings keyed as other sensors land on
    whichever partitions those keys pick, where they would start a second s-0000 (on
    another processor: two alarms).  Refused as key_mismatch instead; keyed right, applied."""
    setup = make_setup(tmp_path, unique("keyed"), monitors_yaml=DRIFT)
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=2)
    readings = [event for _, event in sensor_events(seed=3, sensors=1, per_sensor=60, drifting={})]
    wrong = [f"s-{n:04d}".encode() for n in range(1, 9)]  # 8 keys: both partitions, surely
    items = [(b"s-0000", orjson.dumps(e)) for e in readings[:50]]
    items += [(key, orjson.dumps(e)) for key, e in zip(wrong, readings[50:58], strict=True)]
    items += [(b"s-0000", orjson.dumps(e)) for e in readings[58:]]
    produce(kafka_bootstrap, topics["sensor"], items)

    registry = CollectorRegistry()
    with processor_thread(setup, kafka_bootstrap, redis_url, registry):
        states = wait_until_saved(
            redis_url, setup.group, end_offsets(kafka_bootstrap, topics["sensor"], 2)
        )

    letters = read_topic(kafka_bootstrap, topics["dead_letter"])
    assert sorted((m.key(), m.value()) for m in letters) == sorted(items[50:58])
    for m in letters:
        headers = dict(m.headers())
        assert headers["riskstream_reason"] == b"key_mismatch"
        assert (
            headers["riskstream_error"]
            .decode()
            .startswith(
                f"keyed {m.key().decode()!r} but sensor_id is 's-0000'; key events by sensor_id"
            )
        )
    sources = [orjson.loads(dict(m.headers())["riskstream_source"]) for m in letters]
    assert {s["partition"] for s in sources} == {0, 1}  # the wrong keys reached both
    assert registry.get_sample_value(
        "riskstream_events_dead_lettered_total",
        {"topic": topics["sensor"], "reason": "key_mismatch"},
    ) == len(wrong)
    streams = {tp: s.snapshots["drift\x1fs-0000"] for tp, s in states.items()
               if "drift\x1fs-0000" in s.snapshots}  # fmt: skip
    assert len(streams) == 1  # one partition holds s-0000, and saw every reading keyed right
    (raw,) = streams.values()
    assert saved_as_data({"drift\x1fs-0000": raw})["drift\x1fs-0000"]["n"] == len(readings) - len(
        wrong
    )
    applied = sum(s.counters.get("applied", 0) for s in states.values())
    dead = sum(s.counters.get("dead_lettered", 0) for s in states.values())
    assert (applied, dead) == (len(readings) - len(wrong), len(wrong))


class _RoundTrips:
    """A Redis client that counts its round trips: each command, each pipeline run."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.count = 0

    def pipeline(self, transaction: bool = True) -> Any:
        return _CountedPipeline(self, self.client.pipeline(transaction=transaction))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return attr(*args, **kwargs)

        return counted


class _CountedPipeline:
    def __init__(self, trips: _RoundTrips, pipe: Any) -> None:
        self._trips, self._pipe = trips, pipe

    def execute(self) -> Any:
        self._trips.count += 1
        return self._pipe.execute()

    def __getattr__(self, name: str) -> Any:  # queued commands: no round trip
        return getattr(self._pipe, name)


class _CountedChangeLog:
    """The real Redis change log, counting the calls made on it and their round trips."""

    def __init__(self, log: RedisChangeLog, trips: _RoundTrips) -> None:
        self._log, self._trips = log, trips
        self.calls: list[tuple[str, int, int]] = []  # (method, changes, round trips)

    def add(self, change: Mapping[str, Any]) -> None:
        before = self._trips.count
        self._log.add(change)
        self.calls.append(("add", 1, self._trips.count - before))

    def add_many(self, changes: Sequence[Mapping[str, Any]]) -> None:
        before = self._trips.count
        self._log.add_many(changes)
        self.calls.append(("add_many", len(changes), self._trips.count - before))

    def between(self, subjects: Sequence[str], start: float, end: float) -> list[dict[str, Any]]:
        return self._log.between(subjects, start, end)

    def close(self) -> None:
        self._log.close()


def test_a_batch_stores_its_changes_in_two_round_trips_and_its_incident_lists_them(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Each change event took its own 2 round trips to Redis: a flood of them (CI gone
    wrong, or on purpose) went at ~1.3k events/s and held up every other topic of the
    processor.  A batch's changes now take two in all; stored before any other event of
    the batch is applied, so an incident raised in that batch still lists them."""
    setup = make_setup(
        tmp_path, unique("chgbatch"), monitors_yaml=DRIFT, processor_yaml="  batch_size: 400\n"
    )
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=1)
    changes = [
        {"event_id": f"chg-{i}", "time": format_time(START + 50 + i), "kind": "deploy",
         "subject": "s-0000", "version": f"v{i}"}
        for i in range(100)
    ]  # fmt: skip
    send_by_subject(kafka_bootstrap, topics["change"], *changes)
    readings = sensor_events(seed=3, sensors=1, per_sensor=300, drifting={0: 150}, shift=3.0)
    produce(kafka_bootstrap, topics["sensor"], [(k.encode(), orjson.dumps(e)) for k, e in readings])

    processor = kafka_processor(setup.config, kafka_bootstrap, redis_url, CollectorRegistry())
    trips = _RoundTrips(redis.Redis.from_url(redis_url))
    namespace, retention = setup.config.processor.group_id, change_retention_s(setup.config)
    log = _CountedChangeLog(RedisChangeLog(cast(RedisClient, trips), namespace, retention), trips)
    processor._changes.close()
    processor._changes = log
    processor.start()
    try:
        batch = 0
        for _ in range(5):  # the first poll may end with the assignment
            if batch := processor.step(poll_timeout=20.0):
                break
    finally:
        processor.close()
    assert batch == 400  # the 100 changes and the 300 readings: one batch

    assert log.calls == [("add_many", 100, 2)]
    (incident,) = [
        orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics["incidents"])
    ]
    suspects = [c["event_id"] for c in incident["suspected_changes"]]
    assert "chg-99" in suspects, suspects


def test_a_batch_of_labels_reads_its_predictions_in_one_round_trip(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Each label read its prediction with a GET of its own: a flood of labels went
    through one processor at ~5-9k events/s.  A batch's labels now read theirs with one
    MGET, and every label still joins its prediction, stored in Redis batches before."""
    setup = make_setup(
        tmp_path,
        unique("lblbatch"),
        monitors_yaml=LABEL_MONITOR_YAML,
        processor_yaml="  batch_size: 400\n",
    )
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=1)
    stamp = [format_time(START + i) for i in range(300)]
    predictions = [
        {"event_id": f"p{i}", "time": stamp[i], "model_id": "dx", "prediction_id": f"pred-{i}",
         "prediction": {"label": "malignant" if i % 3 else "benign"}}
        for i in range(300)
    ]  # fmt: skip
    labels = [
        {"event_id": f"l{i}", "time": stamp[i], "model_id": "dx", "prediction_id": f"pred-{i}",
         "label": "malignant"}
        for i in range(300)
    ]  # fmt: skip
    produce(kafka_bootstrap, topics["inference"], [(b"dx", orjson.dumps(e)) for e in predictions])
    registry = CollectorRegistry()
    processor = kafka_processor(setup.config, kafka_bootstrap, redis_url, registry)
    processor.start()
    try:
        stored = 0
        for _ in range(20):  # the first poll may end with the assignment
            stored += processor.step(poll_timeout=5.0)
            if stored == 300:
                break
        assert stored == 300
        produce(kafka_bootstrap, topics["label"], [(b"dx", orjson.dumps(e)) for e in labels])
        store = processor._predictions
        trips = _RoundTrips(store._client)  # type: ignore[union-attr]
        store._client = trips  # type: ignore[union-attr]
        read = 0
        for _ in range(20):
            read += processor.step(poll_timeout=5.0)
            if read == 300:
                break
    finally:
        processor.close()
    assert read == 300
    assert registry.get_sample_value("riskstream_labels_total", {"outcome": "joined"}) == 300
    assert trips.count <= 3  # one MGET per batch (300 GETs before)
