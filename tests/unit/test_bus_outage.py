"""The containment worker when the broker does not take its publishes: the incident or
change event at hand is retried with backoff (faust's wrapper) until the broker is
back, then its routing change is published; only what the incident itself causes (a
playbook that raises, a record the broker refuses) is dead-lettered, once."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters import faust_app
from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.flags import InMemoryApprovalStore, InMemoryFlagStore
from riskstream.adapters.memory.incidents import InMemoryIncidentStore
from riskstream.config import Config, load_config
from riskstream.core.timeutil import format_time
from riskstream.errors import BusError, ContainmentError, StateStoreError
from riskstream.metrics import ContainmentMetrics, StoreHealth, either
from riskstream.services.containment import ContainmentService

T = TypeVar("T")
NOW = 1.8e9
PLAYBOOK = """
version: 1
playbooks:
  - name: any
    actions:
      - {kind: fallback}
models:
  bot: {fallback_version: canned-v1}
"""


class FlakyProducer:
    """The in-memory bus's producer, whose flush fails as librdkafka's does while
    ``down`` is more than 0 (counted down per failed flush), with ``code``."""

    def __init__(self, bus: InMemoryBus, down: int = 0, code: str = "_MSG_TIMED_OUT") -> None:
        self._bus, self.down, self.code = bus, down, code
        self._queued: list[tuple[str, bytes, bytes | None, Sequence[tuple[str, bytes]]]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:  # fmt: skip
        self._queued.append((topic, value, key, headers))

    def flush(self, timeout: float = 10.0) -> None:
        queued, self._queued = self._queued, []
        if self.down > 0:
            self.down -= 1
            raise BusError(f"delivery of {len(queued)} failed", code=self.code)
        producer = self._bus.producer()
        for topic, value, key, headers in queued:
            producer.produce(topic, value, key, headers)


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(PLAYBOOK)
    return load_config(path)


def _service(config: Config, producer: FlakyProducer) -> ContainmentService:
    return ContainmentService(
        config.containment, InMemoryFlagStore(), InMemoryApprovalStore(), producer,
        ContainmentMetrics(CollectorRegistry()), clock=lambda: NOW,
        incidents=InMemoryIncidentStore(),
    )  # fmt: skip


def _incident(incident_id: str = "inc-1") -> bytes:
    return orjson.dumps({
        "incident_id": incident_id, "type": "safety", "severity": "critical", "status": "open",
        "subject": "bot", "monitor": "harmful-rate-by-group", "stream_key": "bot|b",
        "detected_at": format_time(NOW), "onset_at": format_time(NOW - 60), "evidence": {},
    })  # fmt: skip


def _retried(call: Callable[[], T]) -> tuple[T, StoreHealth, int]:
    """``call`` through the faust worker's wrapper; what it returned, the health it
    left and how many times it waited (it does not: the waits are counted)."""
    health, waits = StoreHealth.unexported(), []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    async def run() -> T:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(faust_app.asyncio, "sleep", no_wait)
            return await faust_app.retrying(health, "incident", call)

    return asyncio.run(run()), health, len(waits)


def _reasons(bus: InMemoryBus, config: Config) -> list[bytes]:
    return [dict(r.headers)["riskstream_reason"] for r in bus.records(config.topics.dead_letter)]


def test_an_incident_whose_publishes_fail_waits_for_the_broker_and_is_not_dead_lettered(
    tmp_path: Path,
) -> None:
    """Its routing change and then its dead letter did not reach the broker: before,
    the BusError escaped the wrapper (faust crashed the agent, committed the offset:
    the routing change was never published)."""
    config, bus = _config(tmp_path), InMemoryBus()
    producer = FlakyProducer(bus, down=3)
    service = _service(config, producer)
    (incident, outcomes), health, waits = _retried(
        functools.partial(service.receive_incident, _incident())
    )
    assert incident is not None and incident["incident_id"] == "inc-1"
    assert outcomes == ["applied"]  # written at the first attempt, published at the last
    assert waits == 3 and not health.failing
    (change,) = bus.records(config.topics.routing_changes)
    assert orjson.loads(change.value)["active_version"] == "canned-v1"
    assert _reasons(bus, config) == []


def test_a_broker_outage_while_a_deploy_is_recorded_is_retried_not_skipped(
    tmp_path: Path,
) -> None:
    config, bus = _config(tmp_path), InMemoryBus()
    service = _service(config, FlakyProducer(bus, down=2))
    deploy = orjson.dumps({
        "event_id": "d1", "time": format_time(NOW - 600), "kind": "deploy", "subject": "bot",
        "version": "bot-2", "actor": "ci", "description": "release",
    })  # fmt: skip
    (event, outcome), _, waits = _retried(functools.partial(service.receive_change, deploy))
    assert event is not None and outcome == "applied" and waits == 2  # by this worker
    (change,) = bus.records(config.topics.routing_changes)
    assert orjson.loads(change.value)["active_version"] == "bot-2"


def test_a_poison_pill_is_dead_lettered_once_after_the_outage_and_not_retried_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, bus = _config(tmp_path), InMemoryBus()
    producer = FlakyProducer(bus, down=2)
    service = _service(config, producer)
    calls = []

    def raising(self: ContainmentService, incident: Any) -> list[str]:
        calls.append(incident["incident_id"])
        raise ContainmentError("the playbook cannot be applied")

    monkeypatch.setattr(ContainmentService, "on_incident", raising)
    # the broker is down: its dead letter waits for it, then goes once
    (incident, _), _, waits = _retried(functools.partial(service.receive_incident, _incident()))
    assert incident is None and waits == 2 and len(calls) == 3
    assert _reasons(bus, config) == [b"apply_error"]
    # the broker is up: dead-lettered at once
    (incident, _), _, waits = _retried(functools.partial(service.receive_incident, _incident("x")))
    assert incident is None and waits == 0 and len(calls) == 4
    assert _reasons(bus, config) == [b"apply_error", b"apply_error"]
    assert bus.records(config.topics.routing_changes) == []


def test_a_routing_change_the_broker_refuses_itself_is_dead_lettered_not_retried(
    tmp_path: Path,
) -> None:
    config, bus = _config(tmp_path), InMemoryBus()
    producer = FlakyProducer(bus, down=1, code="MSG_SIZE_TOO_LARGE")
    service = _service(config, producer)
    (incident, _), _, waits = _retried(functools.partial(service.receive_incident, _incident()))
    assert incident is None and waits == 0
    assert _reasons(bus, config) == [b"apply_error"]


class SlowProducer(FlakyProducer):
    """Its failing flushes take ``wait`` seconds first, as librdkafka's flush waits out its
    timeout (the worker's: 30 s) for a broker that is away."""

    def __init__(self, bus: InMemoryBus, down: int, wait: float) -> None:
        super().__init__(bus, down)
        self.wait = wait

    def flush(self, timeout: float = 10.0) -> None:
        if self.down > 0:
            time.sleep(self.wait)
        super().flush(timeout)


def test_a_try_that_waits_for_the_broker_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """Each try ran the service on faust's event loop, and a flush waiting for a broker
    that is away blocks (30.1 s a try with the worker's producer pointed at a closed
    port): every other coroutine stopped meanwhile, the consumer's heartbeats, the other
    agent, the timer.  Now the try runs in a thread and the loop goes on."""
    config, bus = _config(tmp_path), InMemoryBus()
    service = _service(config, SlowProducer(bus, down=1, wait=0.6))
    health = StoreHealth.unexported()

    async def run() -> tuple[Any, float]:
        gaps, last = [0.0], time.monotonic()

        async def ticker() -> None:
            nonlocal last
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        call = functools.partial(service.receive_incident, _incident())
        result = await faust_app.retrying(health, "incident", call)
        ticking.cancel()
        return result, max(gaps)

    (incident, outcomes), longest = asyncio.run(run())
    assert incident is not None and outcomes  # the second try went through
    assert len(bus.records(config.topics.routing_changes)) == 1
    assert longest < 0.3, f"the event loop stalled {longest:.2f} s"


def test_calls_off_the_loop_take_turns(tmp_path: Path) -> None:
    """The agents and the timer share one service, which is not made for two threads:
    their calls run one at a time."""
    lock, inside, overlaps = threading.Lock(), [0], []

    def call() -> None:
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.05)
        inside[0] -= 1

    async def run() -> None:
        await asyncio.gather(*(faust_app.off_loop(call, lock) for _ in range(4)))

    asyncio.run(run())
    assert overlaps == [1, 1, 1, 1]


