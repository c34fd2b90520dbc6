"""One way to turn a Redis URL and credentials into a client, for every Redis adapter.

**Redis Cluster** is chosen by the URL's scheme: ``redis+cluster://host:port,host:port``
(``rediss+cluster://`` for TLS) names some of the cluster's nodes as seeds, and
:func:`client_from_url` returns a :class:`redis.cluster.RedisCluster`, which learns
the rest (``CLUSTER SLOTS``) and follows failovers.  Every key riskstream writes is
hash-tagged so that each atomic unit (a partition's checkpoint, a flag namespace)
sits in one slot (:mod:`riskstream.adapters.redis.keys`); the stores run the same
scripts and transactions on either client.  A cluster URL has no database number
(a cluster has only database 0).

TLS needs ``rediss://``: the ``ssl_*`` files are the CA bundle that signs the
server's certificate and, for mutual TLS, this client's certificate and key.
``username``/``password`` are Redis 6 ACL credentials (a password alone
authenticates as ``default``); pass them here rather than in the URL, which tends
to end up in logs.  Other keyword arguments go to :meth:`redis.Redis.from_url`
(timeouts, ``retry``, ``client_name``).

:func:`translate_errors` is the one place redis-py's exceptions become
:class:`~riskstream.errors.StateStoreError`: every adapter's message has the same
shape (what failed, Redis's own words, then what to check), and the hints for the
failures every adapter meets (credentials, reachability, ACL, read-only replica,
maxmemory) are written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

from riskstream.errors import ConfigError, StateStoreError

__all__ = [
    "CLUSTER_SCHEMES",
    "RedisClient",
    "client_builder",
    "client_from_url",
    "common_hint",
    "explain",
    "is_cluster",
    "node_client",
    "shown_url",
    "translate_errors",
    "where",
]

#: A client of one server (standalone, or a primary with replicas) or of a Redis Cluster.
RedisClient = redis.Redis | RedisCluster
#: URL schemes that mean Redis Cluster: the seed nodes, comma-separated.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

Hint = Callable[[redis.RedisError], str | None]
"""An adapter's own advice for a Redis error, or None to fall back to the shared one."""


