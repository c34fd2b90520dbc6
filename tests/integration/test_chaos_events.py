"""Chaos: events and config changes that used to stop a partition for good (issue 12).

Each test runs ``riskstream run processor`` as a child process on a real broker and a
real Redis, feeds it what once crashed it (or made it lie), and checks that the
process keeps running, that the partition reaches its end, and that every event is
accounted for exactly once in the counters saved with the offsets: applied,
dead-lettered (with its reason) or dropped as a redelivery.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import redis

from poison_kind import SCRIPT as POISON_SCRIPT
from poison_kind import registered as poison_kind_registered
from riskstream.adapters.redis.keys import change_log_key
from riskstream.core.state_keys import HELD_MARK, STATE_KEY_SEPARATOR
from riskstream.core.timeutil import format_time
from support import (
    START,
    ProcessorProcess,
    Setup,
    create_topics,
    encode,
    end_offsets,
    make_setup,
    produce,
    read_topic,
    saved_offsets,
    sensor_events,
    wait_until_saved,
)

HELD_ODD = STATE_KEY_SEPARATOR + HELD_MARK + "odd"  # the held record of stream 'odd'

SENSOR_MONITORS = """
monitors:
  - name: drift
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: shift}
    warmup: 100
  - name: tail
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: outlier}
    warmup: 100
  - name: silent
    reads: sensor
    key: sensor_id
    detector: {kind: missing, min_gaps: 8}
"""


def _reading(sensor: str, i: int, value: float, at: float | None = None) -> dict[str, Any]:
    return {
        "event_id": f"{sensor}/{i}",
        "time": format_time(START + i if at is None else at),
        "sensor_id": sensor,
        "value": value,
    }


def _sensor_records(sensors: int, per_sensor: int, seed: int = 3) -> list[tuple[bytes, bytes]]:
    return list(encode(sensor_events(seed, sensors, per_sensor, drifting={})))


def _run_until_done(
    setup: Setup,
    bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    topic: str,
    name: str,
    command: Sequence[str] = ("-m", "riskstream"),
) -> tuple[dict[Any, Any], str]:
    """Run a processor until it has saved every partition's end; its state and log."""
    ends = end_offsets(bootstrap, topic, 2)
    processor = ProcessorProcess(
        setup, bootstrap, redis_url, tmp_path / f"{name}.log", command=command
    )
    try:
        states = wait_until_saved(redis_url, setup.group, ends, timeout=120)
        assert processor.process.poll() is None, f"the processor exited:\n{processor.log()}"
    finally:
        code = processor.stop()
    assert code == 0, processor.log()
    return states, processor.log()


