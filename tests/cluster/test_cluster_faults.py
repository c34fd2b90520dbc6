"""Faults on a real Kafka cluster and a real Redis Cluster: nothing lost, nothing twice.

Each scenario feeds the same kind of input in three phases with a fault in the
middle, and ends like the single-node fault tests: every input accounted for exactly
once (applied or dead-lettered, per the saved counters), the saved detector state
and the set of incident ids equal to an undisturbed run's (the embedded pipeline on
the same records), and any incident re-emitted by a replay identical to the first.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka.admin import AdminClient
from redis.cluster import RedisCluster

import services as local_services
from riskstream.adapters.redis.client import client_from_url
from riskstream.adapters.redis.keys import partition_keys
from support import (
    ProcessorProcess,
    Setup,
    create_topics,
    embedded_run,
    encode,
    end_offsets,
    make_setup,
    produce,
    read_topic,
    redis_state,
    saved_offsets,
    sensor_events,
    wait_until_saved,
)

POISON = b'{"broken": '


def _records(seed: int, sensors: int = 100, per_sensor: int = 600) -> list[tuple[Any, bytes]]:
    rng = random.Random(seed)
    drifting = {s: rng.randrange(per_sensor // 3, per_sensor - 150) for s in range(0, sensors, 7)}
    records: list[tuple[Any, bytes]] = list(
        encode(sensor_events(seed, sensors, per_sensor, drifting))
    )
    for i in range(0, len(records), 997):  # some bad input, keyed like the rest
        records.insert(i, (records[i][0], POISON))
    return records


def _phases(records: list[Any], n: int = 3) -> list[list[Any]]:
    size = -(-len(records) // n)
    return [records[i : i + size] for i in range(0, len(records), size)]


def _tps(setup: Setup, partitions: int) -> list[tuple[str, int]]:
    return [(setup.topics["sensor"], p) for p in range(partitions)]


def _progress(url: str, setup: Setup, tps: Iterable[tuple[str, int]]) -> int:
    return sum(s.offset or 0 for s in saved_offsets(url, setup.group, tps).values())


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.1)


def _incident_ids(bootstrap: str, topic: str) -> tuple[set[str], int]:
    """Distinct incident ids, and how many messages carried them; a replay may re-emit
    an incident version, and then it must be the very same event."""
    by_version: dict[tuple[str, int], bytes] = {}
    messages = read_topic(bootstrap, topic)
    for m in messages:
        incident = orjson.loads(m.value())
        version = (
            incident["incident_id"],
            incident["evidence"].get("episode", {}).get("alarms", 1),
        )
        assert by_version.setdefault(version, m.value()) == m.value(), (
            "a replay changed an incident"
        )
    return {incident_id for incident_id, _ in by_version}, len(messages)


def _check_exactly_once(
    setup: Setup, bootstrap: str, url: str, records: list[Any], partitions: int
) -> dict[str, int]:
    """Every input once, and the undisturbed run's incidents and state."""
    ends = end_offsets(bootstrap, setup.topics["sensor"], partitions)
    states = wait_until_saved(url, setup.group, ends)
    expected_incidents, expected_state, _ = embedded_run(setup, {setup.topics["sensor"]: records})
    poison = sum(1 for _, v in records if v == POISON)
    applied = sum(s.counters.get("applied", 0) for s in states.values())
    dead = sum(s.counters.get("dead_lettered", 0) for s in states.values())
    assert (applied, dead) == (len(records) - poison, poison)
    ids, messages = _incident_ids(bootstrap, setup.topics["incidents"])
    assert ids == {i["incident_id"] for i in expected_incidents}
    assert len(ids) >= 5
    assert redis_state(url, setup.group, ends) == expected_state
    return {
        "inputs": len(records), "applied": applied, "dead_lettered": dead,
        "incidents": len(ids), "incident_messages": messages,
    }  # fmt: skip


def _leader(bootstrap: str, topic: str, partition: int) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[partition].leader)


