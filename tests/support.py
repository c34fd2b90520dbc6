"""Helpers shared by the integration tests: topics, configs, data, processes.

Imported as ``support`` (pytest's ``pythonpath`` setting in pyproject.toml puts this
folder on ``sys.path``).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.redis.state import RedisStateStore
from riskstream.bootstrap import embedded_processor, kafka_processor
from riskstream.config import Config, load_config
from riskstream.core.dedup import IDS_PREFIX
from riskstream.core.monitors import saved_as_data
from riskstream.core.state_keys import LIMITS_KEY, SPEC_MARK, STATE_KEY_SEPARATOR
from riskstream.core.timeutil import format_time

START = 1_795_687_200.0

MONITORS_YAML = """
monitors:
  - name: value-drift
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: page-hinkley, delta: 0.5, threshold: 25, min_instances: 1}
    warmup: 300
    incident_type: sensor-drift
  - name: value-adwin
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: adwin, delta: 0.00001}
    warmup: 300
    incident_type: sensor-drift
"""


@dataclass(frozen=True)
class Setup:
    """One test's private topics, group and config file."""

    config_path: Path
    config: Config
    topics: dict[str, str]
    group: str


LABEL_MONITOR_YAML = """
labels: {ttl_days: 30, positive: [malignant]}
monitors:
  - name: missed
    reads: label
    key: model_id
    subject: model_id
    value: missed
    detector: {kind: page-hinkley, threshold: 50}
"""
"""One label monitor, so that a processor stores predictions and joins labels."""


def make_setup(
    tmp_path: Path,
    name: str,
    *,
    monitors_yaml: str = MONITORS_YAML,
    extra_yaml: str = "",
    checkpoint_interval_ms: int = 500,
    processor_yaml: str = "",
) -> Setup:
    topics = {
        kind: f"{name}-{kind}"
        for kind in (
            "inference", "sensor", "label", "change", "incidents", "routing_changes", "dead_letter"
        )
    }  # fmt: skip
    text = "version: 1\ntopics:\n" + "".join(f"  {k}: {v}\n" for k, v in topics.items())
    text += (
        f"processor:\n  group_id: {name}-group\n"
        f"  checkpoint_interval_ms: {checkpoint_interval_ms}\n"
        f"  checkpoint_events: 20000\n  max_event_bytes: 4096\n"
        # Forked writers whatever the state's size (auto would save these small states
        # inline): the tests on real brokers and Redis exercise the riskier path.
        f"  checkpoint_writer: fork\n"
    ) + processor_yaml
    text += extra_yaml + monitors_yaml
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return Setup(path, load_config(path), topics, f"{name}-group")


def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = 2, replication: int = 1
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, replication) for n in names])
    for future in futures.values():
        future.result(timeout=30)