def test_the_broker_and_redis_each_have_their_gauge(tmp_path: Path) -> None:
    """riskstream_containment_store_up read 0 for a broker outage too, so an operator
    could not tell Redis's trouble from Kafka's: the broker has its own gauge now."""
    registry = CollectorRegistry()
    metrics = ContainmentMetrics(registry)
    health = either(metrics.store, metrics.bus)

    def gauges() -> tuple[float | None, float | None]:
        return (registry.get_sample_value("riskstream_containment_store_up"),
                registry.get_sample_value("riskstream_containment_bus_up"))  # fmt: skip

    seen, said = [], []

    def call() -> str:
        seen.append(gauges())
        said.append(health()["status"] == "ok" or health()["reason"])
        if len(seen) == 1:
            raise BusError("delivery to routing-changes failed", code="_MSG_TIMED_OUT")
        if len(seen) == 2:
            raise StateStoreError("Redis at 127.0.0.1:6379 does not answer")
        return "done"

    async def no_wait(delay: float) -> None:
        pass

    async def run() -> str:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(faust_app.asyncio, "sleep", no_wait)
            return await faust_app.retrying(metrics.store, "incident", call, bus=metrics.bus)

    assert asyncio.run(run()) == "done"
    assert seen == [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]  # the broker, then Redis as well
    assert said[1] == "the broker fails; the work at hand is retried with backoff"
    assert said[2] == "Redis fails; the work at hand is retried with backoff"
    assert gauges() == (1.0, 1.0) and health() == {"status": "ok"}
    failures = "riskstream_containment_{}_failures_total"
    assert registry.get_sample_value(failures.format("bus")) == 1
    assert registry.get_sample_value(failures.format("store")) == 1


