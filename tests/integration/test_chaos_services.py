"""Chaos on real Kafka + Redis: Redis going away, filling up, forgetting; a flood of keys.

Each test runs riskstream's own processes (``riskstream run ...``) against a
redis-server of its own, started with ``deploy/local/services.py`` on a fixed port
so it can be killed and started again under them, and checks the guarantees
against the uninterrupted reference (the same records through the embedded
pipeline): the partition keeps flowing, every good event is applied exactly once
(the saved counters, the detector state and the incident ids are the reference's),
every bad one is dead-lettered.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

import services as local_services  # deploy/local/services.py
from riskstream.core.state_keys import LIMITS_KEY
from riskstream.router import Decision, Router
from support import (
    CONTAINMENT_YAML,
    MONITORS_YAML,
    START,
    ContainmentProcess,
    RiskstreamProcess,
    Setup,
    create_topics,
    deploy,
    embedded_run,
    encode,
    end_offsets,
    incident,
    make_setup,
    produce,
    read_topic,
    redis_state,
    saved_offsets,
    sensor_events,
    wait_for,
    wait_until_saved,
)

BROKEN = b'{"broken": '


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Redis:
    """A redis-server of the test's own, on one port across restarts."""

    def __init__(self, workdir: Path, persistent: bool) -> None:
        self.workdir, self.persistent = workdir, persistent
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: local_services.RedisServer | None = None
        self.start()

    def start(self) -> None:
        self.server = local_services.start_redis(
            self.workdir, port=self.port, persistent=self.persistent
        )

    def kill(self) -> None:
        """SIGKILL: no goodbye, no last save (an AOF fsynced on every write keeps all)."""
        assert self.server is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    made: list[_Redis] = []

    def make(persistent: bool) -> _Redis:
        made.append(_Redis(tmp_path / f"redis-{len(made)}", persistent))
        return made[-1]

    yield make
    for server in made:
        server.stop()


# this file's waits span service restarts
_wait = functools.partial(wait_for, timeout=120.0)


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _metric(port: int, name: str) -> float | None:
    _status, body = _get(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def _health(port: int) -> str | None:
    status, body = _get(port, "/health")
    return orjson.loads(body)["status"] if status in (200, 503) else None


def _processor(setup: Setup, bootstrap: str, url: str, log: Path, port: int) -> RiskstreamProcess:
    return RiskstreamProcess(
        ["run", "processor", "--config", str(setup.config_path), "--bootstrap", bootstrap,
         "--redis-url", url, "--metrics-port", str(port), "--max-poll-interval-ms", "6000"],
        log,
    )  # fmt: skip


def _with_poison(records: list[tuple[bytes | None, bytes]]) -> list[tuple[bytes | None, bytes]]:
    out = list(records)
    for i in range(0, len(out), 997):
        out.insert(i, (out[i][0], BROKEN))
    return out


def _saved_progress(url: str, setup: Setup, ends: dict[tuple[str, int], int]) -> int:
    return sum(s.offset or 0 for s in saved_offsets(url, setup.group, ends).values())


def _check_exactly_once(
    setup: Setup, bootstrap: str, url: str, records: list[tuple[bytes | None, bytes]],
    ends: dict[tuple[str, int], int],
) -> dict[str, Any]:  # fmt: skip
    """Every good event applied once, every bad one dead-lettered, state and incidents
    as the uninterrupted reference's."""
    states = wait_until_saved(url, setup.group, ends, timeout=240)
    expected_incidents, expected_state, _ = embedded_run(setup, {setup.topics["sensor"]: records})
    poison = sum(1 for _, v in records if v == BROKEN)
    applied = sum(s.counters.get("applied", 0) for s in states.values())
    dead = sum(s.counters.get("dead_lettered", 0) for s in states.values())
    assert (applied, dead) == (len(records) - poison, poison)
    messages = read_topic(bootstrap, setup.topics["incidents"])
    ids = {orjson.loads(m.value())["incident_id"] for m in messages}
    assert ids == {i["incident_id"] for i in expected_incidents}
    assert redis_state(url, setup.group, ends) == expected_state
    return {"applied": applied, "dead": dead, "incidents": expected_incidents}


# -- 10: the processor when Redis fails ----------------------------------------------


def test_the_processor_holds_through_maxmemory_and_a_redis_kill_and_loses_nothing(
    kafka_bootstrap: str, own_redis: Any, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    server = own_redis(persistent=True)
    setup = make_setup(tmp_path, unique("chaos-redis"), checkpoint_interval_ms=200)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=2)
    rng = random.Random(5)
    drifting = {s: rng.randrange(200, 500) for s in range(0, 120, 7)}
    records = _with_poison(list(encode(sensor_events(21, 120, 600, drifting))))
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 2)
    port = _free_port()
    proc = _processor(setup, kafka_bootstrap, server.url, tmp_path / "processor.log", port)
    admin = server.client()
    try:
        _wait("first checkpoint", lambda: _saved_progress(server.url, setup, ends) > 0)
        assert _health(port) == "ok"
        # Redis full: every write refused, reads still answered.
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", max(1, int(admin.info("memory")["used_memory"]) // 2))
        _wait("degraded at maxmemory", lambda: _health(port) == "degraded")
        assert _metric(port, "riskstream_state_store_up") == 0.0
        stuck = _saved_progress(server.url, setup, ends)
        assert stuck < len(records), "finished before Redis filled up: nothing was tested"
        admin.config_set("maxmemory", 0)
        _wait("progress after maxmemory", lambda: _saved_progress(server.url, setup, ends) > stuck)
        # Redis killed and started again (from its append-only file) mid-run.
        server.kill()
        _wait("degraded without Redis", lambda: _health(port) == "degraded")
        assert proc.process.poll() is None, proc.log()
        server.start()
        summary = _check_exactly_once(setup, kafka_bootstrap, server.url, records, ends)
        _wait("healthy again", lambda: _health(port) == "ok")
        assert _metric(port, "riskstream_state_store_up") == 1.0
        assert (_metric(port, "riskstream_state_store_failures_total") or 0) > 0
        assert proc.process.poll() is None, "the processor exited: " + proc.log()
        assert len(summary["incidents"]) >= 5
    finally:
        admin.close()
        assert proc.stop() == 0, proc.log()


