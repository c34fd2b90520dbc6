"""Incidents carry their cascade, suspected changes, reach, cost and regulatory flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_processor
from riskstream.config import load_config
from riskstream.core.timeutil import format_time
from riskstream.validation import validator_for

CONFIG = """\
version: 1
lineage:
  line-1/temp-03: [anomaly-line-1]
  anomaly-line-1: [maintenance-line-1]
costs:
  "line-1/*": {per_event: 0.5, per_hour: 1200, currency: EUR}
regulation:
  high_risk: ["maintenance-*"]
  serious_incident_types: [upstream-failure]
  widespread_types: [upstream-failure]
monitors:
  - name: temp
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: threshold, upper: 100}
    warmup: 0
    scale: false
"""

T0 = 1_800_000_000.0


def _run(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    bus = InMemoryBus()
    producer = bus.producer()
    changes = [
        ("c-old", "line-1/temp-03", T0 - 30_000),  # outside the 6 h look-back
        ("c-far", "line-1/temp-03", T0 - 3_000),
        ("c-near", "line-1/temp-03", T0 - 60),
        ("c-other", "line-2/temp-01", T0 - 30),  # not upstream
    ]
    for event_id, subject, at in changes:
        change = {"event_id": event_id, "time": format_time(at), "kind": "config",
                  "subject": subject, "actor": "plc-team"}  # fmt: skip
        producer.produce(config.topics.change, orjson.dumps(change), subject.encode())
    for i, value in enumerate([20.0, 21.0, 150.0]):
        reading = {"event_id": str(i), "time": format_time(T0 + i * 10),
                   "sensor_id": "line-1/temp-03", "value": value}  # fmt: skip
        producer.produce(config.topics.sensor, orjson.dumps(reading), b"line-1/temp-03")
    incidents: list[dict[str, Any]] = []
    processor = embedded_processor(config, bus, on_incident=incidents.append, wall_clock=lambda: T0)
    processor.start()
    while processor.step(0):
        pass
    processor.close()
    return incidents


def test_one_parent_with_the_downstream_models_as_children_not_a_storm(tmp_path: Path) -> None:
    parent, *children = _run(tmp_path)
    assert parent["subject"] == "line-1/temp-03"
    assert [c["subject"] for c in children] == ["anomaly-line-1", "maintenance-line-1"]
    assert parent["children"] == [c["incident_id"] for c in children]
    assert {c["parent_id"] for c in children} == {parent["incident_id"]}
    assert parent["blast_radius"]["downstream"] == ["anomaly-line-1", "maintenance-line-1"]
    for incident in (parent, *children):
        validator_for("incident")(incident)


def test_suspects_are_the_changes_upstream_nearest_the_onset_and_cost_is_estimated(
    tmp_path: Path,
) -> None:
    parent, _, maintenance = _run(tmp_path)
    assert [c["event_id"] for c in parent["suspected_changes"]] == ["c-near", "c-far"]
    assert [c["event_id"] for c in maintenance["suspected_changes"]] == ["c-near", "c-far"]
    cost = parent["blast_radius"]["estimated_cost"]
    assert cost["currency"] == "EUR" and cost["amount"] > 0
    assert "regulatory" not in parent
    regulatory = maintenance["regulatory"]
    assert regulatory["potential_serious_incident"] is True
    assert regulatory["report_within_days"] == 2.0  # widespread disruption
