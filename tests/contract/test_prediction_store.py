"""The PredictionStore contract, run over every backend (in-memory and real Redis).

What the label join relies on: a record comes back as JSON would carry it, until
its TTL runs out and never after; reading does not remove it; a batch put or get
is the same as one per record.  The Redis-only part at the end pins the key
layout and the error translation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis

from riskstream.adapters.memory.predictions import InMemoryPredictionStore
from riskstream.adapters.redis.predictions import (
    REQUIRED_ACL,
    RedisPredictionStore,
    prediction_key_prefix,
)
from riskstream.errors import ConfigError, StateStoreError

# The fixture's type lives in conftest; only its shape matters here.
Backend = Any
DAY = 86400.0

RECORD = {
    "model_id": "derm",
    "time": 1795687200.25,
    "model_version": "4.2",
    "label": "melanoma",
    "score": 0.93,
    "segment": {"sex": "f", "age_band": "65+"},
}


def test_a_record_round_trips_and_reading_does_not_remove_it(predictions: Backend) -> None:
    store = predictions.store
    store.put("p1", RECORD, ttl_s=DAY)
    assert store.get("p1") == RECORD
    assert store.get("p1") == RECORD  # a second label for the same prediction finds it
    assert store.get_many(["p1"]) == {"p1": RECORD}


def test_a_missing_id_reads_as_none(predictions: Backend) -> None:
    store = predictions.store
    assert store.get("never-stored") is None
    assert store.get_many(["never-stored", "nor-this"]) == {}
    assert store.get_many([]) == {}


def test_records_are_copies_both_ways(predictions: Backend) -> None:
    store = predictions.store
    record = {"model_id": "m", "time": 1.0, "segment": {"g": "a"}, "path": (1, 2)}
    store.put("p", record, ttl_s=DAY)
    record["segment"]["g"] = "changed"  # type: ignore[index]
    got = store.get("p")
    assert got == {"model_id": "m", "time": 1.0, "segment": {"g": "a"}, "path": [1, 2]}
    got["segment"]["g"] = "changed too"
    assert store.get("p") == {"model_id": "m", "time": 1.0, "segment": {"g": "a"}, "path": [1, 2]}


def test_a_put_replaces_the_record_and_its_ttl(predictions: Backend) -> None:
    store, wait = predictions
    store.put("p", {"v": 1}, ttl_s=0.3)
    store.put("p", {"v": 2}, ttl_s=DAY)
    wait(0.5)
    assert store.get("p") == {"v": 2}


def test_a_record_expires_after_its_ttl(predictions: Backend) -> None:
    store, wait = predictions
    store.put("short", {"v": 1}, ttl_s=0.3)
    store.put_many([("short-batch", {"v": 2})], ttl_s=0.3)
    store.put("long", {"v": 3}, ttl_s=DAY)
    assert store.get_many(["short", "short-batch", "long"]).keys() == {
        "short",
        "short-batch",
        "long",
    }
    wait(0.5)
    assert store.get("short") is None
    assert store.get("short-batch") is None
    assert store.get_many(["short", "short-batch", "long"]) == {"long": {"v": 3}}


def test_a_batch_put_and_get_equal_one_at_a_time(predictions: Backend) -> None:
    store = predictions.store
    rng = random.Random(5)
    records = {
        f"pred-{i:06d}": {
            "model_id": f"model-{i % 7}",
            "time": 1795687200.0 + i / 1000,
            "label": rng.choice(["benign", "melanoma", "carcinoma"]),
            "score": rng.random(),
            "segment": {"age_band": rng.choice(["<40", "40-64", "65+"])},
        }
        for i in range(5000)  # more than one Redis pipeline / MGET chunk
    }
    store.put_many(iter(records.items()), ttl_s=DAY)
    wanted = [*records, "missing-1", "pred-000001", "missing-2"]  # a repeat and misses
    assert store.get_many(iter(wanted)) == records
    assert all(store.get(pid) == records[pid] for pid in ("pred-000000", "pred-004999"))
    store.put_many([], ttl_s=DAY)


def test_ids_and_values_survive_byte_for_byte(predictions: Backend) -> None:
    store = predictions.store
    ids = [
        "ünïcödé/€/🚀",
        "with space\tand\nnewline",
        "nul\x00inside",
        "a:b",
        "{hash-tag}",
        "x" * 256,
        "",
    ]
    value = {
        "text": "".join(chr(c) for c in range(1, 0x250)) + "\u2028\ud7ff\U0010ffff🚀",
        "floats": [0.1, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 1795687200.123456],
        "ints": [0, -1, 2**63 - 1, -(2**63)],
        "bools": [True, False, None],
        "nested": {"": {"deeper": ["", {}]}},
    }
    store.put_many([(pid, {**value, "id": pid}) for pid in ids], ttl_s=DAY)
    got = store.get_many(ids)
    assert got == {pid: {**value, "id": pid} for pid in ids}
    assert all(orjson.dumps(got[pid]) == orjson.dumps({**value, "id": pid}) for pid in ids)
    assert math.copysign(1.0, got["a:b"]["floats"][4]) == -1.0  # -0.0 stays negative


@pytest.mark.parametrize("ttl_s", [0, -1.0, math.nan, math.inf, True, "60"])
def test_a_ttl_that_is_not_a_positive_number_is_refused(predictions: Backend, ttl_s: Any) -> None:
    store = predictions.store
    with pytest.raises(ValueError, match="ttl_s must be"):
        store.put("p", {"v": 1}, ttl_s=ttl_s)
    with pytest.raises(ValueError, match="ttl_s must be"):
        store.put_many([("q", {"v": 1})], ttl_s=ttl_s)
    assert store.get_many(["p", "q"]) == {}


def test_a_batch_with_a_bad_record_writes_nothing(predictions: Backend) -> None:
    store = predictions.store
    batch: list[tuple[str, Any]] = [("ok-1", {"v": 1}), ("bad", {"v": object()}), ("ok-2", {})]
    with pytest.raises(TypeError, match=r"'bad'.*not JSON-able"):
        store.put_many(batch, ttl_s=DAY)
    with pytest.raises(TypeError, match="prediction_id must be a str"):
        store.put(7, {"v": 1}, ttl_s=DAY)
    assert store.get_many(["ok-1", "bad", "ok-2"]) == {}


def test_the_memory_store_drops_expired_records() -> None:
    now = [0.0]
    store = InMemoryPredictionStore(clock=lambda: now[0])
    for step in range(100):
        store.put_many([(f"p{step}-{i}", {"i": i}) for i in range(100)], ttl_s=10.0)
        now[0] += 1.0
    assert len(store) <= 1100  # the last ten seconds' worth, plus the batch being written
    assert store.get("p99-0") == {"i": 0}
    assert store.get("p0-0") is None


# --- Redis only ----------------------------------------------------------------


def test_the_key_layout_is_pinned() -> None:
    assert prediction_key_prefix() == "rs:pred|default:"
    assert REQUIRED_ACL == "~rs:pred|* +set +get +mget +evalsha +script|load"
    for bad in ("", "a:b", "{x}", "a}"):
        with pytest.raises(ConfigError, match="namespace"):
            prediction_key_prefix(bad)


@pytest.mark.integration
def test_redis_keys_carry_the_record_and_a_millisecond_expiry(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    namespace = unique("layout")
    store = RedisPredictionStore.from_url(redis_url, namespace=namespace)
    raw = redis.Redis.from_url(redis_url)
    try:
        store.put("p1", RECORD, ttl_s=30.5)
        key = f"rs:pred|{namespace}:p1"
        assert store.key("p1") == key
        stored = raw.get(key)
        assert isinstance(stored, bytes) and orjson.loads(stored) == RECORD
        assert 30_000 < raw.pttl(key) <= 30_500
    finally:
        raw.close()
        store.close()


@pytest.mark.integration
def test_namespaces_are_isolated(redis_url: str, unique: Callable[[str], str]) -> None:
    a = RedisPredictionStore.from_url(redis_url, namespace=unique("ns-a"))
    b = RedisPredictionStore.from_url(redis_url, namespace=unique("ns-b"))
    try:
        a.put("p", {"from": "a"}, ttl_s=DAY)
        assert b.get("p") is None
        b.put("p", {"from": "b"}, ttl_s=DAY)
        assert (a.get("p"), b.get("p")) == ({"from": "a"}, {"from": "b"})
    finally:
        a.close()
        b.close()


@pytest.mark.integration
def test_a_foreign_value_is_reported_not_returned(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    store = RedisPredictionStore.from_url(redis_url, namespace=unique("foreign"))
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.set(store.key("p"), b"\xff not json")
        raw.set(store.key("q"), b"[1, 2]")
        with pytest.raises(StateStoreError, match="something else wrote to it"):
            store.get("p")
        with pytest.raises(StateStoreError, match="something else wrote to it"):
            store.get_many(["q"])
    finally:
        raw.close()
        store.close()


@pytest.mark.integration
def test_the_required_acl_is_enough_and_less_is_reported(
    redis_url: str, unique: Callable[[str], str]
) -> None:
    admin = redis.Redis.from_url(redis_url)
    user, weak, password = unique("pred-user"), unique("pred-weak"), "s3cret-pw"
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", *REQUIRED_ACL.split())
    weak_acl = REQUIRED_ACL.replace(" +evalsha", "").split()
    admin.execute_command("ACL", "SETUSER", weak, "on", f">{password}", *weak_acl)
    namespace = unique("acl")
    store = RedisPredictionStore.from_url(
        redis_url, namespace=namespace, username=user, password=password
    )
    weak_store = RedisPredictionStore.from_url(
        redis_url, namespace=namespace, username=weak, password=password
    )
    try:
        store.put("p0", {"v": 0}, ttl_s=DAY)
        store.put_many([("p1", {"v": 1}), ("p2", {"v": 2})], ttl_s=DAY)
        assert store.get("p1") == {"v": 1}
        assert store.get_many(["p0", "p1", "p2"]) == {f"p{i}": {"v": i} for i in range(3)}
        with pytest.raises(StateStoreError, match=r"needs '~rs:pred\|\* \+set") as raised:
            weak_store.put_many([("p3", {"v": 3})], ttl_s=DAY)
        assert password not in str(raised.value)
        assert store.get("p3") is None
    finally:
        store.close()
        weak_store.close()
        admin.acl_deluser(user, weak)
        admin.close()
