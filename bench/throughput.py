"""Processor benchmark on a real Kafka broker and a real Redis: throughput, latency, memory.

Not a test: it prints its setup and its figures, and asserts nothing.  One run::

    .venv/bin/python bench/throughput.py [--keys 10000] [--events 1000000] [--partitions 4]
                                         [--baseline-events 20000] [--profile]

Phases (each says on stderr what it is doing; bench/README.md has the long version):

1. services  Kafka and Redis from ``deploy/local/services.py`` (the test launcher), unless
             RISKSTREAM_KAFKA_BOOTSTRAP / RISKSTREAM_REDIS_URL point at running servers.
2. produce   N sensor events over K keys, interleaved (every key gets N/K), event times
             1 ms apart; a few keys shift by 2 sigma late in the stream, so incidents
             happen.  Produced by a child process, so the processor's RSS starts clean.
3. throughput  The real processor (``bootstrap.kafka_processor``), in this process, on
             the main thread: ``start()`` then ``step()`` until every event is applied,
             then one forced checkpoint; the saved offsets in Redis are checked against
             the topic's end.  Wall time and CPU time (``time.process_time``: all threads
             of this process, librdkafka's included) are taken from the first non-empty
             batch to the end of that checkpoint.  The monitor config is the tests'
             MONITORS_YAML (page-hinkley + adwin per sensor) with warmup 20, and
             checkpoint_interval_ms 1000 with checkpoint_events out of reach, so state is
             saved once a second.  ``--runs`` runs, each with a new consumer group (fresh
             state); the median one is detailed.  Before each, up to ``--quiet-wait`` s
             for other work on the (shared) machine to calm down.  Where the wall time
             goes comes from the processor's own metrics (``riskstream_batch_seconds``,
             ``riskstream_checkpoint_seconds``, ``riskstream_processor_phase_seconds``)
             and ``gc.callbacks``.
4. latency   The last run's processor continues in a background thread
             (``processor.run(stop.is_set, --poll-timeout)``), while a child process
             produces live traffic at a fixed rate over the same keys.  Every so often it
             picks a fresh probe key (past warm-up) and produces a burst of events
             shifted by +10 sigma.  The child also consumes the incidents topic.
             Measured per probe: from the wall time just before ``producer.produce()`` of
             the event that triggered the incident (found by the incident's
             ``detected_at``, which is that event's time) to the wall time the incident
             came out of the child's ``consume()``.
5. breakdown Each stage of the hot path, timed alone on in-memory data with the state
             run 1 saved: Kafka consume, JSON decode, schema validation, monitors
             (``PartitionDetectors.observe``), detectors alone, snapshot encode, Redis
             save.  Wrapped so that an API change in src/ shows as "n/a".
6. memory    That state loaded under tracemalloc (bytes per key), single streams after
             10,000 events (steady state), and what a checkpoint costs at steady state.
7. baseline  The naive design for comparison: a plain confluent-kafka consumer loop that,
             per event, GETs the key's pickled river ADWIN + PageHinkley from Redis,
             unpickles, updates both, pickles and SETs them back; offsets are committed
             per batch.
8. profile   (``--profile``) cProfile of the processor's step loop on a smaller run (a
             new consumer group on the same topic): the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pickle
import platform
import pstats
import random
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness import (
    CpuWatch,
    Servers,
    cpu_model,
    create_topics,
    delete_keys,
    delete_topics,
    end_offsets,
    fmt_cores,
    git_state,
    local_services,
    mb,
    percentile,
    proc_status,
    progress,
    redis_version,
    run_child,
    sample,
    sigterm_as_interrupt,
    start_servers,
    versions,
    wait_for_quiet,
)

START_MS = 1_795_687_200_000  # 2026-11-26T10:00:00Z, the tests' START, in ms
WARMUP = 20
PH_PARAMS = {"delta": 0.5, "threshold": 25, "min_instances": 1}
ADWIN_PARAMS = {"delta": 0.00001}
DRIFT_SHIFT = 2.0  # sigma, on a few keys late in the pre-produced stream
PROBE_SHIFT = 10.0  # sigma, on the latency probes
PROBE_BURST = 5  # shifted events per probe (page-hinkley alarms on the third)

MONITORS_YAML = f"""
monitors:
  - name: value-drift
    reads: sensor
    key: sensor_id
    value: value
    detector: {{kind: page-hinkley, delta: 0.5, threshold: 25, min_instances: 1}}
    warmup: {WARMUP}
    incident_type: sensor-drift
  - name: value-adwin
    reads: sensor
    key: sensor_id
    value: value
    detector: {{kind: adwin, delta: 0.00001}}
    warmup: {WARMUP}
    incident_type: sensor-drift
