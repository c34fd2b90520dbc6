"""The metrics that deploy/prometheus/alerts.yml alerts on are set where they should be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.adapters.memory.state import InMemoryStateStore
from riskstream.bootstrap import embedded_containment, embedded_processor
from riskstream.config import load_config
from riskstream.core.timeutil import format_time

PLAYBOOKS = """\
version: 1
playbooks:
  - name: clinical
    match: {subject: "diagnosis*"}
    actions:
      - {kind: route-to-version, version: dx-2.0, approval: {required: true}}
  - name: anything-else
    actions:
      - {kind: fallback, approval: {required: true, timeout: 60, on_timeout: apply}}
"""

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _incident(incident_id: str, subject: str) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "type": "drift",
        "severity": "critical",
        "status": "open",
        "subject": subject,
        "onset_at": format_time(T0),
    }


def test_the_oldest_pending_request_and_the_next_deadline_are_exported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PLAYBOOKS)
    registry, clock = CollectorRegistry(), Clock()
    service = embedded_containment(load_config(path), InMemoryBus(), registry, clock)

    def sample(name: str) -> float | None:
        return registry.get_sample_value(f"riskstream_containment_{name}")

    assert sample("oldest_pending_timestamp_seconds") == 0  # nothing waiting yet
    service.on_incident(_incident("a", "diagnosis-v4"))  # waits, no deadline
    clock.now += 10
    service.on_incident(_incident("b", "ranker"))  # waits, deadline in 60 s
    assert sample("pending_actions") == 2
    assert sample("oldest_pending_timestamp_seconds") == T0
    assert sample("pending_next_deadline_timestamp_seconds") == T0 + 10 + 60

    clock.now += 61
    service.expire_due()  # "b" expires; "a" has no deadline and keeps waiting
    assert sample("pending_actions") == 1
    assert sample("oldest_pending_timestamp_seconds") == T0
    assert sample("pending_next_deadline_timestamp_seconds") == 0

    (waiting,) = service.pending()
    service.decide(waiting.action_id, "rejected", "dr.lee")
    assert sample("pending_actions") == 0
    assert sample("oldest_pending_timestamp_seconds") == 0


def test_an_action_that_fails_after_approval_or_on_timeout_counts_as_failed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PLAYBOOKS)
    registry, clock = CollectorRegistry(), Clock()
    service = embedded_containment(load_config(path), InMemoryBus(), registry, clock)
    service.on_incident(_incident("b", "ranker"))  # fallback: ranker has none, so it fails
    clock.now += 61
    (expired,) = service.expire_due()  # applied on timeout, and failed
    assert expired.status == "expired"
    failed = {"kind": "fallback", "outcome": "failed"}
    assert registry.get_sample_value("riskstream_containment_actions_total", failed) == 1


def test_a_partition_given_up_stops_exporting_its_lag() -> None:
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    producer = bus.producer()
    for i in range(20):
        event = {"event_id": str(i), "time": format_time(T0 + i), "sensor_id": "s1", "value": 1.0}
        producer.produce("sensor-events", orjson.dumps(event), b"s1")
    processor = embedded_processor(load_config(None), bus, store, registry=registry)
    processor.start()
    processor.step(0)
    processor.checkpoint()
    lag = {"topic": "sensor-events", "partition": "0"}
    assert registry.get_sample_value("riskstream_consumer_lag", lag) == 0
    processor.close()  # releases every partition
    assert registry.get_sample_value("riskstream_consumer_lag", lag) is None


def test_the_processor_exports_where_its_loop_spends_its_time() -> None:
    """bench/throughput.py reads its breakdown from these, not from patched methods."""
    bus, store, registry = InMemoryBus(), InMemoryStateStore(), CollectorRegistry()
    producer = bus.producer()
    for i in range(20):
        event = {"event_id": str(i), "time": format_time(T0 + i), "sensor_id": "s1", "value": 1.0}
        producer.produce("sensor-events", orjson.dumps(event), b"s1")
    processor = embedded_processor(load_config(None), bus, store, registry=registry)
    processor.start()
    processor.step(0)
    processor.checkpoint()
    phases = {
        phase: registry.get_sample_value(
            "riskstream_processor_phase_seconds_total", {"phase": phase}
        )
        for phase in ("poll", "flush", "encode", "save")
    }
    assert all(seconds is not None and seconds >= 0 for seconds in phases.values()), phases
    processor.close()


def test_an_action_whose_record_cannot_be_carried_out_expires_without_stopping_the_timer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On timeout an ``apply`` action is carried out from its stored record.  One not
    written by riskstream (here: no ``labels.subject``) raised out of ``expire_due``,
    which stopped that tick's expiries, lapses and progressive steps, and in faust's
    timer crashed the worker.  It now expires, counts as failed and says why on its
    incident's timeline; the others due in the same tick are carried out."""
    from riskstream.core.approvals import PendingAction

    path = tmp_path / "c.yaml"
    path.write_text(PLAYBOOKS.replace("kind: fallback", "kind: route-to-version, version: v2"))
    registry, clock = CollectorRegistry(), Clock()
    service = embedded_containment(load_config(path), InMemoryBus(), registry, clock)
    bad = PendingAction(
        "a-bad", "inc-bad", "ranker", {"kind": "route-to-version", "version": "v2"},
        "riskstream/containment", T0, T0 + 60, on_timeout="apply",
        labels={"incident_id": "inc-bad"},
    )  # fmt: skip
    assert service._approvals.add(bad)
    service.on_incident(_incident("good", "ranker"))  # waits, applied on timeout
    clock.now += 61
    expired = {p.action_id: p for p in service.expire_due()}
    assert set(expired) == {"a-bad", next(a for a in expired if a != "a-bad")}
    assert all(p.status == "expired" for p in expired.values())
    assert service.flags()["ranker"].active_version == "v2"  # the good one was carried out
    failed = {"kind": "route-to-version", "outcome": "failed"}
    assert registry.get_sample_value("riskstream_containment_actions_total", failed) == 1
    (said,) = [r.getMessage() for r in caplog.records if "a-bad" in r.getMessage()]
    assert "labels.subject" in said and "not applied" in said, said


def test_a_timed_task_that_fails_is_counted_and_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception out of faust's timer crashes the containment worker (and a restarted
    one at its next tick): one timed task's failure must stay its own."""
    path = tmp_path / "c.yaml"
    path.write_text(PLAYBOOKS.replace("kind: fallback", "kind: route-to-version, version: v2"))
    registry, clock = CollectorRegistry(), Clock()
    service = embedded_containment(load_config(path), InMemoryBus(), registry, clock)
    service.on_incident(_incident("b", "ranker"))  # applied on timeout, in 60 s
    stepped: list[float] = []

    def broken() -> list[str]:
        raise RuntimeError("a flag no check foresaw")

    monkeypatch.setattr(service, "lapse_flags", broken)
    monkeypatch.setattr(service, "advance_steps", lambda: stepped.append(clock.now) or [])
    clock.now += 61
    said = service.run_due()
    assert len(said) == 1 and said[0].endswith("expired"), said  # before the broken task
    assert stepped == [clock.now]  # and the one after it
    assert service.flags()["ranker"].active_version == "v2"
    errors = {"task": "lapse flags"}
    assert registry.get_sample_value("riskstream_containment_timer_errors_total", errors) == 1
    assert "a flag no check foresaw" in caplog.text and "lapse flags failed" in caplog.text
