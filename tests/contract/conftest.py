"""Every state store backend, behind one ``store`` fixture.

The ``real-redis`` cases talk to the session's real redis-server (see
``tests/conftest.py``) and carry the ``integration`` marker; the ``memory`` cases
need nothing and run everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from riskstream.adapters.memory_state import InMemoryStateStore
from riskstream.adapters.redis_state import RedisStateStore

Store = InMemoryStateStore | RedisStateStore


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("real-redis", marks=pytest.mark.integration),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = InMemoryStateStore()
    else:
        backend = RedisStateStore.from_url(request.getfixturevalue("redis_url"))
    try:
        yield backend
    finally:
        backend.close()


# --- flag and approval stores (appended; the fixtures above are the state store's) ---

from collections.abc import Callable  # noqa: E402

from riskstream.adapters.memory_flags import (  # noqa: E402
    InMemoryApprovalStore,
    InMemoryFlagStore,
)
from riskstream.adapters.redis_flags import RedisApprovalStore, RedisFlagStore  # noqa: E402

FlagStoreBackend = InMemoryFlagStore | RedisFlagStore
ApprovalStoreBackend = InMemoryApprovalStore | RedisApprovalStore


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("real-redis", marks=pytest.mark.integration),
    ]
)
def flag_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[FlagStoreBackend]:
    """An empty flag store: a fresh in-memory one, or a fresh namespace on real Redis."""
    backend: FlagStoreBackend
    if request.param == "memory":
        backend = InMemoryFlagStore()
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisFlagStore.from_url(url, namespace=unique(request.node.name))
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("real-redis", marks=pytest.mark.integration),
    ]
)
def approval_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[ApprovalStoreBackend]:
    """An empty approval store: a fresh in-memory one, or a fresh namespace on real Redis."""
    backend: ApprovalStoreBackend
    if request.param == "memory":
        backend = InMemoryApprovalStore()
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisApprovalStore.from_url(url, namespace=unique(request.node.name))
    try:
        yield backend
    finally:
        backend.close()


# --- prediction stores (appended; the fixtures above are the other stores') ---

import time  # noqa: E402
from typing import NamedTuple  # noqa: E402

from riskstream.adapters.memory_predictions import InMemoryPredictionStore  # noqa: E402
from riskstream.adapters.redis_predictions import RedisPredictionStore  # noqa: E402


class PredictionBackend(NamedTuple):
    """A prediction store, and how to let ``seconds`` pass for its TTLs."""

    store: InMemoryPredictionStore | RedisPredictionStore
    wait: Callable[[float], None]


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("real-redis", marks=pytest.mark.integration),
    ]
)
def predictions(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[PredictionBackend]:
    """An empty prediction store: in memory on a manual clock, or a fresh namespace on
    real Redis (where waiting is sleeping)."""
    backend: InMemoryPredictionStore | RedisPredictionStore
    if request.param == "memory":
        now = [1000.0]

        def advance(seconds: float) -> None:
            now[0] += seconds

        backend = InMemoryPredictionStore(clock=lambda: now[0])
        wait = advance
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisPredictionStore.from_url(url, namespace=unique("predictions"))
        wait = time.sleep
    try:
        yield PredictionBackend(backend, wait)
    finally:
        backend.close()


# --- incident stores (appended) ---

from riskstream.adapters.memory_incidents import InMemoryIncidentStore  # noqa: E402
from riskstream.adapters.redis_incidents import RedisIncidentStore  # noqa: E402


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("real-redis", marks=pytest.mark.integration),
    ]
)
def incident_store(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[InMemoryIncidentStore | RedisIncidentStore]:
    """An empty incident store: in memory, or a fresh namespace on real Redis."""
    backend: InMemoryIncidentStore | RedisIncidentStore
    if request.param == "memory":
        backend = InMemoryIncidentStore()
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisIncidentStore.from_url(url, namespace=unique(request.node.name))
    try:
        yield backend
    finally:
        backend.close()


# --- change logs (appended) ---

from riskstream.adapters.memory_changes import InMemoryChangeLog  # noqa: E402
from riskstream.adapters.redis_changes import RedisChangeLog  # noqa: E402


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("real-redis", marks=pytest.mark.integration),
    ]
)
def change_logs(
    request: pytest.FixtureRequest, unique: Callable[[str], str]
) -> Iterator[tuple[InMemoryChangeLog | RedisChangeLog, InMemoryChangeLog | RedisChangeLog]]:
    """Two handles on one change log (one per processor), keeping 3600 s."""
    if request.param == "memory":
        log = InMemoryChangeLog(3600.0)
        yield log, log
        return
    url, namespace = request.getfixturevalue("redis_url"), unique("changes")
    a, b = (
        RedisChangeLog.from_url(url, namespace, 3600.0),
        RedisChangeLog.from_url(url, namespace, 3600.0),
    )
    try:
        yield a, b
    finally:
        a.close()
        b.close()
