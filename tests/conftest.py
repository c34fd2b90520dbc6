"""Real Kafka and Redis for the integration tests, started once per session.

Where ``RISKSTREAM_KAFKA_BOOTSTRAP`` / ``RISKSTREAM_REDIS_URL`` are set, those
servers are used.  Otherwise, where a Docker engine answers, testcontainers starts
them; on machines without one (like CI here), ``deploy/local/services.py`` runs the
Apache Kafka broker from Maven Central's jars on the JDK and Debian's
``redis-server``.  A service that cannot start fails the tests that need it: an
integration test is never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import services as local_services  # deploy/local/services.py, on pytest's pythonpath

ROOT = Path(__file__).resolve().parent.parent

_started: list[local_services.Service] = []


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def service_workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="riskstream-services-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(service_workdir: Path) -> Iterator[str]:
    """``host:port`` of a real Kafka broker."""
    if env := os.environ.get("RISKSTREAM_KAFKA_BOOTSTRAP"):
        yield env
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = local_services.start_kafka(service_workdir / "kafka")
    _started.append(broker)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url(service_workdir: Path) -> Iterator[str]:
    """``redis://`` URL of a real Redis server."""
    if env := os.environ.get("RISKSTREAM_REDIS_URL"):
        yield env
        return
    if _docker_engine_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
        return
    server = local_services.start_redis(service_workdir / "redis")
    _started.append(server)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(service_workdir: Path) -> Iterator[local_services.RedisCluster]:
    """A Redis Cluster of 3 masters with a replica each, on loopback; the cluster
    stage (tests/cluster) kills its nodes, so it is always this suite's own."""
    cluster = local_services.start_redis_cluster(service_workdir / "redis-cluster")
    _started.extend(cluster.nodes.values())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(request: pytest.FixtureRequest) -> str:
    """``redis+cluster://`` URL of a real Redis Cluster (``RISKSTREAM_REDIS_CLUSTER_URL``
    names one you run)."""
    if env := os.environ.get("RISKSTREAM_REDIS_CLUSTER_URL"):
        return env
    cluster: local_services.RedisCluster = request.getfixturevalue("redis_cluster")
    return cluster.url


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that no other test (or earlier run on a shared broker) uses."""
    run = uuid.uuid4().hex[:8]
    return lambda prefix: f"{prefix}-{run}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the services' log tails to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for service in _started:
            report.sections.append((f"{service.name} log (tail)", service.log_tail()))
