"""How a Redis URL picks the client: ``redis+cluster://`` means a Redis Cluster.

No server is needed: the builder checks the URL before it connects.
"""

from __future__ import annotations

import pytest

from riskstream.adapters.redis.client import client_builder, shown_url
from riskstream.errors import ConfigError, StateStoreError


def test_a_cluster_url_is_checked_before_anything_connects() -> None:
    build = client_builder("redis+cluster://a.example:7000,b.example:7001")
    assert callable(build)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://a:7000/2", "database 0"),
        ("redis+cluster://a:7000?timeout=1", "database 0"),
        ("redis+cluster://a:7000,b", "not host:port"),
        ("redis+cluster://", "not host:port"),
        ("redis-cluster://a:7000", "must start with"),
    ],
)
def test_a_malformed_cluster_url_is_refused_with_what_to_write(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        client_builder(url)


def test_tls_options_need_a_tls_cluster_url() -> None:
    with pytest.raises(ConfigError, match="not TLS"):
        client_builder("redis+cluster://a:7000", ssl_ca_certs="/etc/ca.pem")
    client_builder("rediss+cluster://a:7000", ssl_ca_certs="/etc/ca.pem")


def test_credentials_are_given_once_and_never_shown() -> None:
    with pytest.raises(ConfigError, match="both in the URL"):
        client_builder("redis+cluster://app:pw@a:7000", password="pw")
    assert shown_url("redis+cluster://app:s3cret@a:7000,b:7001") == "redis+cluster://a:7000,b:7001"


def test_an_unreachable_cluster_says_what_to_check() -> None:
    build = client_builder(
        "redis+cluster://127.0.0.1:1", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    with pytest.raises(StateStoreError, match="cluster-enabled yes"):
        build()