def _totals(states: dict[Any, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in states.values():
        for name, n in state.counters.items():
            out[name] = out.get(name, 0) + n
    return out


def _dead_letters(bootstrap: str, setup: Setup) -> list[tuple[bytes, bytes]]:
    letters = read_topic(bootstrap, setup.topics["dead_letter"], idle=2.0)
    return [
        (dict(m.headers())["riskstream_reason"], dict(m.headers())["riskstream_error"])
        for m in letters
    ]


# The poison-pill test's monitors: a detector kind known only to tests (poison_kind.py)
# that raises on a reading above ``upper``, on two monitors of each sensor.
POISON_MONITORS = """
monitors:
  - name: drift
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: poison-pill, upper: 1000}
    warmup: 20
  - name: tail
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: poison-pill, upper: 1000}
    warmup: 20
  - name: silent
    reads: sensor
    key: sensor_id
    detector: {kind: missing, min_gaps: 8}
"""


def _setup(
    tmp_path: Path,
    unique: Callable[[str], str],
    name: str,
    bootstrap: str,
    monitors: str = SENSOR_MONITORS,
) -> Setup:
    setup = make_setup(tmp_path, unique(name), monitors_yaml=monitors)
    create_topics(bootstrap, setup.topics.values())
    return setup


def test_absurd_times_are_dead_lettered_and_the_partition_flows(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """1. Year 0 used to crash parse_time; 9999-12-31T23:59:59-23:59 and
    0001-01-01T00:00:00+23:59 crashed when a finding formatted them."""
    setup = _setup(tmp_path, unique, "chaos-time", kafka_bootstrap)
    good = _sensor_records(sensors=6, per_sensor=400)
    bad_times = ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
    records = list(good)
    for n, text in enumerate(bad_times):  # each on a sensor's own stream, mid-way
        event = {**_reading(f"s-000{n}", 10_000 + n, 25.0), "time": text}
        records.insert(600 * (n + 1), (f"s-000{n}".encode(), orjson.dumps(event)))
    produce(kafka_bootstrap, setup.topics["sensor"], records)

    states, log = _run_until_done(
        setup, kafka_bootstrap, redis_url, tmp_path, setup.topics["sensor"], "time"
    )
    assert _totals(states) == {"applied": len(good), "dead_lettered": 3}
    letters = _dead_letters(kafka_bootstrap, setup)
    assert sorted(r for r, _ in letters) == [
        b"time_ahead",
        b"time_out_of_range",
        b"time_out_of_range",
    ]
    assert all(any(t.encode() in e for _, e in letters) for t in bad_times)
    assert "Traceback" not in log


def test_huge_values_never_make_state_that_cannot_restore(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """2. Two readings of 1e308 put inf in a detector; saved as null, every restart
    failed.  Now they are clamped, and a restart restores every stream."""
    setup = _setup(tmp_path, unique, "chaos-huge", kafka_bootstrap)
    records = _sensor_records(sensors=4, per_sensor=300)
    for i in (250, 251):
        event = _reading("s-0001", 5_000 + i, 1e308, at=START + 299.5 + i / 1000)
        records.append((b"s-0001", orjson.dumps(event)))
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    states, _ = _run_until_done(
        setup, kafka_bootstrap, redis_url, tmp_path, setup.topics["sensor"], "huge-1"
    )
    assert _totals(states) == {"applied": len(records), "dead_lettered": 0}
    for state in states.values():  # nothing held, nothing non-finite saved as null
        assert not any(k.split("\x1f")[-1].startswith(HELD_MARK) for k in state.snapshots)

    later = [
        (f"s-000{s}".encode(), orjson.dumps(_reading(f"s-000{s}", 400 + i, 20.0 + (i % 3))))
        for i in range(50)
        for s in range(4)
    ]
    produce(kafka_bootstrap, setup.topics["sensor"], later)
    states, log = _run_until_done(
        setup, kafka_bootstrap, redis_url, tmp_path, setup.topics["sensor"], "huge-2"
    )
    assert _totals(states) == {"applied": len(records) + len(later), "dead_lettered": 0}
    assert "starts afresh" not in log and "Traceback" not in log


def test_an_event_that_raises_is_dead_lettered_and_only_its_stream_is_held(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """3. A poison pill: an event whose detector update raises.  (The real one was a
    sensor reading 0 and 1e-150 through half its warm-up, then 1e5, which overflowed
    ``**`` in the learned fit; fixed, so the pill now comes from ``poison-pill``, a
    detector kind known only to tests.)  The event is dead-lettered with the
    exception, that sensor's streams are held, and the partition — including the
    other sensors on it — carries on, across a restart."""
    with poison_kind_registered():
        _poison_pill(kafka_bootstrap, redis_url, tmp_path, unique)


def _poison_pill(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    setup = _setup(tmp_path, unique, "chaos-poison", kafka_bootstrap, POISON_MONITORS)
    run = (POISON_SCRIPT,)  # `riskstream` with the poison-pill kind known
    good = _sensor_records(sensors=4, per_sensor=300)
    tiny = [
        (b"odd", orjson.dumps(_reading("odd", i, 1e-150 * (i % 2), at=START + i + 0.5)))
        for i in range(60)
    ]
    pill = (b"odd", orjson.dumps(_reading("odd", 60, 1e5, at=START + 60.5)))
    after = [
        (b"odd", orjson.dumps(_reading("odd", i, 1e-150 * (i % 2), at=START + i + 0.5)))
        for i in range(61, 120)
    ]
    records = good + tiny + [pill] + after
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    states, log = _run_until_done(
        setup, kafka_bootstrap, redis_url, tmp_path, setup.topics["sensor"], "poison-1", run
    )
    assert _totals(states) == {"applied": len(records) - 1, "dead_lettered": 1}
    ((reason, error),) = _dead_letters(kafka_bootstrap, setup)
    assert reason == b"apply_error"
    assert b"PoisonPill" in error and b"stream 'odd'" in error
    assert "PoisonPill" in log  # logged with its traceback, the real cause
    held = {k for state in states.values() for k in state.snapshots if k.endswith(HELD_ODD)}
    assert held == {"drift" + HELD_ODD, "tail" + HELD_ODD}

    later = [(b"odd", orjson.dumps(_reading("odd", 500 + i, 0.0))) for i in range(10)]
    later += [(b"s-0001", orjson.dumps(_reading("s-0001", 500 + i, 21.0))) for i in range(10)]
    produce(kafka_bootstrap, setup.topics["sensor"], later)
    states, _ = _run_until_done(
        setup, kafka_bootstrap, redis_url, tmp_path, setup.topics["sensor"], "poison-2", run
    )
    assert _totals(states) == {"applied": len(records) - 1 + len(later), "dead_lettered": 1}
    holds = {
        k: orjson.loads(v)
        for state in states.values()
        for k, v in state.snapshots.items()
        if k.endswith(HELD_ODD)
    }
    assert {k: h["skipped"] for k, h in holds.items()} == {
        "drift" + HELD_ODD: 59 + 10,
        "tail" + HELD_ODD: 59 + 10,
    }

    # an operator releases the stream: it starts afresh
    reset = _cli(
        "state", "reset", "--monitor", "drift", "--stream", "odd",
        "--config", str(setup.config_path), "--redis-url", redis_url,
        command=run,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert "reset stream 'odd' of monitor 'drift'" in reset.stdout
    left = {k for s in saved_offsets(redis_url, setup.group, states).values() for k in s.snapshots}
    assert "drift" + HELD_ODD not in left and "tail" + HELD_ODD in left


def _cli(
    *args: str, command: Sequence[str] = ("-m", "riskstream")
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command, *args], capture_output=True, text=True, timeout=60
    )


SEASONAL = """
monitors:
  - name: temp
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: shift}
    warmup: 60
    seasonality: {period_s: 600, bins: 4, warmup: 5}
"""


def test_a_changed_monitor_restarts_its_streams_or_refuses_until_reset(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """4. Removing ``seasonality`` stopped start-up with "reset the state to continue",
    and no command did that; switching a monitor to ``missing`` crashed."""
    name = unique("chaos-config")
    seasonal = make_setup(tmp_path, name, monitors_yaml=SEASONAL)
    create_topics(kafka_bootstrap, seasonal.topics.values())
    topic = seasonal.topics["sensor"]
    first = _sensor_records(sensors=3, per_sensor=200)
    produce(kafka_bootstrap, topic, first)
    _run_until_done(seasonal, kafka_bootstrap, redis_url, tmp_path, topic, "config-1")

    # seasonality removed, and told to refuse: start-up stops, naming the way out
    plain = SEASONAL.replace("    seasonality: {period_s: 600, bins: 4, warmup: 5}\n", "")
    refusing = make_setup(
        tmp_path, name, monitors_yaml=plain, processor_yaml="  on_monitor_change: refuse\n"
    )
    second = [
        (f"s-000{s}".encode(), orjson.dumps(_reading(f"s-000{s}", 300 + i, 20.0 + s)))
        for i in range(100)
        for s in range(3)
    ]
    produce(kafka_bootstrap, topic, second)
    proc = ProcessorProcess(refusing, kafka_bootstrap, redis_url, tmp_path / "config-2.log")
    deadline = time.monotonic() + 60
    while proc.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    code = proc.stop()
    assert code not in (0, None), proc.log()
    assert "riskstream state reset --monitor temp" in proc.log()

    # the operator resets the monitor; the refusing processor then starts and flows
    reset = _cli("state", "reset", "--monitor", "temp", "--config", str(refusing.config_path),
                 "--redis-url", redis_url)  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    states, _ = _run_until_done(refusing, kafka_bootstrap, redis_url, tmp_path, topic, "config-3")
    assert _totals(states) == {"applied": len(first) + len(second), "dead_lettered": 0}

    # by default a changed monitor restarts by itself: now it becomes `missing`
    missing = make_setup(
        tmp_path, name, monitors_yaml=plain.replace("detector: {kind: shift}", "detector: missing")
    )
    third = [
        (f"s-000{s}".encode(), orjson.dumps(_reading(f"s-000{s}", 500 + i, 20.0)))
        for i in range(30)
        for s in range(3)
    ]
    produce(kafka_bootstrap, topic, third)
    states, log = _run_until_done(missing, kafka_bootstrap, redis_url, tmp_path, topic, "config-4")
    assert _totals(states) == {
        "applied": len(first) + len(second) + len(third),
        "dead_lettered": 0,
    }
    assert "its definition changed since its state was saved" in log
    assert "Traceback" not in log


def test_readings_and_changes_dated_2099_are_dead_lettered_and_move_no_clock(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """6. One reading dated 2099 from a new sensor made all 19 others "missing"; one
    change event dated 2099 cleared the change log.  7. And 60 redeliveries of one
    reading are dropped, not applied."""
    setup = _setup(tmp_path, unique, "chaos-2099", kafka_bootstrap)
    good = _sensor_records(sensors=20, per_sensor=300)
    far = _reading("newcomer", 1, 20.0)
    far["time"] = "2099-01-01T00:00:00Z"
    records = [*good[:3000], (b"newcomer", orjson.dumps(far)), *good[3000:]]
    redelivered = good[-1]
    records += [redelivered] * 60
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    deploy = {"event_id": "d1", "time": format_time(START + 100), "kind": "deploy",
              "subject": "s-0003", "version": "v2", "actor": "ci"}  # fmt: skip
    future = {**deploy, "event_id": "d2099", "time": "2099-06-01T00:00:00Z", "version": "v3"}
    produce(
        kafka_bootstrap,
        setup.topics["change"],
        [(b"s-0003", orjson.dumps(deploy)), (b"s-0003", orjson.dumps(future))],
    )

    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 2)
    ends.update(end_offsets(kafka_bootstrap, setup.topics["change"], 2))
    proc = ProcessorProcess(setup, kafka_bootstrap, redis_url, tmp_path / "2099.log")
    try:
        states = wait_until_saved(redis_url, setup.group, ends, timeout=120)
        assert proc.process.poll() is None, proc.log()
    finally:
        assert proc.stop() == 0, proc.log()
    assert _totals(states) == {"applied": len(good) + 1, "dead_lettered": 2, "duplicates": 60}
    assert sorted(r for r, _ in _dead_letters(kafka_bootstrap, setup)) == [b"time_ahead"] * 2
    # the missing-sensor monitor saw no sensor fall silent
    assert read_topic(kafka_bootstrap, setup.topics["incidents"], idle=2.0) == []
    # the change log still holds the real deploy
    client = redis.Redis.from_url(redis_url)
    try:
        members = client.zrange(change_log_key(setup.group), 0, -1)
    finally:
        client.close()
    assert [orjson.loads(m)["event_id"] for m in members] == ["d1"]