def sensor_events(
    seed: int, sensors: int, per_sensor: int, drifting: dict[int, int], shift: float = 1.0
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Interleaved readings; sensor i in ``drifting`` shifts by ``shift`` sd from that step."""
    rng = random.Random(seed)
    for t in range(per_sensor):
        for s in range(sensors):
            sensor_id = f"s-{s:04d}"
            mean = 20.0 + s % 7 + (shift if t >= drifting.get(s, per_sensor + 1) else 0.0)
            yield (
                sensor_id,
                {
                    "event_id": f"{sensor_id}/{t}",
                    "time": format_time(START + t),
                    "sensor_id": sensor_id,
                    "value": round(rng.gauss(mean, 1.0), 4),
                    "unit": "degC",
                    "quality": "good",
                },
            )


def produce(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True}
    )
    n = 0
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return n


def send_by_subject(bootstrap: str, topic: str, *events: dict[str, Any]) -> None:
    """Produce events as JSON, each keyed by its ``subject``."""
    produce(bootstrap, topic, [(str(e["subject"]).encode(), orjson.dumps(e)) for e in events])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true, and return that; fail the test
    with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def encode(events: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[tuple[bytes, bytes]]:
    for key, event in events:
        yield key.encode(), orjson.dumps(event)


def read_topic(bootstrap: str, topic: str, idle: float = 3.0, timeout: float = 60.0) -> list[Any]:
    """Every message on ``topic`` from the start, until none came for ``idle`` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last < idle:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    out.append(msg)
                    last = time.monotonic()
    finally:
        consumer.close()
    return out


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def saved_offsets(redis_url: str, scope: str, tps: Iterable[tuple[str, int]]) -> dict[Any, Any]:
    store = RedisStateStore.from_url(redis_url)
    try:
        return {tp: store.peek(scope, tp) for tp in tps}
    finally:
        store.close()


def wait_until_saved(
    redis_url: str, scope: str, ends: dict[tuple[str, int], int], timeout: float = 120.0
) -> dict[Any, Any]:
    """Poll the state store until every partition's saved offset reached its end."""
    deadline = time.monotonic() + timeout
    while True:
        states = saved_offsets(redis_url, scope, ends)
        if all(states[tp].offset == end for tp, end in ends.items() if end > 0):
            return states
        if time.monotonic() > deadline:
            got = {tp: s.offset for tp, s in states.items()}
            raise AssertionError(f"saved offsets {got} never reached {ends}")
        time.sleep(0.2)


@contextmanager
def processor_thread(
    setup: Setup,
    bootstrap: str,
    redis_url: str,
    registry: CollectorRegistry | None = None,
    join_s: float = 30.0,
) -> Iterator[threading.Thread]:
    """The Kafka processor of ``setup`` running in a thread of this process until the
    block ends; yields the thread, so a test can check that it stopped."""
    registry = CollectorRegistry() if registry is None else registry
    processor = kafka_processor(setup.config, bootstrap, redis_url, registry)
    stop = threading.Event()
    worker = threading.Thread(target=processor.run, args=(stop.is_set,), daemon=True)
    processor.start()
    worker.start()
    try:
        yield worker
    finally:
        stop.set()
        worker.join(join_s)


def embedded_run(setup: Setup, topic_records: dict[str, list[tuple[bytes | None, bytes]]]) -> Any:
    """The uninterrupted reference: the same records through the embedded pipeline.

    Records of different topics are fed topic by topic; within a topic, in order.
    """
    bus = InMemoryBus()
    producer = bus.producer()
    for topic, records in topic_records.items():
        for key, value in records:
            producer.produce(topic, value, key)
    incidents: list[dict[str, Any]] = []
    processor = embedded_processor(setup.config, bus, on_incident=incidents.append)
    processor.start()
    while processor.step(0):
        pass
    state: dict[str, Any] = {}
    for per_partition in processor.state().values():
        state.update(per_partition)
    state.pop(LIMITS_KEY, None)  # per partition: see redis_state
    counters = processor.counters()
    processor.close()
    return incidents, state, counters


def _bookkeeping(state_key: str) -> bool:
    """The ids seen lately (chunked per checkpoint) and the monitors' fingerprints: saved
    with the state, but not detector state an unbroken run would hold the same way."""
    return state_key.startswith(IDS_PREFIX) or state_key.endswith(STATE_KEY_SEPARATOR + SPEC_MARK)


def redis_state(redis_url: str, scope: str, tps: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Every stream's saved state, merged over the partitions, for comparing with
    :func:`embedded_run` (one partition): the partition's own bookkeeping (its stream
    limits' clock and counts, ``LIMITS_KEY``) differs with the partitioning, so it is left out.
    """
    merged: dict[str, Any] = {}
    for state in saved_offsets(redis_url, scope, tps).values():
        merged.update(
            {k: v for k, v in saved_as_data(state.snapshots).items() if not _bookkeeping(k)}
        )
    merged.pop(LIMITS_KEY, None)
    return dict(sorted(merged.items()))


class RiskstreamProcess:
    """A ``riskstream`` command as a child process, its output in a log file."""

    def __init__(
        self, args: Sequence[str], log_path: Path, command: Sequence[str] = ("-m", "riskstream")
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *command, *args], stdout=self._log, stderr=subprocess.STDOUT
        )

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def log(self) -> str:
        """The end of the log: enough to see why a test failed."""
        return self.log_path.read_text(errors="replace")[-5000:]


class ProcessorProcess(RiskstreamProcess):
    """``riskstream run processor``, for crash and pause tests."""

    def __init__(
        self,
        setup: Setup,
        bootstrap: str,
        redis_url: str,
        log_path: Path,
        poll_ms: int = 6000,
        command: Sequence[str] = ("-m", "riskstream"),
    ) -> None:
        super().__init__(
            ["run", "processor", "--config", str(setup.config_path), "--bootstrap", bootstrap,
             "--redis-url", redis_url, "--metrics-port", "0",
             "--max-poll-interval-ms", str(poll_ms)],
            log_path,
            command,
        )  # fmt: skip


CONTAINMENT_YAML = """
models:
  chatbot: {fallback_version: canned-v1}
  diagnosis: {known_good: dx-2.0}
playbooks:
  - name: safety
    match: {type: safety}
    actions:
      - {kind: route-to-version, version: last-known-good, revert_on_resolve: true}
  - name: clinical
    match: {subject: diagnosis}
    actions:
      - {kind: human-review}
      - kind: route-to-version
        version: last-known-good
        approval: {required: true, timeout: 3600}
"""


class ContainmentProcess(RiskstreamProcess):
    """``riskstream run containment`` (the faust worker)."""

    def __init__(
        self,
        setup: Setup,
        bootstrap: str,
        redis_url: str,
        log_path: Path,
        namespace: str,
        *extra: str,
    ) -> None:
        super().__init__(
            ["run", "containment", "--config", str(setup.config_path), "--bootstrap", bootstrap,
             "--redis-url", redis_url, "--metrics-port", "0", "--namespace", namespace,
             "--app-id", f"{setup.group}-containment", *extra],
            log_path,
        )  # fmt: skip


def incident(incident_id: str, subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "type": "safety",
        "severity": "critical",
        "status": "open",
        "subject": subject,
        "monitor": "harmful-rate-by-group",
        "stream_key": f"{subject}|group-b",
        "detected_at": format_time(START + 3600),
        "onset_at": format_time(START + 3000),
        "evidence": {},
        **extra,
    }


def deploy(event_id: str, model: str, version: str, at: float) -> dict[str, Any]:
    return {
        "event_id": event_id, "time": format_time(at), "kind": "deploy", "subject": model,
        "version": version, "actor": "ci-bot", "description": "weekly release",
    }  # fmt: skip
