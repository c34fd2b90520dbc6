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
