"""Crashes, scale-out and zombies: the processor as real child processes on Kafka + Redis.

Each test compares against the uninterrupted reference — the same records through
the embedded pipeline — because "nothing lost, nothing applied twice" means the
final detector state and the set of incident ids are exactly the reference's.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

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


def _records_with_poison(
    seed: int, sensors: int, per_sensor: int
) -> list[tuple[bytes | None, bytes]]:
    rng = random.Random(seed)
    drifting = {s: rng.randrange(per_sensor // 3, per_sensor - 200) for s in range(0, sensors, 9)}
    records: list[tuple[bytes | None, bytes]] = list(
        encode(sensor_events(seed, sensors, per_sensor, drifting))
    )
    for i in range(0, len(records), 997):  # a sprinkle of bad input, keyed like the rest
        records.insert(i, (records[i][0], b'{"broken": '))
    return records


def _progress(redis_url: str, setup: Setup, ends: dict[tuple[str, int], int]) -> int:
    return sum(s.offset or 0 for s in saved_offsets(redis_url, setup.group, ends).values())


def _wait_for_progress(
    redis_url: str, setup: Setup, ends: dict[tuple[str, int], int], above: int, timeout: float = 60
) -> int:
    deadline = time.monotonic() + timeout
    while (done := _progress(redis_url, setup, ends)) <= above:
        assert time.monotonic() < deadline, f"no progress past {above} in {timeout} s"
        time.sleep(0.05)
    return done


def _incident_ids(bootstrap: str, topic: str) -> tuple[set[str], int]:
    """Distinct incident ids on the topic, and how many messages carried them.

    A replay after a crash may re-emit an incident; it must be the same event.
    """
    by_version: dict[tuple[str, int], bytes] = {}
    messages = read_topic(bootstrap, topic)
    for m in messages:
        incident = orjson.loads(m.value())
        # An incident is updated as its episode grows; each version is replayed unchanged.
        version = (
            incident["incident_id"],
            incident["evidence"].get("episode", {}).get("alarms", 1),
        )
        assert by_version.setdefault(version, m.value()) == m.value(), (
            "a replay changed an incident"
        )
    return {incident_id for incident_id, _ in by_version}, len(messages)


def _check_against_reference(
    setup: Setup,
    bootstrap: str,
    redis_url: str,
    records: list[tuple[bytes | None, bytes]],
    ends: dict[tuple[str, int], int],
) -> dict[str, Any]:
    states = wait_until_saved(redis_url, setup.group, ends)
    expected_incidents, expected_state, _ = embedded_run(setup, {setup.topics["sensor"]: records})
    poison = sum(1 for _, v in records if v == b'{"broken": ')
    applied = sum(s.counters.get("applied", 0) for s in states.values())
    dead = sum(s.counters.get("dead_lettered", 0) for s in states.values())
    assert (applied, dead) == (len(records) - poison, poison)
    ids, messages = _incident_ids(bootstrap, setup.topics["incidents"])
    assert ids == {i["incident_id"] for i in expected_incidents}
    assert len(ids) >= 10
    assert redis_state(redis_url, setup.group, ends) == expected_state
    return {"incidents": len(ids), "incident_messages": messages, "applied": applied, "dead": dead}


def test_kill_9_five_times_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = make_setup(tmp_path, unique("crash"), checkpoint_interval_ms=300)
    create_topics(kafka_bootstrap, setup.topics.values())
    records = _records_with_poison(seed=11, sensors=200, per_sensor=1250)
    assert len(records) >= 200_000
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 2)

    rng = random.Random(2026)
    kills: list[int] = []
    done = 0
    for attempt in range(5):
        proc = ProcessorProcess(
            setup, kafka_bootstrap, redis_url, tmp_path / f"crash-{attempt}.log"
        )
        try:
            done = _wait_for_progress(redis_url, setup, ends, above=done)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.kill()  # SIGKILL: no checkpoint, no goodbye to the group
        kills.append(_progress(redis_url, setup, ends))
    assert kills[-1] < len(records), f"all processed before the last kill: {kills}"

    final = ProcessorProcess(setup, kafka_bootstrap, redis_url, tmp_path / "crash-final.log")
    try:
        summary = _check_against_reference(setup, kafka_bootstrap, redis_url, records, ends)
    finally:
        assert final.stop() == 0, final.log()
    print(f"kills at saved offsets {kills} of {len(records)}; {summary}")


def test_two_processors_share_the_work_and_one_leaving_midway_changes_nothing(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = make_setup(tmp_path, unique("scale"))
    sensor_topic = setup.topics["sensor"]
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=4)
    records = _records_with_poison(seed=12, sensors=120, per_sensor=800)

    first = ProcessorProcess(setup, kafka_bootstrap, redis_url, tmp_path / "first.log")
    second = ProcessorProcess(setup, kafka_bootstrap, redis_url, tmp_path / "second.log")
    try:
        # Both members hold input partitions before any data arrives, so both work.
        deadline = time.monotonic() + 90
        while not all(f"assigned {sensor_topic}" in p.log() for p in (first, second)):
            assert time.monotonic() < deadline, first.log() + second.log()
            time.sleep(0.2)
        produce(kafka_bootstrap, sensor_topic, records)
        ends = end_offsets(kafka_bootstrap, sensor_topic, 4)
        _wait_for_progress(redis_url, setup, ends, above=len(records) // 4)
        assert second.stop() == 0, second.log()  # leaves midway, saving what it did
        assert _progress(redis_url, setup, ends) < len(records), "stopped too late to matter"
        _check_against_reference(setup, kafka_bootstrap, redis_url, records, ends)
    finally:
        second.stop()
        assert first.stop() == 0, first.log()


def test_a_paused_processor_cannot_overwrite_the_state_of_partitions_it_lost(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = make_setup(tmp_path, unique("zombie"), checkpoint_interval_ms=200)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=2)
    records = _records_with_poison(seed=13, sensors=150, per_sensor=1000)
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 2)

    zombie = ProcessorProcess(
        setup, kafka_bootstrap, redis_url, tmp_path / "zombie.log", poll_ms=6000
    )
    other = None
    try:
        _wait_for_progress(redis_url, setup, ends, above=0)
        zombie.signal(signal.SIGSTOP)  # mid-batch, with unsaved progress
        paused_at = {tp: s.epoch for tp, s in saved_offsets(redis_url, setup.group, ends).items()}
        other = ProcessorProcess(
            setup, kafka_bootstrap, redis_url, tmp_path / "other.log", poll_ms=6000
        )
        # The group gives up on the paused member; the other claims every partition.
        deadline = time.monotonic() + 60
        while any(
            s.epoch <= paused_at[tp]
            for tp, s in saved_offsets(redis_url, setup.group, ends).items()
        ):
            assert time.monotonic() < deadline, other.log()
            time.sleep(0.2)
        _wait_for_progress(redis_url, setup, ends, above=_progress(redis_url, setup, ends))
        zombie.signal(signal.SIGCONT)  # wakes up believing it still owns its partitions
        _check_against_reference(setup, kafka_bootstrap, redis_url, records, ends)
        time.sleep(2)  # give the zombie every chance to write stale state
        expected_state = embedded_run(setup, {setup.topics["sensor"]: records})[1]
        assert redis_state(redis_url, setup.group, ends) == expected_state
    finally:
        if other is not None:
            assert other.stop() == 0, other.log()
        zombie.stop()
    log = zombie.log()
    assert "lost" in log or "fenced" in log, log


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (its forked checkpoint writers)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_killing_forked_checkpoint_writers_mid_save_loses_nothing(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """kill -9 the writer a checkpoint forked (make_setup: checkpoint_writer fork), again
    and again while the processor runs: whatever of its save landed, the processor claims
    its partitions again and ends with every input once and the reference's incidents."""
    setup = make_setup(tmp_path, unique("writer"), checkpoint_interval_ms=200)
    create_topics(kafka_bootstrap, setup.topics.values())
    records = _records_with_poison(seed=12, sensors=200, per_sensor=1250)
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 2)
    proc = ProcessorProcess(setup, kafka_bootstrap, redis_url, tmp_path / "writer.log")
    killed = 0
    try:
        deadline = time.monotonic() + 120
        while killed < 5 and _progress(redis_url, setup, ends) < len(records):
            assert time.monotonic() < deadline, f"killed {killed} writers in 120 s"
            for child in _children(proc.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
                    killed += 1
            time.sleep(0.002)
        assert killed, "no writer was caught in flight"
        summary = _check_against_reference(setup, kafka_bootstrap, redis_url, records, ends)
    finally:
        code = proc.stop()
    assert code == 0, proc.log()
    log = proc.log_path.read_text(errors="replace")
    assert "ended without a report: killed by signal 9" in log
    assert "every partition resumed at its saved offset" in log
    print(f"{killed} writers killed; {summary}")
