"""Redis at its memory limit, with the eviction policy the README recommends.

Predictions waiting for their labels are the only riskstream keys with a TTL (the
write probe aside), and the bulk of a label-joining deployment's Redis (rate x
``ttl_days``).  With ``maxmemory-policy volatile-ttl`` a full Redis evicts the
predictions closest to expiry first and nothing else: checkpoints, flags, audit and
approvals are never evicted, and the processor does not stop.  With the default
``noeviction`` every write would fail, checkpoints included, and the processor would
hold all of its partitions until memory is freed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

import services as local_services  # deploy/local/services.py, on pytest's pythonpath
from riskstream.adapters.redis.keys import prediction_key_prefix
from riskstream.adapters.redis.predictions import RedisPredictionStore
from riskstream.bootstrap import kafka_processor
from riskstream.core.timeutil import format_time
from support import (
    LABEL_MONITOR_YAML,
    START,
    create_topics,
    end_offsets,
    make_setup,
    processor_thread,
    produce,
    wait_until_saved,
)

HEADROOM = 2 * 1024 * 1024  # bytes over what the server uses when the test starts
PREDICTIONS = 30_000  # ~9 MB of predictions (~300 B each): 4x the headroom


@pytest.fixture
def full_redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own (deploy/local/services.py, as the cluster stage's),
    limited to what it uses at start plus HEADROOM and evicting volatile-ttl: other
    tests' keys on the shared server would be evicted in place of this test's."""
    server = local_services.start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(server.url)
    try:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used + HEADROOM))
        client.config_set("maxmemory-policy", "volatile-ttl")
        yield server.url
    finally:
        client.close()
        server.stop()


def test_a_full_redis_evicts_the_oldest_predictions_and_the_processor_goes_on(
    kafka_bootstrap: str,
    full_redis_url: str,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    setup = make_setup(tmp_path, unique("fullredis"), monitors_yaml=LABEL_MONITOR_YAML)
    topics = setup.topics
    create_topics(kafka_bootstrap, topics.values(), partitions=1)
    full_redis = redis.Redis.from_url(full_redis_url)
    predictions = [
        {"event_id": f"p{i}", "time": format_time(START + i), "model_id": "dx",
         "prediction_id": f"pred-{i}", "prediction": {"label": "malignant"},
         "segment": {"age_band": "65+"}}
        for i in range(PREDICTIONS)
    ]  # fmt: skip
    produce(kafka_bootstrap, topics["inference"], [(b"dx", orjson.dumps(e)) for e in predictions])

    registry = CollectorRegistry()
    with processor_thread(setup, kafka_bootstrap, full_redis_url, registry):
        ends = end_offsets(kafka_bootstrap, topics["inference"], 1)
        states = wait_until_saved(full_redis_url, setup.group, ends)

    # Every event applied and checkpointed: no write failed, nothing was held.
    (state,) = states.values()
    assert state.counters["applied"] == PREDICTIONS
    assert registry.get_sample_value("riskstream_state_store_failures_total") == 0
    # Redis made room by evicting predictions and nothing else: the newest stay.
    # (volatile-ttl samples keys, so "oldest first" holds on the whole, not for each.)
    evicted = int(full_redis.info("stats")["evicted_keys"])
    prefix = prediction_key_prefix(setup.group)
    kept = [int(k.decode().rsplit("-", 1)[1]) for k in full_redis.scan_iter(prefix + "*")]
    full_redis.close()
    assert evicted == PREDICTIONS - len(kept) > 0
    assert PREDICTIONS - 1 in kept
    assert sum(kept) / len(kept) > 0.6 * PREDICTIONS  # evicted at random: ~0.5


def test_a_label_joining_processor_says_when_redis_would_stop_it_when_full(
    kafka_bootstrap: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing said that Redis's default policy stops detection once predictions fill
    Redis: a processor that joins labels now warns at start, naming the fix."""
    server = local_services.start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(server.url)
    try:
        store = RedisPredictionStore.from_url(server.url, namespace="policy")
        problem = store.eviction_problem()  # a fresh server: noeviction
        assert problem is not None and "noeviction" in problem and "volatile-ttl" in problem
        client.config_set("maxmemory-policy", "allkeys-lru")
        assert "evicts detector state" in (store.eviction_problem() or "")
        client.config_set("maxmemory-policy", "volatile-ttl")
        assert store.eviction_problem() is None
        store.close()

        client.config_set("maxmemory-policy", "noeviction")
        setup = make_setup(tmp_path, "policy", monitors_yaml=LABEL_MONITOR_YAML)
        with caplog.at_level(logging.WARNING, logger="riskstream.bootstrap"):
            kafka_processor(setup.config, kafka_bootstrap, server.url, CollectorRegistry()).close()
        assert any("maxmemory-policy noeviction" in r.getMessage() for r in caplog.records)
    finally:
        client.close()
        server.stop()
