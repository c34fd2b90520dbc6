"""Every store backend, one fixture per port: the in-memory reference, real Redis and a
real Redis Cluster.

The ``real-redis`` cases talk to the session's real redis-server, the
``redis-cluster`` cases to its Redis Cluster (3 masters, a replica each, through the
cluster client; see ``tests/conftest.py``); both carry the ``integration`` marker;
the ``memory`` cases need nothing and run everywhere.  Each Redis case gets a fresh
namespace.  Suites that only the Redis adapters have live in ``tests/integration/``
(and ``tests/cluster/``); the bus contract (``test_bus.py``) brings its own fixture,
over the in-memory bus and real Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import pytest

from riskstream.adapters.memory.changes import InMemoryChangeLog
from riskstream.adapters.memory.flags import InMemoryApprovalStore, InMemoryFlagStore
from riskstream.adapters.memory.incidents import InMemoryIncidentStore
from riskstream.adapters.memory.predictions import InMemoryPredictionStore
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.adapters.redis.changes import RedisChangeLog
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.adapters.redis.predictions import RedisPredictionStore
from riskstream.adapters.redis.state import RedisStateStore

Store = InMemoryStateStore | RedisStateStore
FlagStoreBackend = InMemoryFlagStore | RedisFlagStore
ApprovalStoreBackend = InMemoryApprovalStore | RedisApprovalStore
ChangeLogBackend = InMemoryChangeLog | RedisChangeLog

BACKENDS = [
    pytest.param("memory"),
    pytest.param("real-redis", marks=pytest.mark.integration),
    pytest.param("redis-cluster", marks=[pytest.mark.integration, pytest.mark.cluster]),
]
_URL_FIXTURE = {"real-redis": "redis_url", "redis-cluster": "redis_cluster_url"}

T = TypeVar("T")


def _backend(
    request: pytest.FixtureRequest,
    memory: Callable[[], T],
    redis: Callable[[str, str], T],
    unique: Callable[[str], str],
) -> Iterator[T]:
    """The in-memory store, or the Redis one on ``(url, a fresh namespace)``; closed after."""
    if request.param == "memory":
        backend = memory()
    else:
        url = request.getfixturevalue(_URL_FIXTURE[request.param])
        backend = redis(url, unique(request.node.name))
    try:
        yield backend
    finally:
        backend.close()  # type: ignore[attr-defined]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> Iterator[Store]:
    yield from _backend(
        request, InMemoryStateStore, lambda url, _: RedisStateStore.from_url(url), unique
    )


@pytest.fixture(params=BACKENDS)
def flag_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[FlagStoreBackend]:
    """An empty flag store."""
    redis = lambda url, ns: RedisFlagStore.from_url(url, namespace=ns)  # noqa: E731
    yield from _backend(request, InMemoryFlagStore, redis, unique)


@pytest.fixture(params=BACKENDS)
def approval_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[ApprovalStoreBackend]:
    """An empty approval store."""
    redis = lambda url, ns: RedisApprovalStore.from_url(url, namespace=ns)  # noqa: E731
    yield from _backend(request, InMemoryApprovalStore, redis, unique)


@pytest.fixture(params=BACKENDS)
def incident_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[InMemoryIncidentStore | RedisIncidentStore]:
    """An empty incident store."""
    redis = lambda url, ns: RedisIncidentStore.from_url(url, namespace=ns)  # noqa: E731
    yield from _backend(request, InMemoryIncidentStore, redis, unique)


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
    for backend in _backend(request, memory, redis, unique):
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
    url, namespace = request.getfixturevalue(_URL_FIXTURE[request.param]), unique("changes")
    handles: list[Any] = [RedisChangeLog.from_url(url, namespace, 3600.0) for _ in range(2)]
    try:
        yield handles[0], handles[1]
    finally:
        for handle in handles:
            handle.close()
