"""Every store backend, one fixture per port: the in-memory reference, real Redis and a
real Redis Cluster.

The ``real-redis`` cases talk to the session's real redis-server, the ``redis-acl``
cases to it as a user that holds exactly the ACL ``keys.py`` documents for that store
(so a command the store runs and its ACL lacks fails the suite), the
``redis-cluster`` cases to its Redis Cluster (3 masters, a replica each, through the
cluster client; see ``tests/conftest.py``); both carry the ``integration`` marker;
the ``memory`` cases need nothing and run everywhere.  Each Redis case gets a fresh
namespace.  Suites that only the Redis adapters have live in ``tests/integration/``
(and ``tests/cluster/``); the bus contract (``test_bus.py``) brings its own fixture,
over the in-memory bus and real Kafka.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import pytest
import redis as redis_py

from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.flags import InMemoryApprovalStore, InMemoryFlagStore
from riskstream.adapters.memory.incidents import InMemoryIncidentStore
from riskstream.adapters.memory.predictions import InMemoryPredictionStore
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.adapters.redis.changes import RedisChangeLog
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.adapters.redis.keys import (
    CHANGES_ACL,
    FLAGS_ACL,
    PREDICTIONS_ACL,
    STATE_ACL,
)
from riskstream.adapters.redis.predictions import RedisPredictionStore
from riskstream.adapters.redis.state import RedisStateStore

Store = InMemoryStateStore | RedisStateStore
FlagStoreBackend = InMemoryFlagStore | RedisFlagStore
ApprovalStoreBackend = InMemoryApprovalStore | RedisApprovalStore
ChangeLogBackend = InMemoryChangeLog | RedisChangeLog

BACKENDS = [
    pytest.param("memory"),
    pytest.param("real-redis", marks=pytest.mark.integration),
    pytest.param("redis-acl", marks=pytest.mark.integration),
    pytest.param("redis-cluster", marks=[pytest.mark.integration, pytest.mark.cluster]),
]
_URL_FIXTURE = {
    "real-redis": "redis_url",
    "redis-acl": "redis_url",
    "redis-cluster": "redis_cluster_url",
}

T = TypeVar("T")


def _url(request: pytest.FixtureRequest, acl: str) -> Iterator[str]:
    """The backend's Redis URL; for ``redis-acl``, as a fresh user holding exactly
    ``acl`` (and SELECT, for a URL naming a database), deleted after."""
    url = request.getfixturevalue(_URL_FIXTURE[request.param])
    if request.param != "redis-acl":
        yield url
        return
    admin = redis_py.Redis.from_url(url)
    user, password = f"acl-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", *acl.split(), "+select")
    scheme, rest = url.split("://", 1)
    try:
        yield f"{scheme}://{user}:{password}@{rest.rsplit('@', 1)[-1]}"
    finally:
        admin.acl_deluser(user)
        admin.close()


def _backend(
    request: pytest.FixtureRequest,
    memory: Callable[[], T],
    redis: Callable[[str, str], T],
    unique: Callable[[str], str],
    acl: str,
) -> Iterator[T]:
    """The in-memory store, or the Redis one on ``(url, a fresh namespace)``; closed after.
    ``acl``: what ``keys.py`` says that store needs (the ``redis-acl`` case's user)."""
    if request.param == "memory":
        backend = memory()
        try:
            yield backend
        finally:
            backend.close()  # type: ignore[attr-defined]
        return
    for url in _url(request, acl):
        backend = redis(url, unique(request.node.name))
        try:
            yield backend
        finally:
            backend.close()  # type: ignore[attr-defined]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> Iterator[Store]:
    yield from _backend(
        request,
        InMemoryStateStore,
        lambda url, _: RedisStateStore.from_url(url),
        unique,
        STATE_ACL,
    )


@pytest.fixture(params=BACKENDS)
def flag_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[FlagStoreBackend]:
    """An empty flag store."""
    redis = lambda url, ns: RedisFlagStore.from_url(url, namespace=ns)  # noqa: E731
    yield from _backend(request, InMemoryFlagStore, redis, unique, FLAGS_ACL)


@pytest.fixture(params=BACKENDS)
def approval_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[ApprovalStoreBackend]:
    """An empty approval store."""
    redis = lambda url, ns: RedisApprovalStore.from_url(url, namespace=ns)  # noqa: E731
    yield from _backend(request, InMemoryApprovalStore, redis, unique, FLAGS_ACL)


@pytest.fixture(params=BACKENDS)
def incident_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[InMemoryIncidentStore | RedisIncidentStore]:
    """An empty incident store."""
    redis = lambda url, ns: RedisIncidentStore.from_url(url, namespace=ns)  # noqa: E731
    yield from _backend(request, InMemoryIncidentStore, redis, unique, FLAGS_ACL)


class PredictionBackend(NamedTuple):
    """A prediction store, and how to let ``seconds`` pass for its TTLs."""

    store: InMemoryPredictionStore | RedisPredictionStore
    wait: Callable[[float], None]


@pytest.fixture(params=BACKENDS)
def predictions(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[PredictionBackend]:
    """An empty prediction store: in memory on a manual clock, or on real Redis (where
    waiting is sleeping)."""
    now = [1000.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    wait: Callable[[float], None] = advance if request.param == "memory" else time.sleep
    redis = lambda url, ns: RedisPredictionStore.from_url(url, namespace=ns)  # noqa: E731
    memory = lambda: InMemoryPredictionStore(clock=lambda: now[0])  # noqa: E731
    for backend in _backend(request, memory, redis, unique, PREDICTIONS_ACL):
        yield PredictionBackend(backend, wait)


@pytest.fixture(params=BACKENDS)
def change_logs(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[tuple[ChangeLogBackend, ChangeLogBackend]]:
    """Two handles on one change log (one per processor), keeping 3600 s."""
    if request.param == "memory":
        log = InMemoryChangeLog(3600.0)
        yield log, log
        return
    namespace = unique("changes")
    for url in _url(request, CHANGES_ACL):
        handles: list[Any] = [RedisChangeLog.from_url(url, namespace, 3600.0) for _ in range(2)]
        try:
            yield handles[0], handles[1]
        finally:
            for handle in handles:
                handle.close()
