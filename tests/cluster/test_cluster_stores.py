"""What only a Redis Cluster can get wrong beyond the store contract suite (which runs
on it too): keys of one scope spread over every shard, and a scan must visit each."""

from __future__ import annotations

from collections.abc import Callable

from riskstream.adapters.redis.client import client_from_url
from riskstream.adapters.redis.keys import partition_keys
from riskstream.adapters.redis.state import RedisStateStore


def test_the_partitions_of_a_scope_are_found_on_every_shard(
    redis_cluster_url: str, unique: Callable[[str], str]
) -> None:
    scope = unique("scan")
    partitions = [("events", p) for p in range(24)]
    store = RedisStateStore.from_url(redis_cluster_url)
    client = client_from_url(redis_cluster_url)
    try:
        for tp in partitions:
            store.save(scope, tp, store.claim(scope, tp).epoch, 1, {}, {"k": b"v"})
        shards = {client.get_node_from_key(partition_keys(scope, tp)[0]).name for tp in partitions}  # type: ignore[union-attr]
        assert len(shards) == 3  # the partitions really are spread
        assert store.partitions(scope) == partitions
    finally:
        store.close()
        client.close()