"""


# --------------------------------------------------------------------------- data


def key_name(k: int) -> str:
    return f"sensor-{k:05d}"


def key_mean(k: int) -> float:
    return 20.0 + k % 7


class EventMaker:
    """Sensor events whose times are ``START_MS + idx`` ms: unique and increasing."""

    def __init__(self, keys: int, seed: int) -> None:
        from riskstream.core.timeutil import format_time

        self._format = format_time
        self._rng = random.Random(seed)
        self.names = [key_name(k) for k in range(keys)]
        self.keys_b = [n.encode() for n in self.names]
        self.means = [key_mean(k) for k in range(keys)]

    def time_text(self, idx: int) -> str:
        return self._format((START_MS + idx) / 1000)

    def event(self, k: int, step: int, idx: int, shift: float = 0.0) -> tuple[bytes, bytes, str]:
        name = self.names[k]
        t = self.time_text(idx)
        value = round(self._rng.gauss(self.means[k] + shift, 1.0), 4)
        body = {
            "event_id": f"{name}/{step}",
            "time": t,
            "sensor_id": name,
            "value": value,
            "unit": "degC",
            "quality": "good",
        }
        return self.keys_b[k], orjson.dumps(body), t


def drifting_keys(keys: int) -> set[int]:
    return set(range(3, keys, max(keys // 20, 1)))


def probe_keys(keys: int, count: int) -> list[int]:
    """Distinct keys, spread out, none of them a drifting one."""
    skip = drifting_keys(keys)
    out: list[int] = []
    seen: set[int] = set()
    i = 0
    while len(out) < min(count, keys - len(skip)):
        k = (i * 7919 + 11) % keys
        i += 1
        if k in skip or k in seen:
            if i > 10 * keys:
                break
            continue
        seen.add(k)
        out.append(k)
    return out


# --------------------------------------------------------------------------- child processes


def _producer(bootstrap: str, **extra: Any) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **extra})


def _produce_one(producer: Any, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def produce_bulk(bootstrap: str, topic: str, keys: int, per_key: int, seed: int, out: Any) -> None:
    """Child process: the pre-produced stream (interleaved keys, a few drifting late)."""
    maker = EventMaker(keys, seed)
    producer = _producer(
        bootstrap, **{"linger.ms": 50, "batch.num.messages": 10_000, "batch.size": 1_000_000}
    )
    drift, drift_from = drifting_keys(keys), int(per_key * 0.6)
    started = time.perf_counter()
    idx = 0
    for step in range(per_key):
        for k in range(keys):
            shift = DRIFT_SHIFT if k in drift and step >= drift_from else 0.0
            key, value, _ = maker.event(k, step, idx, shift)
            _produce_one(producer, topic, value, key)
            idx += 1
            if idx % 10_000 == 0:
                producer.poll(0)
        if step % max(per_key // 10, 1) == 0:
            progress(f"produce: {idx:,} of {keys * per_key:,} events")
    left = producer.flush(120)
    out.put({"events": idx, "seconds": time.perf_counter() - started, "undelivered": left})


def live_traffic(
    bootstrap: str,
    topic: str,
    incidents_topic: str,
    keys: int,
    first_step: int,
    first_idx: int,
    rate: float,
    seconds: float,
    probes: list[int],
    settle: float,
    drain: float,
    seed: int,
    out: Any,
) -> None:
    """Child process: fixed-rate traffic with probe bursts; times the probes' incidents."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    maker = EventMaker(keys, seed)
    producer = _producer(bootstrap, **{"linger.ms": 5})
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(incidents_topic, 0, OFFSET_END)])
    received: list[tuple[float, bytes]] = []  # (wall time, value)
    stop = threading.Event()

    def read_incidents() -> None:
        while not stop.is_set():
            for msg in consumer.consume(100, 0.05):
                if msg.error() is None:
                    received.append((time.time(), msg.value()))

    reader = threading.Thread(target=read_incidents, daemon=True)
    reader.start()
    time.sleep(1.0)  # let the reader's assignment settle before anything can alarm

    sent_at: dict[str, tuple[int, float]] = {}  # event time -> (probe key, produce wall time)
    probe_due = [settle + i * (seconds - settle) / max(len(probes), 1) for i in range(len(probes))]
    next_probe = 0
    steps = [first_step] * keys
    idx, sent, k = first_idx, 0, 0
    begin = time.perf_counter()
    while (elapsed := time.perf_counter() - begin) < seconds:
        target = int(rate * elapsed)
        while sent < target:
            key, value, _ = maker.event(k, steps[k], idx)
            _produce_one(producer, topic, value, key)
            steps[k] += 1
            idx += 1
            sent += 1
            k = (k + 1) % keys
        while next_probe < len(probes) and elapsed >= probe_due[next_probe]:
            pk = probes[next_probe]
            for _ in range(PROBE_BURST):
                key, value, t = maker.event(pk, steps[pk], idx, PROBE_SHIFT)
                sent_at[t] = (pk, time.time())
                _produce_one(producer, topic, value, key)
                steps[pk] += 1
                idx += 1
            next_probe += 1
        producer.poll(0)
        time.sleep(0.002)
    achieved = sent / (time.perf_counter() - begin)
    producer.flush(30)
    time.sleep(drain)
    stop.set()
    reader.join(5)
    consumer.close()

    first: dict[int, tuple[float, str]] = {}  # probe key -> (latency s, monitor)
    for when, value in received:
        incident = orjson.loads(value)
        hit = sent_at.get(incident.get("detected_at", ""))
        if hit is None:
            continue
        pk, produced = hit
        latency = when - produced
        if pk not in first or latency < first[pk][0]:
            first[pk] = (latency, str(incident.get("monitor")))
    out.put(
        {
            "rate": achieved,
            "background_events": sent,
            "probes_sent": next_probe,
            "incidents_seen": len(received),
            "latencies": sorted(v[0] for v in first.values()),
            "monitors": [v[1] for v in first.values()],
            "cpu": time.process_time(),
        }
    )


# --------------------------------------------------------------------------- config


def write_config(path: Path, run: str, group: str, batch_size: int | None) -> Any:
    from riskstream.config import load_config

    kinds = ("inference", "sensor", "label", "change", "incidents", "routing_changes")
    topics = {kind: f"bench-{run}-{kind}" for kind in (*kinds, "dead_letter")}
    text = "version: 1\ntopics:\n" + "".join(f"  {k}: {v}\n" for k, v in topics.items())
    text += (
        f"processor:\n  group_id: {group}\n"
        + (f"  batch_size: {batch_size}\n" if batch_size else "")
        + "  checkpoint_interval_ms: 1000\n  checkpoint_events: 100000000\n"
        + "  max_event_bytes: 4096\n"
    )
    path.write_text(text + MONITORS_YAML)
    return load_config(path)


# --------------------------------------------------------------------------- phases


class GcWatch:
    """Time spent in the cyclic garbage collector, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            gen = info.get("generation", 2)
            self.seconds[gen] += time.perf_counter() - self._t0
            self.count[gen] += 1

    def __enter__(self) -> GcWatch:
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._callback)


@dataclass
class Throughput:
    events: int
    wall: float
    wall_with_join: float
    cpu: float
    main_thread_cpu: float
    step_seconds: float
    cores: dict[str, float | None]
    registry: Any
    rss_before: int
    rss_after: int
    hwm_after: int
    maxrss_before: int
    maxrss_after: int
    saved_ok: bool
    saved: dict[Any, Any]
    metrics: dict[str, float | None]
    parts: dict[str, float]  # the processor's riskstream_processor_phase_seconds, by phase
    gc: GcWatch
    windows: list[float]  # events/s in each 1 s window


def read_metrics(registry: Any) -> dict[str, float | None]:
    """The processor's own figures, read right after the throughput phase."""
    alarms = sum(
        s.value
        for metric in registry.collect()
        if metric.name == "riskstream_alarms"
        for s in metric.samples
        if s.name.endswith("_total")
    )
    names = (
        "riskstream_state_bytes",
        "riskstream_streams",
        "riskstream_checkpoint_seconds_sum",
        "riskstream_checkpoint_seconds_count",
        "riskstream_batch_seconds_sum",
        "riskstream_batch_seconds_count",
    )
    return {name: sample(registry, name) for name in names} | {"alarms": alarms}


def all_done(processor: Any) -> int:
    return sum(
        c.get("applied", 0) + c.get("dead_lettered", 0) for c in processor.counters().values()
    )