def test_a_redis_that_comes_back_empty_replays_the_partition_onto_fresh_state(
    kafka_bootstrap: str, own_redis: Any, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Without persistence the saved state is gone: the processor starts the partition
    over (from the beginning, onto empty state) and ends where the reference does."""
    server = own_redis(persistent=False)
    setup = make_setup(tmp_path, unique("chaos-empty"), checkpoint_interval_ms=200)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=2)
    records = _with_poison(list(encode(sensor_events(22, 80, 500, {3: 300, 40: 250}))))
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 2)
    port = _free_port()
    proc = _processor(setup, kafka_bootstrap, server.url, tmp_path / "processor.log", port)
    try:
        _wait("first checkpoint", lambda: _saved_progress(server.url, setup, ends) > 0)
        server.kill()
        _wait("degraded without Redis", lambda: _health(port) == "degraded")
        server.start()
        _check_exactly_once(setup, kafka_bootstrap, server.url, records, ends)
        assert proc.process.poll() is None, proc.log()
    finally:
        assert proc.stop() == 0, proc.log()


# -- 11: a flood of new keys --------------------------------------------------------

_MISSING_YAML = """
  - name: value-missing
    reads: sensor
    key: sensor_id
    detector: {kind: missing, min_gaps: 8}
    incident_type: sensor-missing
"""


def test_a_flood_of_new_keys_is_capped_reported_once_and_evicted_when_idle(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    cap, flood = 50, 600
    setup = make_setup(
        tmp_path, unique("chaos-flood"), checkpoint_interval_ms=200,
        extra_yaml=f"  max_streams_per_monitor: {cap}\n  stream_idle_ttl_s: 120\n",
        monitors_yaml=MONITORS_YAML + _MISSING_YAML,
    )  # fmt: skip
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    regular = list(encode(sensor_events(23, 30, 400, {})))  # 30 sensors, one reading/s each
    at = 30 * 100  # the flood comes 100 s into the data, timed like its neighbours
    flood_records = [
        (f"flood-{i:05d}".encode(), orjson.dumps({
            "event_id": f"flood-{i:05d}/0", "time": orjson.loads(regular[at][1])["time"],
            "sensor_id": f"flood-{i:05d}", "value": 20.0, "unit": "degC", "quality": "good",
        }))
        for i in range(flood)
    ]  # fmt: skip
    records = _with_poison(regular[:at] + flood_records + regular[at:])
    produce(kafka_bootstrap, setup.topics["sensor"], records)
    ends = end_offsets(kafka_bootstrap, setup.topics["sensor"], 1)
    first = _processor(setup, kafka_bootstrap, redis_url, tmp_path / "p1.log", 0)
    try:
        _wait("half", lambda: _saved_progress(redis_url, setup, ends) > len(records) // 2)
    finally:
        first.kill()  # SIGKILL mid-run: the restart resumes from the checkpoint
    second = _processor(setup, kafka_bootstrap, redis_url, tmp_path / "p2.log", 0)
    try:
        summary = _check_exactly_once(setup, kafka_bootstrap, redis_url, records, ends)
    finally:
        assert second.stop() == 0, second.log()
    limit_incidents = [i for i in summary["incidents"] if i["type"] == "stream-limit"]
    assert sorted(i["monitor"] for i in limit_incidents) == [
        "value-adwin", "value-drift", "value-missing"
    ]  # fmt: skip
    assert {i["evidence"]["stream_limit"]["max_streams"] for i in limit_incidents} == {cap}
    state = redis_state(redis_url, setup.group, ends)
    (saved,) = saved_offsets(redis_url, setup.group, ends).values()
    limits = orjson.loads(saved.snapshots[LIMITS_KEY])["monitors"]
    for monitor in ("value-adwin", "value-drift", "value-missing"):
        dropped, evicted, capped = limits[monitor]
        assert dropped == flood - (cap - 30)  # every flood event past the cap, counted once
        assert evicted == cap - 30 and not capped  # the flood's streams, idle, forgotten
    assert not [k for k in state if "flood-" in k], "idle flood streams still stored"
    assert len([k for k in state if k.startswith("value-drift\x1fs-")]) == 30


# -- 13 and 10: containment when Redis forgets, and the worker when Redis is down ------


def test_routers_keep_containment_through_an_empty_redis_and_the_worker_writes_it_back(
    kafka_bootstrap: str, own_redis: Any, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    server = own_redis(persistent=False)
    namespace = unique("ns")
    setup = make_setup(tmp_path, unique("chaos-flags"), extra_yaml=CONTAINMENT_YAML)
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    port = _free_port()
    worker = ContainmentProcess(
        setup, kafka_bootstrap, server.url, tmp_path / "worker.log", namespace,
        "--metrics-port", str(port),
    )  # fmt: skip
    router = Router(server.url, namespace=namespace, max_staleness_s=4)
    seen: list[Decision] = []
    watching = threading.Event()

    def watch() -> None:  # what serving would have answered, all along
        while not watching.is_set():
            seen.append(router.route("chatbot"))
            time.sleep(0.01)

    def send(topic: str, *events: dict[str, Any]) -> None:
        produce(kafka_bootstrap, setup.topics[topic],
                [(str(e["subject"]).encode(), orjson.dumps(e)) for e in events])  # fmt: skip

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        send("change", deploy("d1", "chatbot", "bot-1.4", START),
             deploy("d2", "chatbot", "bot-1.5", START + 60))  # fmt: skip
        router.wait_for("chatbot", 2, timeout=120)
        _wait(
            "the worker's epoch", lambda: server.client().exists(f"rs:{{flags|{namespace}}}:epoch")
        )
        send("incidents", incident("inc-1", "chatbot"))  # the router reads the epoch with it
        contained = router.wait_for("chatbot", 3, timeout=60)
        assert (contained.version, contained.incident_id) == ("bot-1.4", "inc-1")
        watcher.start()

        # Redis restarts empty while the worker is paused: routers must keep containment.
        worker.signal(signal.SIGSTOP)
        server.kill()
        server.start()
        _wait("the router to see the loss", lambda: router.route("chatbot").stale, timeout=60)
        held = router.route("chatbot")
        assert (held.version, held.incident_id, held.stale) == ("bot-1.4", "inc-1", True)
        assert router.registry.get_sample_value("riskstream_router_state_lost") == 1.0
        worker.signal(signal.SIGCONT)
        _wait("the worker to write the flags back", lambda: not router.route("chatbot").stale)
        assert router.route("chatbot").version == "bot-1.4"
        assert router.registry.get_sample_value("riskstream_router_state_lost") == 0.0
        # The worker counts the restore after its write lands, so the router may see the
        # flags a moment before the counter moves.
        _wait(
            "the worker to count the restore",
            lambda: (_metric(port, "riskstream_containment_flags_restored_total") or 0) >= 1,
        )

        # Redis down while an incident comes: the worker waits for it, then applies it.
        server.kill()
        send("incidents", incident("inc-2", "diagnosis", type="error-rate"))
        _wait("the worker degraded", lambda: _health(port) == "degraded", timeout=60)
        assert worker.process.poll() is None, worker.log()
        server.start()
        review = router.wait_for("diagnosis", 1, timeout=120)
        assert (review.mode, review.incident_id) == ("human-review", "inc-2")
        _wait("the worker healthy", lambda: _health(port) == "ok", timeout=60)
        _wait("chatbot fresh", lambda: not router.route("chatbot").stale)
    finally:
        watching.set()
        if watcher.is_alive():
            watcher.join(5)
        router.close()
        worker.signal(signal.SIGCONT)
        worker.stop()
    lost = [d for d in seen if d.version != "bot-1.4" or d.incident_id != "inc-1"]
    assert seen and not lost, f"serving saw containment lifted: {lost[:3]}"
    routing = read_topic(kafka_bootstrap, setup.topics["routing_changes"])
    assert len(routing) >= 4
