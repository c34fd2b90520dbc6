"""The router's in-process half: decisions, revisions, staleness, parsing, config.

Nothing here talks to Redis (tests/integration/test_router.py does).
"""

from __future__ import annotations

import math
import threading

import orjson
import pytest
import redis

from riskstream.core.routing import RoutingFlag
from riskstream.errors import ConfigError
from riskstream.router import (
    Decision,
    FlagCache,
    Router,
    flag_keys,
    parse_flag,
    parse_message,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def flag(model_id: str = "m", revision: int = 1, **changes: object) -> RoutingFlag:
    return RoutingFlag(model_id, f"v{revision}", revision=revision).evolve(**changes)


def test_a_model_without_a_flag_gets_the_default_decision() -> None:
    clock = FakeClock()
    cache = FlagCache(default_version="v-default", max_staleness_s=5.0, clock=clock)
    cache.mark_refreshed()
    clock.now += 1.5
    assert cache.route("nope") == Decision(
        model_id="nope",
        version="v-default",
        mode="normal",
        traffic_fraction=1.0,
        revision=0,
        incident_id=None,
        stale=False,
        age_s=1.5,
    )
    assert FlagCache().route("nope").version is None  # the caller uses its own default


def test_a_flag_becomes_the_decision() -> None:
    clock = FakeClock()
    cache = FlagCache(clock=clock)
    cache.mark_refreshed()
    cache.offer(flag(revision=4, mode="fallback", traffic_fraction=0.25, incident_id="inc-1"))
    decision = cache.route("m")
    assert (decision.version, decision.mode, decision.traffic_fraction) == ("v4", "fallback", 0.25)
    assert (decision.revision, decision.incident_id, decision.stale) == (4, "inc-1", False)


def test_a_revision_never_goes_backwards() -> None:
    cache = FlagCache()
    assert cache.offer(flag(revision=3))
    assert not cache.offer(flag(revision=2))
    assert not cache.offer(flag(revision=3, mode="blocked"))  # same revision: first wins
    assert cache.route("m").revision == 3
    assert cache.route("m").mode == "normal"
    assert cache.offer(flag(revision=4))
    assert cache.revision("m") == 4
    assert cache.revision("other") is None


def test_replace_adopts_another_servers_state_even_backwards() -> None:
    cache = FlagCache()
    cache.offer(flag("a", revision=7))
    cache.offer(flag("b", revision=2))
    assert cache.replace([flag("a", revision=1), flag("c", revision=1)]) == 2
    assert (cache.revision("a"), cache.revision("b"), cache.revision("c")) == (1, None, 1)


def test_staleness_follows_the_last_refresh() -> None:
    clock = FakeClock()
    cache = FlagCache(max_staleness_s=5.0, clock=clock)
    never = cache.route("m")
    assert never.stale and never.age_s == math.inf and cache.stale
    cache.offer(flag())
    cache.mark_refreshed()
    clock.now += 5.0
    assert not cache.route("m").stale  # at the bound: still fresh
    clock.now += 0.001
    stale = cache.route("m")
    assert stale.stale and stale.version == "v1"  # last known decision, marked stale
    cache.mark_refreshed()
    assert not cache.route("m").stale


def test_wait_for_returns_once_the_revision_arrives_and_times_out_otherwise() -> None:
    cache = FlagCache()
    cache.mark_refreshed()
    timer = threading.Timer(0.05, lambda: cache.offer(flag(revision=2)))
    timer.start()
    try:
        assert cache.wait_for("m", 2, timeout=5.0).revision == 2
    finally:
        timer.join()
    assert cache.wait_for("m", 1, timeout=0).revision == 2  # older: already there
    with pytest.raises(TimeoutError, match=r"revision 3 within 0\.01s"):
        cache.wait_for("m", 3, timeout=0.01)


def test_parse_flag_accepts_what_the_store_writes_and_rejects_the_rest() -> None:
    good = flag(revision=2, mode="human-review", expires_at=1_795_687_200.0)
    assert parse_flag("m", orjson.dumps(good.to_data())) == good
    assert parse_flag("m", orjson.dumps(good.to_data()).decode()) == good
    bad = {
        b"{not json": "JSONDecodeError",
        orjson.dumps({"model_id": "m"}): "KeyError",
        orjson.dumps(flag("other").to_data()): "names model 'other'",
        orjson.dumps(flag(mode="canary").to_data()): "unknown mode 'canary'",
        orjson.dumps(flag(traffic_fraction=1.5).to_data()): "outside 0..1",
        orjson.dumps([1, 2]): "TypeError",
    }
    for raw, why in bad.items():
        with pytest.raises(ValueError, match=why):
            parse_flag("m", raw)


def test_parse_message() -> None:
    assert parse_message(b'{"model_id": "m", "revision": 3}') == ("m", 3)
    for raw in (b"nope", b"{}", b'{"model_id": 1, "revision": 3}', b'{"model_id": "m"}', b"[]"):
        with pytest.raises(ValueError):
            parse_message(raw)


def test_key_names_and_namespaces() -> None:
    assert flag_keys() == ("rs:{flags|default}:flags", "rs:{flags|default}:changed")
    assert flag_keys("prod-eu")[0] == "rs:{flags|prod-eu}:flags"
    for bad in ("", "a|b", "a}b", "{x", "50%"):
        with pytest.raises(ConfigError, match="namespace"):
            flag_keys(bad)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("http://h:6379/0", {}, "must start with redis://"),
        ("redis://h:6379/0", {"ssl_ca_certs": "/ca.pem"}, "is not TLS"),
        ("redis://:hunter2@h:6379/0", {"password": "hunter2"}, "given both"),
        ("redis://h:6379/0", {"namespace": "a|b"}, "namespace"),
        ("redis://h:6379/0", {"max_staleness_s": 0}, "max_staleness_s"),
    ],
)
def test_malformed_configuration_fails_at_construction_without_leaking_passwords(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Router(url, **options)  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)


def test_url_options_are_refused_with_a_client() -> None:
    client = redis.Redis()  # never connects: the check comes first
    try:
        with pytest.raises(ConfigError, match=r"\['password', 'socket_timeout'\]"):
            Router(client, password="x", socket_timeout=1)
    finally:
        client.close()


def test_route_answers_every_model_from_the_local_cache() -> None:
    """Routing is a dict lookup on the serving path (its speed is a benchmark's business,
    not a timed test's): every model of a large cache answers, unknown ones get normal."""
    cache = FlagCache()
    for i in range(1000):
        cache.offer(flag(f"m{i}", revision=1))
    cache.mark_refreshed()
    answers = [cache.route(f"m{i}") for i in range(1000)]
    assert [(a.model_id, a.revision, a.stale) for a in answers] == [
        (f"m{i}", 1, False) for i in range(1000)
    ]
    unknown = cache.route("not-a-model")
    assert (unknown.mode, unknown.revision) == ("normal", 0)
