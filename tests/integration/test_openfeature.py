"""OpenFeature over a real Redis: the SDK's client reads the flag containment just
flipped, then its reason while Redis is down; and the flagd file kept in step by
``riskstream flags export --format flagd --watch``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from openfeature import api
from openfeature.flag_evaluation import Reason
from prometheus_client import CollectorRegistry

import services as local_services  # deploy/local/services.py (tests/conftest.py)
from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.config import load_config
from riskstream.core.routing import FlagChange, RoutingFlag
from riskstream.metrics import ContainmentMetrics
from riskstream.openfeature_provider import RiskstreamProvider
from riskstream.router import Router
from riskstream.services.containment import ContainmentService
from support import incident

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
models:
  support-bot: {known_good: sb-2.9}
playbooks:
  - name: rollback
    match: {subject: support-bot}
    actions:
      - {kind: route-to-version, version: last-known-good}
"""


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def test_the_client_reads_what_containment_flipped_then_stale_while_redis_is_down(
    tmp_path: Path,
) -> None:
    server = local_services.start_redis(tmp_path / "redis")  # our own: this test stops it
    try:
        config_file = tmp_path / "policy.yaml"
        config_file.write_text(POLICY)
        config = load_config(config_file)
        flags = RedisFlagStore.from_url(server.url, namespace="of")
        containment = ContainmentService(
            config.containment, flags, RedisApprovalStore.from_url(server.url, namespace="of"),
            InMemoryBus().producer(), ContainmentMetrics(CollectorRegistry()),
        )  # fmt: skip
        router = Router(server.url, namespace="of", max_staleness_s=1.0)
        api.set_provider_and_wait(RiskstreamProvider(router, close_router=True), domain="it")
        client = api.get_client("it")
        try:
            before = client.get_string_details("support-bot.version", "sb-3.1")
            assert (before.value, before.reason) == ("sb-3.1", Reason.DEFAULT)

            containment.on_incident(incident("inc-of-1", "support-bot"))  # flips the flag
            revision = flags.get("support-bot").revision  # type: ignore[union-attr]
            router.wait_for("support-bot", revision, timeout=5)
            after = client.get_string_details("support-bot.version", "sb-3.1")
            assert (after.value, after.reason) == ("sb-2.9", Reason.CACHED)
            assert after.flag_metadata["incident_id"] == "inc-of-1"
            print(f"\nafter containment: {after}")

            server.stop()  # Redis down
            wait_until(lambda: router.stale, 5.0, "the cache turning stale")
            down = client.get_string_details("support-bot.version", "sb-3.1")
            assert (down.value, down.reason, down.error_code) == ("sb-2.9", Reason.STALE, None)
            assert down.flag_metadata["stale"] is True
            print(f"while Redis is down: {down}")
        finally:
            api.shutdown()
            flags.close()
    finally:
        server.stop()


def test_flags_export_watch_keeps_a_flagd_file_in_step(
    redis_url: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    namespace = unique("flagd")
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    first = RoutingFlag("ranker", "r-5", revision=1, updated_at=1.0)
    assert flags.apply(FlagChange("c1", 0, first), 1.0).outcome == "applied"
    out = tmp_path / "flags.flagd.json"
    once = subprocess.run(
        [sys.executable, "-m", "riskstream", "flags", "export", "--format", "flagd",
         "--redis-url", redis_url, "--namespace", namespace],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert orjson.loads(once.stdout)["flags"]["ranker.version"]["defaultVariant"] == "r-5"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "riskstream", "flags", "export", "--format", "flagd", "--watch",
         "--output", str(out), "--interval", "0.1", "--redis-url", redis_url,
         "--namespace", namespace],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def version() -> str | None:
            try:
                doc = orjson.loads(out.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                return None
            return str(doc["flags"]["ranker.version"]["defaultVariant"])

        wait_until(lambda: version() == "r-5", 30.0, "the first flagd file")
        blocked = first.evolve(active_version="r-4", mode="blocked", revision=2, incident_id="i9")
        assert flags.apply(FlagChange("c2", 1, blocked), 2.0).outcome == "applied"
        wait_until(lambda: version() == "r-4", 10.0, "the flagd file following the flip")
        doc = orjson.loads(out.read_bytes())
        assert doc["flags"]["ranker.blocked"]["defaultVariant"] == "true"
        assert doc["flags"]["ranker"]["metadata"]["incident_id"] == "i9"
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # renamed, not left
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, err = watcher.communicate(timeout=20)
        flags.close()
    assert watcher.returncode == 0, err
