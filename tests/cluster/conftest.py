"""The cluster stage: a 3-broker Kafka cluster and a Redis Cluster, both on loopback.

Started by the project's own code (``deploy/local/services.py``) like the single
broker, only when a test here runs: the brokers for the module that uses them, the
Redis Cluster once per session (the store contract tests use it too).  The tests kill brokers
and Redis primaries; each leaves both clusters whole again (every broker up, three
primaries with a replica each) for the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import services as local_services


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/cluster/" in str(item.path):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="module")  # stopped after its module: no JVMs idling through the rest
def kafka_cluster(service_workdir: Path) -> Iterator[local_services.KafkaCluster]:
    """Three KRaft brokers (each a controller too), replication factor 3,
    ``min.insync.replicas`` 2.  Always this session's own: the tests kill its brokers."""
    cluster = local_services.start_kafka_cluster(service_workdir / "kafka-cluster")
    try:
        yield cluster
    finally:
        cluster.stop()