def throughput_phase(
    config: Any, servers: Servers, total: int, ends: dict[Any, int]
) -> tuple[Any, Throughput]:
    from prometheus_client import CollectorRegistry

    from riskstream.adapters.redis.state import RedisStateStore
    from riskstream.bootstrap import kafka_processor

    registry = CollectorRegistry()
    rss_before = proc_status("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    processor = kafka_processor(config, servers.bootstrap, servers.redis_url, registry)
    watch = CpuWatch({"kafka": servers.kafka_pid, "redis": servers.redis_pid})
    t_join = time.perf_counter()
    processor.start()
    first: tuple[float, float, float] | None = None
    step_seconds = 0.0
    last_report = last_progress_t = time.perf_counter()
    last_done = 0
    windows: list[float] = []
    window_start, window_done = 0.0, 0
    gc_watch = GcWatch()
    metrics_at_first: dict[str, float] = {}
    with gc_watch:
        while True:
            t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
            n = processor.step(0.05)
            t1 = time.perf_counter()
            if n and first is None:
                first = (t0, c0, h0)
                metrics_at_first = phase_seconds(registry, {})  # from the second batch on
                window_start = t0
                watch.begin()
            if first is not None:
                step_seconds += t1 - t0
            done = all_done(processor)
            if first is not None and t1 - window_start >= 1.0:
                windows.append((done - window_done) / (t1 - window_start))
                window_start, window_done = t1, done
            if done >= total:
                t2 = time.perf_counter()
                processor.checkpoint()  # the final save, as close() would
                step_seconds += time.perf_counter() - t2
                break
            if done != last_done:
                last_done, last_progress_t = done, t1
            elif t1 - last_progress_t > 90:
                raise RuntimeError(f"no progress for 90 s at {done:,}/{total:,} events")
            if t1 - last_report >= 5 and first is not None:
                last_report = t1
                rate = done / (t1 - first[0])
                last = f", last second {windows[-1]:,.0f}" if windows else ""
                progress(f"throughput: {done:,}/{total:,} events, {rate:,.0f}/s so far{last}")
    t_end, c_end, h_end = time.perf_counter(), time.process_time(), time.thread_time()
    metrics = read_metrics(registry)
    assert first is not None
    cores = watch.end()
    store = RedisStateStore.from_url(servers.redis_url)
    try:
        saved = {tp: store.peek(config.processor.group_id, tp).offset for tp in ends}
    finally:
        store.close()
    result = Throughput(
        events=done,
        wall=t_end - first[0],
        wall_with_join=t_end - t_join,
        cpu=c_end - first[1],
        main_thread_cpu=h_end - first[2],
        step_seconds=step_seconds,
        cores=cores,
        registry=registry,
        rss_before=rss_before,
        rss_after=proc_status("VmRSS"),
        hwm_after=proc_status("VmHWM"),
        maxrss_before=maxrss_before,
        maxrss_after=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        saved_ok=all(saved[tp] == end for tp, end in ends.items() if end > 0),
        saved=saved,
        metrics=metrics,
        parts=phase_seconds(registry, metrics_at_first),
        windows=windows,
        gc=gc_watch,
    )
    return processor, result


@dataclass
class Latency:
    rate: float
    traffic: dict[str, Any]
    cores: dict[str, float | None]
    checkpoint_sum: float | None
    checkpoint_count: float | None


def latency_phase(
    processor: Any,
    registry: Any,
    poll_timeout: float,
    config: Any,
    servers: Servers,
    keys: int,
    per_key: int,
    first_idx: int,
    rate: float,
    seconds: float,
    probes: int,
) -> Latency:
    cp_sum0 = sample(registry, "riskstream_checkpoint_seconds_sum") or 0.0
    cp_cnt0 = sample(registry, "riskstream_checkpoint_seconds_count") or 0.0
    stop = threading.Event()
    worker = threading.Thread(target=processor.run, args=(stop.is_set, poll_timeout), daemon=True)
    worker.start()
    watch = CpuWatch({"kafka": servers.kafka_pid, "redis": servers.redis_pid})
    watch.begin()
    try:
        traffic = run_child(
            live_traffic,
            servers.bootstrap,
            config.topics.sensor,
            config.topics.incidents,
            keys,
            per_key,
            first_idx,
            rate,
            seconds,
            probe_keys(keys, probes),
            3.0,
            3.0,
            4242,
            timeout=seconds + 120,
        )
    finally:
        cores = watch.end()
        stop.set()
        worker.join(60)
    cp_sum = sample(registry, "riskstream_checkpoint_seconds_sum")
    cp_cnt = sample(registry, "riskstream_checkpoint_seconds_count")
    return Latency(
        rate=rate,
        traffic=traffic,
        cores=cores,
        checkpoint_sum=None if cp_sum is None else cp_sum - cp_sum0,
        checkpoint_count=None if cp_cnt is None else cp_cnt - cp_cnt0,
    )


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, process CPU s, result), with the heap so far frozen.

    gc.freeze() keeps the collector from scanning the benchmark's own big lists (and
    the loaded state) again and again, which would charge their size to the stage
    timed; the in-run figures include the collector, separately.
    """
    import gc

    gc.collect()
    gc.freeze()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        return time.perf_counter() - t0, time.process_time() - c0, result
    finally:
        gc.unfreeze()


def breakdown_phase(
    config: Any, servers: Servers, keys: int, per_key: int, ends: dict[Any, int]
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Each hot-path stage alone: rows of (stage, cost, note)."""
    rows: list[tuple[str, str, str]] = []
    notes: list[str] = []

    def attempt(stage: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # an API changed under us: say so, keep going
            rows.append((stage, "n/a", f"{type(exc).__name__}: {str(exc)[:80]}"))

    n_consume = min(200_000, sum(ends.values()))

    def kafka_consume() -> None:
        from confluent_kafka import Consumer

        from riskstream.adapters.kafka.bus import KafkaBus, KafkaSettings

        bus = KafkaBus(KafkaSettings.from_env(servers.bootstrap))
        consumer = bus.consumer(f"bench-consume-{uuid.uuid4().hex[:8]}")
        consumer.subscribe(
            [config.topics.sensor], lambda parts: dict.fromkeys(parts), lambda parts, lost: None
        )
        got, start = 0, None
        while got < n_consume:
            t0, c0 = time.perf_counter(), time.process_time()
            batch = consumer.poll_batch(1000, 1.0)
            if batch and start is None:
                start = (t0, c0)
            got += len(batch)
        assert start is not None
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
        consumer.close()
        rows.append(
            (
                "Kafka consume: KafkaConsumer.poll_batch(1000) -> Records",
                f"{cpu / got * 1e6:.2f} µs CPU/ev",
                f"{got / wall:,.0f} ev/s alone, all threads",
            )
        )
        raw = Consumer(
            {
                "bootstrap.servers": servers.bootstrap,
                "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        raw.subscribe([config.topics.sensor])
        got, start = 0, None
        while got < n_consume:
            t0, c0 = time.perf_counter(), time.process_time()
            msgs = raw.consume(1000, 1.0)
            if msgs and start is None:
                start = (t0, c0)
            for m in msgs:
                m.value()
            got += len(msgs)
        assert start is not None
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
        raw.close()
        rows.append(
            (
                "  of which raw confluent consume(1000) + .value()",
                f"{cpu / got * 1e6:.2f} µs CPU/ev",
                f"{got / wall:,.0f} ev/s alone",
            )
        )

    attempt("Kafka consume", kafka_consume)

    # In-memory records continuing the stream, and the live state from Redis.
    from riskstream.ports import Record

    maker = EventMaker(keys, 99)
    m_events = min(50_000, keys * 5)
    records = []
    idx = keys * per_key + 10_000_000
    for i in range(m_events):
        k = i % keys
        key, value, _ = maker.event(k, per_key + 1000 + i // keys, idx + i)
        records.append(Record(config.topics.sensor, 0, i, key, value))
    events: list[Any] = []

    def decode() -> None:
        from riskstream.bootstrap import build_decoder

        _w, c, _ = timed(lambda: [orjson.loads(r.value) for r in records])
        rows.append(("JSON decode (orjson.loads)", f"{c / m_events * 1e6:.2f} µs/ev", ""))
        decoder = build_decoder(config)
        _w, c, out = timed(lambda: [decoder.decode(r) for r in records])
        events.extend(out)
        rows.append(
            (
                "EventDecoder.decode (size/key checks + JSON + schema)",
                f"{c / m_events * 1e6:.2f} µs/ev",
                "",
            )
        )
        from riskstream.validation import validator_for

        validate = validator_for("sensor-event")
        parsed = [orjson.loads(r.value) for r in records]
        _, c, _ = timed(lambda: [validate(e) for e in parsed])
        rows.append(("  of which schema validation alone", f"{c / m_events * 1e6:.2f} µs/ev", ""))

    attempt("decode", decode)

    def monitors() -> None:
        from riskstream.adapters.redis.state import RedisStateStore
        from riskstream.core.monitors import PartitionDetectors
        from riskstream.core.timeutil import parse_time

        store = RedisStateStore.from_url(servers.redis_url)
        snapshots: dict[str, bytes] = {}
        try:
            for tp in ends:
                snapshots.update(store.peek(config.processor.group_id, tp).snapshots)
            pd = PartitionDetectors(config.monitors, "sensor")
            w, c, _ = timed(lambda: pd.load(snapshots))
            rows.append(
                (
                    "restore state (PartitionDetectors.load, on assign)",
                    f"{c / max(len(snapshots), 1) * 1e6:.1f} µs/stream",
                    f"{len(snapshots):,} streams in {w:.2f} s",
                )
            )
            w, c, _ = timed(lambda: [parse_time(e["time"]) for e in events])
            rows.append(("  parse_time(event['time'])", f"{c / m_events * 1e6:.2f} µs/ev", ""))
            w, c, found = timed(lambda: [pd.observe(e) for e in events])
            rows.append(
                (
                    "monitors: PartitionDetectors.observe (2 monitors)",
                    f"{c / m_events * 1e6:.2f} µs/ev",
                    f"{sum(map(len, found))} findings",
                )
            )
            w, c, changed = timed(pd.take_changed)
            sizes = [len(v) for v in changed.values()]
            rows.append(
                (
                    "checkpoint: take_changed (snapshot + orjson)",
                    f"{c / max(len(changed), 1) * 1e6:.2f} µs/stream",
                    f"{len(changed):,} dirty streams, avg {sum(sizes) / max(len(sizes), 1):,.0f} B",
                )
            )
            scope = f"bench-scratch-{uuid.uuid4().hex[:8]}"
            tp = (config.topics.sensor, 0)
            epoch = store.claim(scope, tp).epoch
            w, c, _ = timed(lambda: store.save(scope, tp, epoch, 1, {"applied": 1}, changed))
            rows.append(
                (
                    "checkpoint: RedisStateStore.save (one Lua call)",
                    f"{w / max(len(changed), 1) * 1e6:.2f} µs/stream wall",
                    f"{c / max(len(changed), 1) * 1e6:.2f} µs/stream client CPU, {w:.2f} s",
                )
            )
            from riskstream.adapters.redis.state import partition_keys

            store._client.delete(*partition_keys(scope, tp))
        finally:
            store.close()

    attempt("monitors", monitors)

    def detectors() -> None:
        from riskstream.core.detectors import make_detector
        from riskstream.core.streams import StreamDetector, StreamSettings

        rng = random.Random(5)
        xs = [rng.gauss(0.0, 1.0) for _ in range(20_000)]
        for kind, params in (("page-hinkley", PH_PARAMS), ("adwin", ADWIN_PARAMS)):
            det = make_detector(kind, params)
            for x in xs[:2000]:
                det.update(x)
            _w, c, _ = timed(lambda det=det: [det.update(x) for x in xs])
            rows.append(
                (
                    f"  detector {kind}.update (riskstream wrapper)",
                    f"{c / len(xs) * 1e6:.2f} µs",
                    "",
                )
            )
            stream = StreamDetector(
                lambda kind=kind, params=params: make_detector(kind, params),
                StreamSettings(warmup=WARMUP),
            )
            for i, x in enumerate(xs[:2000]):
                stream.update(x, float(i))
            _w, c, _ = timed(lambda s=stream: [s.update(x, 1.0) for x in xs])
            rows.append(
                (
                    f"  StreamDetector.update ({kind}: scale, CUSUM, times)",
                    f"{c / len(xs) * 1e6:.2f} µs",
                    "",
                )
            )
            for n in (100, 1_000, 10_000):
                s = StreamDetector(
                    lambda kind=kind, params=params: make_detector(kind, params),
                    StreamSettings(warmup=WARMUP),
                )
                for i in range(n):
                    s.update(xs[i % len(xs)], START_MS / 1000 + i)
                notes.append(
                    f"snapshot size of one {kind} stream after {n:,} events: "
                    f"{len(orjson.dumps(s.snapshot())):,} bytes"
                )
        from river import drift

        ph = drift.PageHinkley(**PH_PARAMS)
        ad = drift.ADWIN(**ADWIN_PARAMS)
        for x in xs[:2000]:
            ph.update(x)
            ad.update(x)
        _w, c, _ = timed(lambda: [ph.update(x) for x in xs])
        rows.append(("  river PageHinkley.update (raw)", f"{c / len(xs) * 1e6:.2f} µs", ""))
        _, c, _ = timed(lambda: [ad.update(x) for x in xs])
        rows.append(("  river ADWIN.update (raw, Rust)", f"{c / len(xs) * 1e6:.2f} µs", ""))

    attempt("detectors", detectors)
    return rows, [n for n in notes if n]


def memory_phase(
    config: Any, servers: Servers, keys: int, per_key: int, ends: dict[Any, int]
) -> dict[str, str]:
    """In-memory state per key: the live state, and single streams at steady state.

    tracemalloc counts Python allocations exactly; River's ADWIN keeps its window in
    Rust, which tracemalloc cannot see, so the RSS delta is given too.
    """
    import gc
    import tracemalloc

    from riskstream.adapters.redis.state import RedisStateStore
    from riskstream.core.detectors import make_detector
    from riskstream.core.monitors import PartitionDetectors
    from riskstream.core.streams import StreamDetector, StreamSettings

    out: dict[str, str] = {}
    store = RedisStateStore.from_url(servers.redis_url)
    try:
        per_tp = [store.peek(config.processor.group_id, tp).snapshots for tp in ends]
    finally:
        store.close()
    n_streams = sum(len(s) for s in per_tp)

    def iter_streams(pd: Any) -> Iterator[Any]:
        """Every StreamDetector of a PartitionDetectors (internals: best effort)."""
        if isinstance(getattr(pd, "streams", None), dict):
            yield from pd.streams.values()
        for monitor in getattr(pd, "_monitors", ()):
            yield from getattr(monitor, "streams", {}).values()

    def rust_bytes(stream: Any) -> int:
        """River's ADWIN keeps its window in Rust: its serialized size as an estimate."""
        det = getattr(getattr(stream, "_detector", None), "_det", None)
        helper = getattr(det, "_helper", None)
        state = helper.__getstate__() if helper is not None else None
        return len(state) if isinstance(state, bytes) else 0

    gc.collect()
    tracemalloc.start()
    held = []
    for snaps in per_tp:
        pd = PartitionDetectors(config.monitors, "sensor")
        pd.load(snaps)
        held.append(pd)
    gc.collect()
    python_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rust = sum(rust_bytes(x) for pd in held for x in iter_streams(pd))
    out["live state in memory"] = (
        f"{python_bytes / keys:,.0f} B per key of Python objects (tracemalloc) + "
        f"{rust / keys:,.0f} B in River's Rust ADWIN windows, loading the "
        f"{n_streams:,} saved streams ({per_key} events/key) into fresh PartitionDetectors"
    )
    del held
    rng = random.Random(3)
    xs = [rng.gauss(0.0, 1.0) for _ in range(10_000)]
    steady: list[Any] = []
    for kind, params in (("page-hinkley", PH_PARAMS), ("adwin", ADWIN_PARAMS)):
        count, n = 50, 10_000
        gc.collect()
        tracemalloc.start()
        streams = []
        for _ in range(count):
            s = StreamDetector(
                lambda kind=kind, params=params: make_detector(kind, params),
                StreamSettings(warmup=WARMUP),
            )
            for i, x in enumerate(xs[:n]):
                s.update(x, START_MS / 1000 + i)
            streams.append(s)
        gc.collect()
        python_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        snap = len(orjson.dumps(streams[0].snapshot()))
        rust = sum(rust_bytes(s) for s in streams)
        out[f"1 {kind} stream, {n:,} ev"] = (
            f"{python_bytes / count:,.0f} B Python (tracemalloc)"
            + (f" + {rust / count:,.0f} B Rust window" if rust else "")
            + f"; snapshot {snap:,} B (steady state: the time index is full)"
        )
        steady.extend(streams)
        del streams

    # A checkpoint at steady state: every stream dirty, each snapshot this size.
    _, c, blobs = timed(lambda: [orjson.dumps(s.snapshot()) for s in steady * 20])
    encode_us = c / len(blobs) * 1e6
    per_partition = 2 * keys // max(len(ends), 1)
    changed = {f"steady\x1f{i}": blobs[i % len(steady)] for i in range(per_partition)}
    size = sum(map(len, changed.values()))
    store = RedisStateStore.from_url(servers.redis_url)
    try:
        from riskstream.adapters.redis.state import partition_keys

        scope, tp = f"bench-steady-{uuid.uuid4().hex[:8]}", (config.topics.sensor, 0)
        epoch = store.claim(scope, tp).epoch
        wall, _, _ = timed(lambda: store.save(scope, tp, epoch, 1, {}, changed))
        store._client.delete(*partition_keys(scope, tp))
    finally:
        store.close()
    total_s = 2 * keys * encode_us / 1e6 + wall * len(ends)
    out["checkpoint at steady state"] = (
        f"encode {encode_us:.1f} µs/stream; RedisStateStore.save of one partition's "
        f"{per_partition:,} streams ({size / 1e6:.1f} MB) {wall * 1000:.0f} ms -> a checkpoint "
        f"of all {2 * keys:,} streams ~{total_s * 1000:.0f} ms and "
        f"{size * len(ends) / 1e6:.0f} MB to Redis, every second"
    )
    return out


def baseline_phase(
    config: Any, servers: Servers, keys: int, per_key: int, n_events: int, run: str
) -> dict[str, Any]:
    """The naive design: per event, GET + unpickle + update + pickle + SET in Redis."""
    import redis
    from confluent_kafka import Consumer
    from river import drift

    client = redis.Redis.from_url(servers.redis_url)
    prefix = f"bench-naive:{run}:"
    rng = random.Random(17)
    warm = min(per_key, 200)
    seeded = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for k in range(keys):
        ad, ph = drift.ADWIN(**ADWIN_PARAMS), drift.PageHinkley(**PH_PARAMS)
        for _ in range(warm):
            x = rng.gauss(key_mean(k), 1.0)
            ad.update(x)
            ph.update(x)
        pipe.set(prefix + key_name(k), pickle.dumps((ad, ph), protocol=pickle.HIGHEST_PROTOCOL))
        if k % 1000 == 999:
            pipe.execute()
    pipe.execute()
    sample_blob = client.get(prefix + key_name(0)) or b""
    progress(
        f"baseline: seeded {keys:,} pickled detector pairs in {time.perf_counter() - seeded:.1f} s"
    )

    producer = _producer(servers.bootstrap, **{"linger.ms": 5})
    consumer = Consumer(
        {
            "bootstrap.servers": servers.bootstrap,
            "group.id": f"bench-naive-{run}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([config.topics.sensor])
    count, alarms = 0, 0
    start: tuple[float, float] | None = None
    deadline = time.perf_counter() + 600
    while count < n_events and time.perf_counter() < deadline:
        msgs = consumer.consume(500, 1.0)
        if msgs and start is None:
            start = (time.perf_counter(), time.process_time())
        for msg in msgs:
            if msg.error() is not None:
                continue
            event = orjson.loads(msg.value())
            x = float(event["value"])
            state_key = prefix + event["sensor_id"]
            blob = client.get(state_key)
            if blob is None:
                ad, ph = drift.ADWIN(**ADWIN_PARAMS), drift.PageHinkley(**PH_PARAMS)
            else:
                ad, ph = pickle.loads(blob)
            ad.update(x)
            ph.update(x)
            if ad.drift_detected or ph.drift_detected:
                alarms += 1
                producer.produce(
                    config.topics.incidents, orjson.dumps({"key": event["sensor_id"]}), msg.key()
                )
            client.set(state_key, pickle.dumps((ad, ph), protocol=pickle.HIGHEST_PROTOCOL))
            count += 1
            if count >= n_events:
                break
        if msgs:
            consumer.commit(asynchronous=False)
    assert start is not None
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    consumer.close()
    producer.flush(30)
    client.close()
    delete_keys(servers.redis_url, prefix + "*")
    return {
        "events": count,
        "wall": wall,
        "cpu": cpu,
        "rate": count / wall,
        "alarms": alarms,
        "blob_bytes": len(sample_blob),
        "warm": warm,
    }


def profile_phase(config_path: Path, servers: Servers, n_events: int, top: int) -> str:
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_processor
    from riskstream.config import load_config

    config = load_config(config_path)
    processor = kafka_processor(config, servers.bootstrap, servers.redis_url, CollectorRegistry())
    processor.start()
    while processor.step(0.5) == 0:  # join the group outside the profile
        pass
    profiler = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    profiler.enable()
    while all_done(processor) < n_events:
        processor.step(0.2)
    profiler.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = all_done(processor)
    processor.close()
    out = io.StringIO()
    out.write(
        f"cProfile of the main thread over {done:,} events ({done / wall:,.0f} events/s "
        f"under the profiler, {cpu / done * 1e6:.1f} µs CPU/event; the profiler inflates "
        "per-call costs, read the ranking, not the absolute times)\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    # pstats pads heavily; keep the table, drop the blank lines.
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


@dataclass
class Report:
    args: argparse.Namespace
    keys: int
    per_key: int
    runs: list[Throughput]
    ends: dict[Any, int]
    lat: Latency | None
    base: dict[str, Any] | None
    rows: list[tuple[str, str, str]]
    notes: list[str]
    prof: str
    mem: dict[str, Any]


def _share(seconds: float, tp: Throughput) -> str:
    return f"{seconds / tp.events * 1e6:.1f} µs/ev = {seconds / tp.wall:.0%} of wall"


def _part(tp: Throughput, label: str) -> str:
    if label not in tp.parts:
        return "n/a (the processor exports no such phase)"
    return f"{_share(tp.parts[label], tp)}  (riskstream_processor_phase_seconds{{{label}}})"


def phase_seconds(registry: Any, since: dict[str, float]) -> dict[str, float]:
    """The processor's own time per phase (``riskstream_processor_phase_seconds``), less
    what it had counted before ``since`` was read."""
    out: dict[str, float] = {}
    for metric in registry.collect():
        if metric.name != "riskstream_processor_phase_seconds":
            continue
        for s in metric.samples:
            if s.name.endswith("_total"):
                phase = s.labels["phase"]
                out[phase] = s.value - since.get(phase, 0.0)
    return out


def print_report(r: Report) -> None:
    keys = r.keys
    by_rate = sorted(r.runs, key=lambda x: x.events / x.wall)
    tp = by_rate[len(by_rate) // 2]  # the median run is the one detailed below
    which = r.runs.index(tp) + 1
    m = tp.metrics
    state_bytes = m["riskstream_state_bytes"]
    streams = m["riskstream_streams"]
    cp_sum = m["riskstream_checkpoint_seconds_sum"] or 0.0
    cp_cnt = m["riskstream_checkpoint_seconds_count"] or 0.0
    bt_sum = m["riskstream_batch_seconds_sum"] or 0.0
    alarms = m["alarms"] or 0.0
    rate = tp.events / tp.wall
    cpu_us = tp.cpu / tp.events * 1e6
    main_us = tp.main_thread_cpu / tp.events * 1e6
    saved = "saved offsets == topic end" if tp.saved_ok else f"SAVED {tp.saved} != {r.ends}"
    goal = "MET" if rate >= 50_000 else "NOT MET"
    poll = tp.parts.get("poll", 0.0)
    rest = tp.step_seconds - bt_sum - cp_sum - poll
    take = tp.parts.get("encode", 0.0)
    save = tp.parts.get("save", 0.0)
    flush = tp.parts.get("flush", 0.0)
    cp_rest = cp_sum - take - save - flush
    w = sorted(tp.windows)
    all_runs = "; ".join(
        f"#{i + 1} {x.events / x.wall:,.0f}/s, {x.cpu / x.events * 1e6:.1f} µs CPU/ev, "
        f"other load {x.cores.get('other') or 0:.2f} cores"
        for i, x in enumerate(r.runs)
    )
    first = r.runs[0]
    rss_growth = first.rss_after - first.rss_before
    table: list[tuple[str, str]] = [
        ("THROUGHPUT (1 processor process)", ""),
        ("runs (fresh group each)", all_runs),
        (f"median run (#{which}), events", f"{tp.events:,} ({saved})"),
        ("wall time", f"{tp.wall:.2f} s, first batch to final checkpoint "
                      f"({tp.wall_with_join:.2f} s with the group join)"),
        ("events/s", f"{rate:,.0f}   (goal >= 50,000: {goal}, {rate / 50_000:.0%} of it)"),
        ("events/s per 1 s window", f"min {w[0] if w else 0:,.0f}, median "
                                    f"{percentile(w, 50):,.0f}, max {w[-1] if w else 0:,.0f}"),
        ("CPU per event", f"{cpu_us:.1f} µs (process, all threads) = main thread "
                          f"{main_us:.1f} + librdkafka/other threads {cpu_us - main_us:.1f}"),
        ("main-thread CPU ceiling", f"{1e6 / main_us:,.0f} events/s if the loop had a core to "
                                    "itself and never waited"),
        ("cores used (avg)", fmt_cores(tp.cores)),
        ("wall per event", f"{tp.wall / tp.events * 1e6:.1f} µs; in step() "
                           f"{tp.step_seconds / tp.events * 1e6:.1f} µs, of which:"),
        ("  poll", _part(tp, "poll")),
        ("  _process", f"{_share(bt_sum, tp)}  (riskstream_batch_seconds: decode, "
                       "monitors, emit)"),
        ("  checkpoints", f"{_share(cp_sum, tp)}  ({cp_cnt:.0f} x "
                          f"{cp_sum / max(cp_cnt, 1) * 1000:.0f} ms, "
                          "riskstream_checkpoint_seconds), of which:"),
        ("    flush", _part(tp, "flush")),
        ("    encode", _part(tp, "encode")),
        ("    save", _part(tp, "save")),
        ("    commit, gauges", f"{_share(cp_rest, tp)}"),
        ("  rest of step()", f"{_share(rest, tp)}  (counters, the gauges' bookkeeping)"),
        ("  garbage collector", f"{_share(sum(tp.gc.seconds), tp)}, included above: "
                                f"{tp.gc.count[0]:,}/{tp.gc.count[1]:,}/{tp.gc.count[2]:,} "
                                f"collections of gen 0/1/2 took {tp.gc.seconds[0]:.2f}/"
                                f"{tp.gc.seconds[1]:.2f}/{tp.gc.seconds[2]:.2f} s"),
        ("incidents emitted", f"{alarms:.0f}"),
        ("MEMORY", ""),
        ("riskstream_streams", "n/a" if streams is None else f"{streams:,.0f}"),
    ]  # fmt: skip
    if state_bytes is not None:
        per_stream = state_bytes / max(streams or 1, 1)
        table.append(
            (
                "riskstream_state_bytes",
                f"{state_bytes:,.0f} B = {state_bytes / keys:,.0f} B per key, "
                f"{per_stream:,.0f} B per stream (encoded snapshots at {r.per_key} events/key)",
            )
        )
    table += [
        ("RSS (VmRSS), run #1", f"{mb(first.rss_before)} before the processor, "
                                f"{mb(first.rss_after)} after: +{rss_growth / keys:,.0f} B per "
                                "key (includes librdkafka's fetch queue, allocator slack)"),
        ("peak RSS, run #1", f"{mb(first.maxrss_before)} -> {mb(first.maxrss_after)}: +"
                             f"{(first.maxrss_after - first.maxrss_before) / keys:,.0f} B per key"),
    ]  # fmt: skip
    for label, value in r.mem.items():
        table.append((label, value))
    if r.lat is not None:
        t = r.lat.traffic
        ls = [x * 1000 for x in t["latencies"]]
        by_monitor: dict[str, int] = {}
        for m in t["monitors"]:
            by_monitor[m] = by_monitor.get(m, 0) + 1
        nan = float("nan")
        cps = r.lat.checkpoint_count or 0
        cp_ms = (r.lat.checkpoint_sum or 0) / max(cps, 1) * 1000
        cores = dict(r.lat.cores)
        if cores.get("other") is not None and t.get("cpu") is not None:
            wall = r.args.latency_seconds + 5.0
            cores["other"] = max((cores["other"] or 0.0) - t["cpu"] / wall, 0.0)
        table += [
            ("LATENCY produce -> incident", ""),
            ("live traffic", f"{t['rate']:,.0f} events/s over {keys:,} keys for "
                             f"{r.args.latency_seconds:.0f} s, plus {t['probes_sent']} probes: "
                             f"bursts of {PROBE_BURST} events at +{PROBE_SHIFT:.0f} sigma"),
            ("probes answered", f"{len(ls)} of {t['probes_sent']} (first incident per probe; "
                                f"by monitor {by_monitor})"),
            ("p50 / p99 / max", f"{percentile(ls, 50):.0f} / {percentile(ls, 99):.0f} / "
                                f"{max(ls, default=nan):.0f} ms (min {min(ls, default=nan):.0f})"),
            ("cores used (avg)", fmt_cores(cores) + f", load generator "
                                 f"{t.get('cpu', 0) / (r.args.latency_seconds + 5):.2f}"),
            ("checkpoints meanwhile", f"{cps:.0f}, mean {cp_ms:.0f} ms"),
        ]  # fmt: skip
    if r.base is not None:
        b = r.base
        ratio = rate / b["rate"]
        table += [
            ("NAIVE BASELINE", ""),
            ("events/s", f"{b['rate']:,.0f} ({b['events']:,} events in {b['wall']:.2f} s; "
                         f"{b['cpu'] / b['events'] * 1e6:.0f} µs CPU/event in the client)"),
            ("state", f"pickle.dumps((ADWIN, PageHinkley)) per key, {b['blob_bytes']:,} B "
                      f"after {b['warm']} updates; 1 GET + 1 SET per event"),
            ("processor / baseline", f"{ratio:.1f}x   (goal >= 10x: "
                                     f"{'MET' if ratio >= 10 else 'NOT MET'})"),
        ]  # fmt: skip
    print("=" * 100)
    print("results")
    print("=" * 100)
    for name, value in table:
        print(f"\n{name}" if not value else f"  {name:<28} {value}")
    if r.rows:
        print(
            "\nWHERE THE TIME GOES (each stage alone on in-memory data, CPU of this process, "
            "collector excluded)"
        )
        for stage, cost, note in r.rows:
            print(f"  {stage:<58} {cost:>22}   {note}".rstrip())
        for note in r.notes:
            print(f"  - {note}")
    if r.prof:
        print("\nPROFILE")
        print(r.prof)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000, help="stream keys (sensors)")
    parser.add_argument("--events", type=int, default=1_000_000, help="pre-produced events")
    parser.add_argument("--partitions", type=int, default=4, help="input topic partitions")
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, help="processor.batch_size (default: config's)")
    parser.add_argument("--latency-rate", type=float, default=5_000, help="live events/s")
    parser.add_argument("--latency-seconds", type=float, default=25.0)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument(
        "--poll-timeout",
        type=float,
        default=0.2,
        help="poll_timeout given to processor.run() in the latency phase (its default: 0.2)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="throughput runs (each a fresh consumer group)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each throughput run, wait up to this many seconds for other work on "
        "the machine to drop below 0.3 cores (0: don't wait)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile a smaller second run")
    parser.add_argument("--profile-events", type=int, default=200_000)
    parser.add_argument(
        "--server-jvm",
        action="store_true",
        help="run the broker started here with Kafka's server JVM flags instead of the "
        "test launcher's fast-start ones (overrides services.KAFKA_JVM_OPTS in-process)",
    )
    parser.add_argument(
        "--skip", default="", help="comma list of: latency,breakdown,memory,baseline"
    )
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    keys, per_key = args.keys, max(args.events // args.keys, 1)
    total = keys * per_key
    if per_key <= WARMUP:
        progress(f"warning: {per_key} events per key is within the warm-up ({WARMUP})")
    run = uuid.uuid4().hex[:8]
    began = time.perf_counter()

    with sigterm_as_interrupt():
        progress("starting services...")
        servers = start_servers(args.server_jvm)
        try:
            return _run(args, skip, servers, run, keys, per_key, total, began)
        except KeyboardInterrupt:
            progress("interrupted: stopping the servers")
            return 130
        finally:
            import gc

            gc.collect()  # close the Kafka clients still referenced from cycles first
            servers.stop()
            progress(f"done in {time.perf_counter() - began:.0f} s; servers started here stopped")


def _run(
    args: argparse.Namespace,
    skip: set[str],
    servers: Servers,
    run: str,
    keys: int,
    per_key: int,
    total: int,
    began: float,
) -> int:
    workdir = servers.workdir
    group = f"bench-{run}-processor"
    config = write_config(workdir / "bench.yaml", run, group, args.batch_size)
    topics = {getattr(config.topics, k): 1 for k in ("inference", "label", "change")}
    topics |= {config.topics.sensor: args.partitions, config.topics.incidents: 1}
    topics |= {config.topics.dead_letter: 1, config.topics.routing_changes: 1}
    create_topics(servers.bootstrap, topics)
    vers = versions()
    load_avg = Path("/proc/loadavg").read_text().split()[:3]

    print("=" * 100)
    print("riskstream processor benchmark: setup")
    print("=" * 100)
    setup = [
        ("machine", f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}"),
        ("memory", mb(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))),
        ("load average at start", " ".join(load_avg) + "  (other work on the box skews figures)"),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in vers.items())),
        ("src", git_state()),
        ("kafka broker", f"Apache Kafka {local_services.KAFKA_VERSION} at {servers.bootstrap}, "
                         "single-node KRaft, on this machine" if servers.kafka_pid else
                         f"external at {servers.bootstrap} (version not probed)"),
        ("broker JVM", servers.broker_note),
        ("redis", f"{redis_version(servers.redis_url)} at {servers.redis_url}"
                  + (", no persistence, on this machine" if servers.redis_pid else
                     " (external)")),
        ("input topic", f"{config.topics.sensor}: {args.partitions} partitions"),
        ("stream keys", f"{keys:,} sensors x 2 monitors (page-hinkley {PH_PARAMS}, "
                        f"adwin {ADWIN_PARAMS}) = {2 * keys:,} streams, warmup {WARMUP}"),
        ("events", f"{total:,} ({per_key} per key, interleaved); {len(drifting_keys(keys))} "
                   f"keys shift {DRIFT_SHIFT} sigma from step {int(per_key * 0.6)}"),
        ("processor", f"in-process, batch_size {config.processor.batch_size}, "
                      f"checkpoint_interval_ms {config.processor.checkpoint_interval_ms}, "
                      f"checkpoint_events {config.processor.checkpoint_events:,} (time-based)"),
    ]  # fmt: skip
    for name, value in setup:
        print(f"  {name:<22} {value}")
    print(flush=True)

    # -- produce
    progress(f"producing {total:,} events over {keys:,} keys (child process)...")
    produced = run_child(
        produce_bulk, servers.bootstrap, config.topics.sensor, keys, per_key, 1, timeout=1800
    )
    ends = end_offsets(servers.bootstrap, config.topics.sensor, args.partitions)
    progress(
        f"produced {produced['events']:,} in {produced['seconds']:.1f} s; partition ends "
        f"{sorted(ends.values())}"
    )

    # -- throughput: each run a new consumer group (fresh state) over the same events
    first_config = config
    runs: list[Throughput] = []
    processor: Any = None
    for i in range(max(args.runs, 1)):
        if processor is not None:
            processor.close()
            config = write_config(workdir / f"bench-{i}.yaml", run, f"{group}-{i}", args.batch_size)
        quiet = wait_for_quiet(servers, args.quiet_wait)
        progress(f"throughput run {i + 1}/{args.runs}: processor in-process, new group ({quiet})")
        processor, tp = throughput_phase(config, servers, total, ends)
        runs.append(tp)
        progress(f"throughput run {i + 1}: {tp.events / tp.wall:,.0f} events/s")

    # -- latency
    lat: Latency | None = None
    if "latency" not in skip:
        progress(
            f"latency: {args.latency_rate:,.0f} events/s live for {args.latency_seconds:.0f} s, "
            f"{args.probes} probes..."
        )
        lat = latency_phase(
            processor,
            runs[-1].registry,
            args.poll_timeout,
            config,
            servers,
            keys,
            per_key,
            total,
            args.latency_rate,
            args.latency_seconds,
            args.probes,
        )
    else:
        processor.close()

    # -- breakdown
    rows: list[tuple[str, str, str]] = []
    notes: list[str] = []
    if "breakdown" not in skip:
        progress("breakdown: timing each stage alone...")
        rows, notes = breakdown_phase(first_config, servers, keys, per_key, ends)
    mem: dict[str, str] = {}
    if "memory" not in skip:
        progress("memory: state per key in memory...")
        try:
            mem = memory_phase(first_config, servers, keys, per_key, ends)
        except Exception as exc:  # an API changed under us
            mem = {"memory phase": f"n/a: {type(exc).__name__}: {exc}"}

    # -- baseline
    base: dict[str, Any] | None = None
    if "baseline" not in skip:
        progress(
            f"baseline: naive GET/unpickle/update/pickle/SET loop, {args.baseline_events:,} events"
        )
        base = baseline_phase(config, servers, keys, per_key, args.baseline_events, run)

    # -- profile
    prof = ""
    if args.profile:
        progress(f"profile: cProfile over {args.profile_events:,} events (new group)...")
        path = workdir / "bench-profile.yaml"
        path.write_text(
            (workdir / "bench.yaml")
            .read_text()
            .replace(f"group_id: {group}", f"group_id: {group}-prof")
        )
        prof = profile_phase(path, servers, min(args.profile_events, total), 30)

    # -- report
    print_report(
        Report(args, keys, per_key, runs, ends, lat, base, rows, notes, prof, mem),
    )
    print(f"\nload average at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"total benchmark time: {time.perf_counter() - began:.0f} s", flush=True)
    # On servers this run did not start, remove what it created there.
    if servers.kafka_pid is None:
        delete_topics(servers.bootstrap, list(topics))
    if servers.redis_pid is None:
        delete_keys(servers.redis_url, f"rs:{{bench-{run}-*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
