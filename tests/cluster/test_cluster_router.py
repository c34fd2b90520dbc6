"""The serving side on a Redis Cluster: the router follows the flag store through a
failover of the primary that holds its namespace, and starts while the cluster is down."""

from __future__ import annotations

import time
from collections.abc import Callable

import services as local_services
from riskstream.adapters.redis.flags import RedisFlagStore
from riskstream.core.routing import FlagChange, RoutingFlag
from riskstream.router import Router, flag_keys


def _apply(store: RedisFlagStore, model: str, revision: int) -> None:
    flag = RoutingFlag(model, f"v{revision}", revision=revision, actor="test")
    result = store.apply(FlagChange(f"change-{revision}", revision - 1, flag), time.time())
    assert result.outcome == "applied", result


def test_a_router_follows_the_flags_through_a_failover_of_their_primary(
    redis_cluster: local_services.RedisCluster, unique: Callable[[str], str]
) -> None:
    namespace = unique("router")
    store = RedisFlagStore.from_url(redis_cluster.url, namespace=namespace)
    router = Router(redis_cluster.url, namespace=namespace, max_staleness_s=2.0)
    primary = None
    try:
        _apply(store, "model-a", 1)
        assert router.wait_for("model-a", 1, timeout=5).version == "v1"
        client = store._client
        primary = client.get_node_from_key(flag_keys(namespace)[0]).port  # type: ignore[union-attr]
        (replica,) = redis_cluster.replica_of(primary)
        redis_cluster.nodes[primary].process.kill()
        redis_cluster.nodes[primary].process.wait()
        deadline = time.monotonic() + 60
        while replica not in redis_cluster.masters():
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.1)
        for attempt in range(100):  # the store's client finds the new primary by itself
            try:
                _apply(store, "model-a", 2)
                break
            except Exception:
                if attempt == 99:
                    raise
                time.sleep(0.1)
        decision = router.wait_for("model-a", 2, timeout=30)
        assert (decision.version, decision.stale) == ("v2", False)
    finally:
        router.close()
        store.close()
        if primary is not None and redis_cluster.nodes[primary].process.poll() is not None:
            redis_cluster.restart(primary)


def test_a_router_starts_while_its_cluster_is_unreachable() -> None:
    started = time.monotonic()
    router = Router("redis+cluster://127.0.0.1:1", start_timeout_s=0.5)
    try:
        decision = router.route("model-a")
        assert (decision.mode, decision.stale) == ("normal", True)
        assert time.monotonic() - started < 5
    finally:
        router.close()
