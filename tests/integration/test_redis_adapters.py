"""What every Redis adapter promises alike, checked once over all of them.

They share the client builder and the error translation
(:mod:`riskstream.adapters.redis.client`), so they refuse a text-decoding client
and contradictory URL settings the same way, and an unreachable server becomes a
``StateStoreError`` that says where and what to check, with redis-py's error kept
as the cause.  What differs is only what each adds about a write whose outcome is
unknown.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.adapters.redis.predictions import RedisPredictionStore
from riskstream.adapters.redis.state import RedisStateStore
from riskstream.core.routing import FlagChange, RoutingFlag, change_id
from riskstream.errors import ConfigError, StateStoreError


class Adapter(NamedTuple):
    cls: Any
    write: Callable[[Any], object]  # one write through the store
    unknown: str  # what the message adds when that write's outcome is unknown


def _flag_change() -> FlagChange:
    flag = RoutingFlag("m", "v2", revision=1, updated_at=1_000.0)
    return FlagChange(change_id("inc-1", 0), 0, flag)


ADAPTERS = {
    "state": Adapter(
        RedisStateStore,
        lambda store: store.claim("g", ("t", 0)),
        "",
    ),
    "flags": Adapter(
        RedisFlagStore,
        lambda store: store.apply(_flag_change(), at=1_000.0),
        "apply the same change again, it comes back 'duplicate' if it was",
    ),
    "predictions": Adapter(
        RedisPredictionStore,
        lambda store: store.put_many([("p", {"v": 1})], ttl_s=86_400.0),
        "put them again",
    ),
    "incidents": Adapter(RedisIncidentStore, lambda store: store.get("inc-1"), ""),
    "approvals": Adapter(RedisApprovalStore, lambda store: store.get("a"), ""),
}


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_client_that_decodes_responses_is_refused(name: str) -> None:
    client = redis.Redis(decode_responses=True)
    with pytest.raises(ConfigError, match="decode_responses=False"):
        ADAPTERS[name].cls(client)
    client.close()


@pytest.mark.parametrize("name", ["state", "flags", "predictions"])
@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("redis://h:6379/0", {"ssl_ca_certs": "/ca.pem"}, r"use a rediss:// URL"),
        ("http://h:6379", {}, r"must start with redis://"),
        ("redis://u:pw@h:6379/0", {"password": "pw2"}, r"both in the URL 'redis://h:6379/0'"),
    ],
)
def test_from_url_rejects_contradictory_settings(
    name: str, url: str, kwargs: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as raised:
        ADAPTERS[name].cls.from_url(url, **kwargs)
    assert "pw" not in str(raised.value).replace("pw2", "")


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_an_unreachable_server_says_where_and_what_to_check(name: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = ADAPTERS[name]
    store = adapter.cls.from_url(f"redis://127.0.0.1:{port}/0", retry=Retry(NoBackoff(), 0))
    with pytest.raises(StateStoreError) as raised:
        adapter.write(store)
    message = str(raised.value)
    assert f"Is Redis up and reachable at 127.0.0.1:{port}" in message
    assert "Connection refused" in message  # redis-py's own text is kept
    assert adapter.unknown in message
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    if name == "predictions":  # a read says which record it could not read
        with pytest.raises(StateStoreError, match="could not read prediction 'p'"):
            store.get("p")
    store.close()