def shown_url(url: str) -> str:
    """The URL without credentials, fit for messages and logs.

    >>> shown_url("redis://app:s3cret@cache:6380/2")
    'redis://cache:6380/2'
    >>> shown_url("redis+cluster://app:s3cret@a:7000,b:7001")
    'redis+cluster://a:7000,b:7001'
    """
    parts = urlsplit(url)  # (its .port raises on a malformed port: not read here)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def where(client: RedisClient) -> str:
    """Where the client points, for messages: ``host:port``, ``unix:path`` or
    ``cluster host:port,...`` (its seed nodes)."""
    if isinstance(client, RedisCluster):
        seeds = ",".join(node.name for node in client.nodes_manager.startup_nodes.values())
        return f"cluster {seeds}"
    kwargs = client.get_connection_kwargs()
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def node_client(client: RedisClient, key: str) -> redis.Redis:
    """The client of the one server that holds ``key`` now: ``client`` itself, or on a
    cluster the primary serving the key's slot (for ``WAIT``, which counts the replicas
    that have *this connection's* writes, so it must follow them on the same one)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        connection: redis.Redis | None = node.redis_connection if node is not None else None
        if connection is None:
            raise redis.exceptions.RedisClusterException(f"no primary serves the slot of {key!r}")
        return connection
    return client


SOCKET_TIMEOUT_S = 10.0  # no riskstream command takes a healthy Redis this long
CONNECT_TIMEOUT_S = 5.0


def client_from_url(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ssl_ca_certs: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    **client_kwargs: Any,
) -> RedisClient:
    """A client for ``redis://``, ``rediss://`` or ``unix://``, or a Redis Cluster client
    for ``redis+cluster://`` and ``rediss+cluster://``; refuses contradictions.

    A cluster client reads the slot map as it is built, so it raises
    :class:`~riskstream.errors.StateStoreError` when no seed answers as a cluster node;
    :func:`client_builder` checks the URL now and connects later.
    """
    return client_builder(
        url,
        username=username,
        password=password,
        ssl_ca_certs=ssl_ca_certs,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        **client_kwargs,
    )()


def client_builder(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ssl_ca_certs: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    **client_kwargs: Any,
) -> Callable[[], RedisClient]:
    """What :func:`client_from_url` builds, checked now (:class:`ConfigError`) and built
    when called: a router must start while its Redis Cluster is down.

    Timeouts are on by default (:data:`SOCKET_TIMEOUT_S`, :data:`CONNECT_TIMEOUT_S`):
    without them a Redis that hangs, rather than refuses, would hang every caller
    (an API request, a checkpoint) until TCP gives up, minutes later.
    """
    client_kwargs.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    client_kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    parts = urlsplit(url)
    shown = shown_url(url)
    if (parts.password and password) or (parts.username and username):
        raise ConfigError(
            f"Redis credentials given both in the URL {shown!r} and as arguments; "
            "give them once (redis-py would silently use the URL's)."
        )
    if parts.scheme not in {"redis", "rediss", "unix", *CLUSTER_SCHEMES}:
        raise ConfigError(
            f"Redis URL {shown!r} must start with redis://, rediss:// (TLS), unix://, or "
            "redis+cluster:// / rediss+cluster:// (Redis Cluster: host:port,host:port,...)"
        )
    if parts.scheme not in CLUSTER_SCHEMES:
        try:
            parts.port  # noqa: B018 (urlsplit reads the port when asked: a bad one raises)
        except ValueError as exc:
            raise ConfigError(f"Redis URL {shown!r}: {exc}; give host:port") from None
    tls = {"ssl_ca_certs": ssl_ca_certs, "ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile}
    given_tls = {name: value for name, value in tls.items() if value is not None}
    if given_tls and parts.scheme not in {"rediss", "rediss+cluster"}:
        raise ConfigError(
            f"TLS options {sorted(given_tls)} were given but the Redis URL {shown!r} "
            "is not TLS; use a rediss:// URL."
        )
    auth = {"username": username, "password": password}
    client_kwargs.update({k: v for k, v in auth.items() if v is not None})
    client_kwargs.update(given_tls)
    if parts.scheme in CLUSTER_SCHEMES:
        return _cluster_builder(url, parts.scheme, client_kwargs)
    return lambda: redis.Redis.from_url(url, **client_kwargs)


def _cluster_builder(
    url: str, scheme: str, client_kwargs: dict[str, Any]
) -> Callable[[], RedisCluster]:
    """A RedisCluster seeded with every ``host:port`` of the URL, built when called."""
    shown = shown_url(url)
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if parts.path not in ("", "/", "/0") or parts.query:
        raise ConfigError(
            f"Redis Cluster URL {shown!r} may name only nodes (a cluster has database 0 "
            "alone, and takes its options as arguments)."
        )
    seeds: list[ClusterNode] = []
    for host_port in hosts.split(","):
        host, _, port = host_port.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"Redis Cluster URL {shown!r}: {host_port!r} is not host:port; list the "
                "seed nodes as redis+cluster://host:port,host:port"
            )
        seeds.append(ClusterNode(host.strip("[]"), int(port)))  # type: ignore[no-untyped-call]
    if userinfo:  # credentials in the URL: as redis-py would read them
        one = urlsplit(f"redis://{userinfo}@{hosts.split(',')[0]}")
        if one.username:
            client_kwargs.setdefault("username", unquote(one.username))
        if one.password:
            client_kwargs.setdefault("password", unquote(one.password))
    if scheme == "rediss+cluster":
        client_kwargs["ssl"] = True

    def build() -> RedisCluster:
        try:
            return RedisCluster(startup_nodes=seeds, **client_kwargs)
        except (redis.RedisError, RedisClusterException) as exc:  # reads the slot map
            raise StateStoreError(
                f"Redis Cluster at {shown} could not be reached: {type(exc).__name__}: "
                f"{str(exc).rstrip('.')}. Check that the URL names nodes of a Redis "
                "Cluster (cluster-enabled yes) that are up and reachable, the credentials, "
                "and that the ACL user may run CLUSTER SLOTS and COMMAND (CLUSTER_ACL in "
                "riskstream.adapters.redis.keys)."
            ) from exc

    return build


def common_hint(
    exc: redis.RedisError, where: str, required_acl: str, unknown: str = ""
) -> str | None:
    """What to check for the failures every Redis adapter meets, or None for others.

    ``unknown`` is what to tell the caller when a write may or may not have happened.
    """
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        return "Check the Redis username and password."
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return (
            f"Is Redis up and reachable at {where}, and do the URL's scheme "
            f"(rediss:// for TLS), the TLS certificates and the timeouts match the "
            f"server?{' ' + unknown if unknown else ''}"
        )
    if (
        isinstance(exc, redis.exceptions.NoPermissionError)
        or "can't run this" in text
        or "NOPERM" in text
    ):
        return f"The Redis ACL user needs {required_acl!r}."
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "This is a read-only replica: point the URL at the primary."
    return None


def _no_hint(exc: redis.RedisError) -> str | None:
    return None


def explain(
    exc: redis.RedisError, where: str, required_acl: str, unknown: str = "", hint: Hint = _no_hint
) -> str:
    """What to check: the shared hints first, then the adapter's, then a general one."""
    if common := common_hint(exc, where, required_acl, unknown):
        return common
    if own := hint(exc):
        return own
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "Redis is at maxmemory: raise maxmemory or free memory; nothing was written."
    return "Redis refused the command; its message above says why."


@contextlib.contextmanager
def translate_errors(
    subject: str,
    action: str,
    where: str,
    required_acl: str,
    *,
    unknown: str = "",
    hint: Hint = _no_hint,
) -> Iterator[None]:
    """Re-raise redis-py errors as ``"<subject> could not <action>: <error>. <what to
    check>"``, a :class:`~riskstream.errors.StateStoreError` with the cause attached.

    ``unknown`` is what to tell the caller when a write may or may not have happened.
    """
    try:
        yield
    except redis.RedisError as exc:
        raise StateStoreError(
            f"{subject} could not {action}: {type(exc).__name__}: {str(exc).rstrip('.')}. "
            f"{explain(exc, where, required_acl, unknown, hint)}"
        ) from exc
    except RedisClusterException as exc:  # not a RedisError: the cluster client's own
        raise StateStoreError(
            f"{subject} could not {action}: {type(exc).__name__}: {str(exc).rstrip('.')}. "
            "The Redis Cluster has no node for the slot or cannot be reached; check "
            f"that its nodes at {where} are up and cover every slot. {unknown}".rstrip()
        ) from exc