def test_killing_the_leader_broker_of_the_input_mid_run_loses_nothing(
    kafka_cluster: local_services.KafkaCluster,
    redis_cluster: local_services.RedisCluster,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    started = time.monotonic()
    bootstrap, url = kafka_cluster.bootstrap, redis_cluster.url
    setup = make_setup(tmp_path, unique("broker-kill"), checkpoint_interval_ms=300)
    create_topics(bootstrap, setup.topics.values(), partitions=4, replication=3)
    records = _records(seed=21)
    first, second, third = _phases(records)
    tps = _tps(setup, 4)
    proc = ProcessorProcess(setup, bootstrap, url, tmp_path / "processor.log")
    try:
        produce(bootstrap, setup.topics["sensor"], first)
        _wait_for("progress", lambda: _progress(url, setup, tps) > 0)
        leader = _leader(bootstrap, setup.topics["sensor"], 0)
        kafka_cluster.kill(leader)  # SIGKILL the leader of input partition 0
        produce(bootstrap, setup.topics["sensor"], second)  # written to the new leaders
        _wait_for(
            "progress without the killed broker",
            lambda: _progress(url, setup, tps) > len(first) + len(second) // 2,
        )
        new_leader = _leader(bootstrap, setup.topics["sensor"], 0)
        kafka_cluster.restart(leader)
        produce(bootstrap, setup.topics["sensor"], third)
        summary = _check_exactly_once(setup, bootstrap, url, records, 4)
    finally:
        code = proc.stop()
        if kafka_cluster.brokers[leader].process.poll() is not None:
            kafka_cluster.restart(leader)
    assert code == 0, proc.log()
    assert new_leader != leader
    print(
        f"broker {leader} (leader of {setup.topics['sensor']}[0]) killed, "
        f"{new_leader} took over; {summary}; {time.monotonic() - started:.1f} s"
    )


def test_killing_the_redis_primary_of_a_checkpoint_rolls_state_and_offset_back_together(
    kafka_cluster: local_services.KafkaCluster,
    redis_cluster: local_services.RedisCluster,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    """The replica is paused (SIGSTOP) and its link cut while checkpoints land on its
    primary, then the primary is killed: the promoted replica holds an older checkpoint,
    as asynchronous replication allows.  The processor must resume from it — state and
    offset of the same checkpoint — and the replayed events give the same incidents."""
    started = time.monotonic()
    bootstrap, url = kafka_cluster.bootstrap, redis_cluster.url
    setup = make_setup(tmp_path, unique("redis-kill"), checkpoint_interval_ms=200)
    create_topics(bootstrap, setup.topics.values(), partitions=4, replication=3)
    records = _records(seed=22)
    first, second, third = _phases(records)
    tps = _tps(setup, 4)
    watched = tps[0]
    client = client_from_url(url)
    assert isinstance(client, RedisCluster)
    primary = client.get_node_from_key(partition_keys(setup.group, watched)[0]).port
    client.close()
    (replica,) = redis_cluster.replica_of(primary)

    def saved(tp: tuple[str, int]) -> int:
        return saved_offsets(url, setup.group, [tp])[tp].offset or 0

    proc = ProcessorProcess(setup, bootstrap, url, tmp_path / "processor.log")
    try:
        produce(bootstrap, setup.topics["sensor"], first)
        _wait_for("a first checkpoint", lambda: saved(watched) > 0)
        redis_cluster.nodes[replica].process.send_signal(signal.SIGSTOP)
        with redis.Redis(port=primary) as raw:  # the replica cannot reconnect while stopped
            raw.client_kill_filter(_type="replica")
        at_cut = saved(watched)
        produce(bootstrap, setup.topics["sensor"], second)
        _wait_for("checkpoints the replica misses", lambda: saved(watched) > at_cut + 500)
        on_primary = saved(watched)
        redis_cluster.nodes[primary].process.kill()  # SIGKILL
        redis_cluster.nodes[primary].process.wait()
        redis_cluster.nodes[replica].process.send_signal(signal.SIGCONT)
        _wait_for("the replica's promotion", lambda: replica in redis_cluster.masters(), 60)
        produce(bootstrap, setup.topics["sensor"], third)
        summary = _check_exactly_once(setup, bootstrap, url, records, 4)
    finally:
        code = proc.stop()
        redis_cluster.nodes[replica].process.send_signal(signal.SIGCONT)
        if redis_cluster.nodes[primary].process.poll() is not None:
            redis_cluster.restart(primary)  # rejoins as the new primary's replica
    log = proc.log_path.read_text(errors="replace")
    assert code == 0, proc.log()
    # The processor claimed the partition again and resumed below what the killed
    # primary held: at the checkpoint the replica had, state and offset together.
    pattern = (
        rf"assigned {re.escape(watched[0])}\[{watched[1]}\]: epoch \d+, resuming at offset (\d+)"
    )
    resumed = [int(offset) for offset in re.findall(pattern, log)]
    assert resumed and 0 < min(resumed) <= at_cut < on_primary, (resumed, at_cut, on_primary)
    print(
        f"{watched[0]}[{watched[1]}]: checkpoint at offset {on_primary} on the killed primary; "
        f"the processor resumed at {min(resumed)} from the promoted replica (rolled back "
        f"{on_primary - min(resumed)} events, replayed); "
        f"{'the save refused as lost writes' if 'lost the latest writes' in log else 'reclaimed'}"
        f"; {summary}; {time.monotonic() - started:.1f} s"
    )


def test_three_processors_one_killed_one_added_mid_run_lose_nothing(
    kafka_cluster: local_services.KafkaCluster,
    redis_cluster: local_services.RedisCluster,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    started = time.monotonic()
    bootstrap, url = kafka_cluster.bootstrap, redis_cluster.url
    setup = make_setup(tmp_path, unique("group"), checkpoint_interval_ms=300)
    sensor_topic = setup.topics["sensor"]
    create_topics(bootstrap, setup.topics.values(), partitions=6, replication=3)
    records = _records(seed=23)
    first, second, third = _phases(records)
    tps = _tps(setup, 6)
    procs = [
        ProcessorProcess(setup, bootstrap, url, tmp_path / f"processor-{i}.log") for i in range(3)
    ]
    try:
        _wait_for(
            "all three assigned",
            lambda: all(f"assigned {sensor_topic}" in p.log() for p in procs),
            120,
        )
        produce(bootstrap, sensor_topic, first)
        _wait_for("progress", lambda: _progress(url, setup, tps) > 0)
        procs[1].kill()  # SIGKILL: no checkpoint, no goodbye to the group
        produce(bootstrap, sensor_topic, second)
        procs.append(ProcessorProcess(setup, bootstrap, url, tmp_path / "processor-3.log"))
        produce(bootstrap, sensor_topic, third)
        summary = _check_exactly_once(setup, bootstrap, url, records, 6)
        assert "assigned" in procs[3].log(), procs[3].log()
    finally:
        codes = [p.stop() for i, p in enumerate(procs) if i != 1]
    assert codes == [0, 0, 0], [p.log() for p in procs]
    print(f"3 processors, 1 killed, 1 added; {summary}; {time.monotonic() - started:.1f} s")


@pytest.fixture(autouse=True)
def _clusters_whole(
    kafka_cluster: local_services.KafkaCluster, redis_cluster: local_services.RedisCluster
) -> None:
    """Each scenario starts on whole clusters (the previous one healed them)."""
    assert all(b.process.poll() is None for b in kafka_cluster.brokers.values())
    redis_cluster.wait_healthy()
