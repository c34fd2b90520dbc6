"""The Router against a real redis-server: propagation, ordering, outages, ACLs.

Flags are written the way the flag store writes them: ``HSET`` of the flag JSON
into ``rs:{flags|<ns>}:flags``, then ``PUBLISH`` of ``{"model_id", "revision"}``
on ``rs:{flags|<ns>}:changed``.
"""

from __future__ import annotations

import logging
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import services as local_services  # deploy/local/services.py (tests/conftest.py)
from riskstream.core.routing import RoutingFlag
from riskstream.router import REQUIRED_ACL, Router, flag_keys


def write(client: redis.Redis, namespace: str, flag: RoutingFlag, *, publish: bool = True) -> None:
    flags_key, channel = flag_keys(namespace)
    pipe = client.pipeline(transaction=True)
    pipe.hset(flags_key, flag.model_id, orjson.dumps(flag.to_data()))
    if publish:
        pipe.publish(channel, orjson.dumps({"model_id": flag.model_id, "revision": flag.revision}))
    pipe.execute()


def flag(model_id: str, revision: int, **changes: object) -> RoutingFlag:
    return RoutingFlag(model_id, f"v{revision}", revision=revision).evolve(**changes)


def metric(router: Router, name: str) -> float:
    value = router.registry.get_sample_value(name)
    assert value is not None, name
    return value


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def namespace(unique: Callable[[str], str]) -> str:
    return unique("router")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisOnPort:
    """A redis-server on a chosen port (start_redis picks its own), for restarts."""

    def __init__(self, port: int, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--save", "", "--appendonly", "no", "--logfile", str(workdir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{port}/0"
        with redis.Redis.from_url(self.url) as probe:
            deadline = time.monotonic() + 10
            while True:
                try:
                    probe.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        raise
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def test_flags_present_at_start_are_served_at_once(client: redis.Redis, namespace: str) -> None:
    write(client, namespace, flag("m", 3, mode="human-review", incident_id="inc-9"))
    with Router(client, namespace=namespace) as router:
        decision = router.route("m")  # no wait: the constructor waited for the first load
    assert (decision.version, decision.mode, decision.revision) == ("v3", "human-review", 3)
    assert (decision.incident_id, decision.stale) == ("inc-9", False)


def test_a_published_change_is_visible_within_100ms(client: redis.Redis, namespace: str) -> None:
    with Router(client, namespace=namespace) as router:
        assert router.route("m").revision == 0
        start = time.monotonic()
        write(client, namespace, flag("m", 1, mode="fallback", traffic_fraction=0.5))
        decision = router.wait_for("m", 1, timeout=0.1)
        elapsed = time.monotonic() - start
        assert (decision.mode, decision.traffic_fraction, decision.stale) == (
            "fallback",
            0.5,
            False,
        )
        assert elapsed < 0.1
        assert metric(router, "riskstream_router_updates_total") == 1


def test_an_older_revision_published_later_is_ignored(client: redis.Redis, namespace: str) -> None:
    with Router(client, namespace=namespace, max_staleness_s=0.4) as router:
        write(client, namespace, flag("m", 3, mode="blocked"))
        router.wait_for("m", 3, timeout=1)
        write(client, namespace, flag("m", 2))  # hash and message both go backwards
        write(client, namespace, flag("marker", 1))  # messages arrive in order
        router.wait_for("marker", 1, timeout=1)
        assert router.route("m").mode == "blocked"
        time.sleep(0.5)  # two full re-reads of the hash: still not backwards
        assert (router.route("m").revision, router.route("m").mode) == (3, "blocked")


def test_a_missing_model_gets_the_default_decision(client: redis.Redis, namespace: str) -> None:
    write(client, namespace, flag("known", 1))
    with Router(client, namespace=namespace, default_version="v-default") as router:
        decision = router.route("unknown")
    assert (decision.version, decision.mode, decision.traffic_fraction) == (
        "v-default",
        "normal",
        1.0,
    )
    assert (decision.revision, decision.incident_id, decision.stale) == (0, None, False)


def test_a_change_whose_message_was_lost_arrives_with_the_next_full_read(
    client: redis.Redis, namespace: str
) -> None:
    with Router(client, namespace=namespace, max_staleness_s=0.4) as router:
        write(client, namespace, flag("m", 1), publish=False)
        router.wait_for("m", 1, timeout=1.0)  # re-read every max_staleness_s / 2 (0.2 s)


def test_a_malformed_flag_keeps_the_last_good_one(
    client: redis.Redis, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    flags_key, channel = flag_keys(namespace)
    with Router(client, namespace=namespace, max_staleness_s=0.4) as router:
        write(client, namespace, flag("m", 1, mode="fallback"))
        router.wait_for("m", 1, timeout=1)
        client.hset(flags_key, "m", orjson.dumps(flag("m", 2, mode="canary").to_data()))
        client.publish(channel, b'{"model_id": "m", "revision": 2}')
        client.publish(channel, b"not json")
        write(client, namespace, flag("marker", 1))
        router.wait_for("marker", 1, timeout=1)
        time.sleep(0.5)  # full re-reads see the bad flag again: counted and logged once
        assert (router.route("m").revision, router.route("m").mode) == (1, "fallback")
        assert metric(router, "riskstream_router_invalid_flags_total") == 2
    assert sum("unknown mode 'canary'" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("retrying_client", [False, True])
def test_a_killed_subscription_reconnects_and_catches_up(
    redis_url: str, client: redis.Redis, namespace: str, retrying_client: bool
) -> None:
    """Both ways a dropped subscription comes back must end in a full re-read.

    With the router's own client (no retries) the session fails and restarts;
    a client with retries reconnects and resubscribes by itself, silently, and
    only the fresh subscribe confirmation shows that messages were missed.
    """
    name = f"rt-{namespace}"
    own = redis.Redis.from_url(redis_url, client_name=name, retry=Retry(NoBackoff(), 3))
    source: str | redis.Redis = own if retrying_client else redis_url
    options = {} if retrying_client else {"client_name": name}
    try:
        with Router(source, namespace=namespace, **options) as router:
            write(client, namespace, flag("m", 1))
            router.wait_for("m", 1, timeout=1)
            assert client.client_kill_filter(_type="pubsub", skipme=True) >= 1
            write(client, namespace, flag("m", 2))  # published while nobody listens
            router.wait_for("m", 2, timeout=2)  # the resubscribe triggers a full read
            failures = metric(router, "riskstream_router_refresh_failures_total")
            assert (failures == 0) is retrying_client
            write(client, namespace, flag("m", 3))
            router.wait_for("m", 3, timeout=0.1)  # and messages flow again
    finally:
        own.close()


def test_redis_down_marks_decisions_stale_and_recovery_clears_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = local_services.start_redis(tmp_path / "first")
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    namespace = "outage"
    restarted: RedisOnPort | None = None
    try:
        with redis.Redis.from_url(server.url) as client:
            write(client, namespace, flag("m", 4, mode="fallback"))
            write(client, namespace, flag("old-only", 9))
        with Router(server.url, namespace=namespace, max_staleness_s=1.0) as router:
            assert router.route("m").revision == 4
            assert metric(router, "riskstream_router_stale") == 0

            server.stop()
            down_at = time.monotonic()
            decision = router.route("m")  # the last known decision, still served
            assert (decision.revision, decision.mode, decision.stale) == (4, "fallback", False)
            wait_until(lambda: router.route("m").stale, 2.0, "stale")
            assert time.monotonic() - down_at > 0.4  # bound 1.0 minus up to one 0.5 s re-read
            decision = router.route("m")
            assert (decision.revision, decision.mode, decision.age_s > 1.0) == (4, "fallback", True)
            assert metric(router, "riskstream_router_stale") == 1
            assert metric(router, "riskstream_router_refresh_failures_total") >= 1

            restarted = RedisOnPort(port, tmp_path / "second")  # empty: no persistence
            with redis.Redis.from_url(restarted.url) as client:
                write(client, namespace, flag("m", 1, mode="blocked"))
            recovered_in = wait_until(lambda: not router.route("m").stale, 5.0, "recovery")
            # A different server (new run_id): its state is adopted, backwards included.
            decision = router.wait_for("m", 1, timeout=1)  # the write may follow recovery
            assert (decision.revision, decision.mode, decision.stale) == (1, "blocked", False)
            assert router.route("old-only").revision == 0
            assert metric(router, "riskstream_router_stale") == 0
            with redis.Redis.from_url(restarted.url) as client:
                write(client, namespace, flag("m", 2))
            router.wait_for("m", 2, timeout=0.1)
        print(f"\nrecovered {recovered_in * 1e3:.0f} ms after the restarted server answered")
        assert any("different server" in r.getMessage() for r in caplog.records)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


def test_construction_does_not_fail_when_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    server: RedisOnPort | None = None
    start = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="riskstream.router"):
        router = Router(url, namespace="down", default_version="v0", start_timeout_s=1.0)
    try:
        assert time.monotonic() - start < 1.5
        decision = router.route("m")
        assert (decision.version, decision.mode, decision.stale) == ("v0", "normal", True)
        assert metric(router, "riskstream_router_stale") == 1
        assert any("serving default decisions" in r.getMessage() for r in caplog.records)
        assert all("hunter2" not in r.getMessage() for r in caplog.records)
        assert "hunter2" not in repr(router)

        server = RedisOnPort(port, tmp_path / "late")
        with redis.Redis.from_url(server.url) as client:
            client.config_set("requirepass", "hunter2")
            client.auth("hunter2")
            write(client, "down", flag("m", 1, mode="shadow"))
        assert router.wait_for("m", 1, timeout=5).mode == "shadow"
        assert not router.route("m").stale
    finally:
        router.close()
        if server is not None:
            server.stop()


def test_the_documented_acl_is_enough(
    redis_url: str, client: redis.Redis, namespace: str, unique: Callable[[str], str]
) -> None:
    user = unique("router-user")
    for rules, restart_detection in ((REQUIRED_ACL, True), (REQUIRED_ACL[: -len(" +info")], False)):
        client.acl_setuser(user, enabled=True, passwords=["+s3cret"], reset_keys=True)
        client.execute_command("ACL", "SETUSER", user, "resetchannels", "-@all", *rules.split())
        try:
            with Router(redis_url, namespace=namespace, username=user, password="s3cret") as router:
                assert not router.route("m").stale
                write(client, namespace, flag("m", 1 + router.route("m").revision))
                router.wait_for("m", 1, timeout=1)
                assert (router._run_id is not None) is restart_detection
        finally:
            client.acl_deluser(user)


def test_propagation_latency_over_200_changes(client: redis.Redis, namespace: str) -> None:
    def measure(router: Router, first: int, busy: bool) -> list[float]:
        stop = threading.Event()

        def serve() -> None:  # a serving thread hammering route(), holding the GIL
            while not stop.is_set():
                router.route("other")

        server = threading.Thread(target=serve)
        if busy:
            server.start()
        latencies = []
        try:
            for revision in range(first, first + 200):
                start = time.perf_counter()
                write(client, namespace, flag("m", revision))
                router.wait_for("m", revision, timeout=1)
                latencies.append(time.perf_counter() - start)
        finally:
            stop.set()
            if busy:
                server.join()
        return latencies

    def summary(latencies: list[float]) -> str:
        ms = sorted(x * 1e3 for x in latencies)
        return f"p50 {statistics.median(ms):.2f} ms, p99 {ms[197]:.2f} ms, max {ms[-1]:.2f} ms"

    with Router(client, namespace=namespace) as router:
        idle = measure(router, 1, busy=False)
        busy = measure(router, 201, busy=True)
        route = router.route
        calls = 100_000
        start = time.perf_counter()
        for _ in range(calls):
            route("m")
        per_call = (time.perf_counter() - start) / calls
    print(f"\nHSET+PUBLISH -> visible, idle process: {summary(idle)}")
    print(f"HSET+PUBLISH -> visible, a thread busy calling route(): {summary(busy)}")
    print(f"Router.route: {per_call * 1e6:.2f} µs/call")
    assert sorted(idle)[197] < 0.1


def test_a_flag_field_that_is_not_utf8_does_not_stop_the_router(
    client: redis.Redis, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A hash field Redis holds under a name that is not UTF-8 (any writer with HSET
    can put one there) is skipped and counted: it stopped every full read before, so
    the router went stale for every model and stayed so."""
    flags_key, _ = flag_keys(namespace)
    write(client, namespace, flag("m", 1, mode="fallback"))
    client.hset(flags_key, b"bad\xff", b"{}")
    with Router(client, namespace=namespace, max_staleness_s=0.4) as router:
        assert (router.route("m").mode, router.route("m").stale) == ("fallback", False)
        time.sleep(0.6)  # past the staleness bound: full re-reads must still succeed
        write(client, namespace, flag("m", 2, mode="human-review"))
        decision = router.wait_for("m", 2, timeout=2)
        assert (decision.mode, decision.stale) == ("human-review", False)
        assert metric(router, "riskstream_router_invalid_flags_total") == 1
    assert sum("not UTF-8" in r.getMessage() for r in caplog.records) == 1