def test_the_timer_says_when_the_broker_does_not_take_the_outbox(tmp_path: Path) -> None:
    """The routing changes a tick publishes from the outbox: the broker's gauge reads 0
    while it does not take them, 1 once it does; Redis's stays 1."""
    config, bus = _config(tmp_path), InMemoryBus()
    producer = FlakyProducer(bus, down=2)
    service = _service(config, producer)
    registry = service._metrics.registry
    with pytest.raises(BusError):
        service.receive_incident(_incident())  # written; not published
    assert service.run_due() == []  # the broker still away: the outbox waits
    assert registry.get_sample_value("riskstream_containment_bus_up") == 0
    assert registry.get_sample_value("riskstream_containment_store_up") == 1
    assert registry.get_sample_value("riskstream_containment_outbox_events") == 1
    service.run_due()
    assert registry.get_sample_value("riskstream_containment_bus_up") == 1
    assert registry.get_sample_value("riskstream_containment_outbox_events") == 0
    assert len(bus.records(config.topics.routing_changes)) == 1


def _counted(service: ContainmentService, name: str, **labels: str) -> float:
    value = service._metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_retried_incident_counts_once(tmp_path: Path) -> None:
    """Each try of the same incident counted it again, and its action once more each
    time (the first try "applied", then "duplicate" per retry, though this worker
    applied it once): four tries, four incidents and an applied action plus three
    duplicates.  Now once per incident event and once per change id."""
    config, bus = _config(tmp_path), InMemoryBus()
    service = _service(config, FlakyProducer(bus, down=3))
    (incident, outcomes), _, waits = _retried(
        functools.partial(service.receive_incident, _incident())
    )
    assert incident is not None and waits == 3
    assert outcomes == ["applied"]  # by this worker, at its first try
    assert _counted(service, "riskstream_containment_incidents_total") == 1
    actions = "riskstream_containment_actions_total"
    assert _counted(service, actions, kind="fallback", outcome="applied") == 1
    assert _counted(service, actions, kind="fallback", outcome="duplicate") == 0
    record = service._incidents.get("inc-1") if service._incidents else None
    assert record is not None
    assert [e.detail for e in record.timeline if "fallback" in e.detail] == ["fallback: applied"]
    # a later event of the incident is another event: counted
    service.on_incident({**orjson.loads(_incident()), "severity": "warning"})
    assert _counted(service, "riskstream_containment_incidents_total") == 2


def test_a_dead_letter_retried_until_the_broker_takes_it_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, bus = _config(tmp_path), InMemoryBus()
    service = _service(config, FlakyProducer(bus, down=2))

    def raising(self: ContainmentService, incident: Any) -> list[str]:
        raise ContainmentError("the playbook cannot be applied")

    monkeypatch.setattr(ContainmentService, "on_incident", raising)
    (incident, _), _, waits = _retried(functools.partial(service.receive_incident, _incident()))
    assert incident is None and waits == 2
    rejected = "riskstream_containment_rejected_total"
    assert _counted(service, rejected, reason="apply_error") == 1
