"""Incidents carry their cascade, suspected changes, reach, cost and regulatory flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.adapters.memory.bus import InMemoryBus
from riskstream.bootstrap import embedded_processor
from riskstream.config import load_config
from riskstream.core.enrichment import _regulate
from riskstream.core.timeutil import format_time
from riskstream.errors import ConfigError
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


def _marked(
    kind: str, regulation: str, tmp_path: Path, detected: str = "2026-12-31T22:30:00Z"
) -> dict[str, Any] | None:
    """The regulatory marking an incident of ``kind`` on a high-risk system gets."""
    path = tmp_path / "r.yaml"
    indented = "".join(f"  {line}\n" for line in regulation.splitlines())
    path.write_text(f"version: 1\nregulation:\n{indented}")
    rules = load_config(path).enrichment.regulation
    incident: dict[str, Any] = {"subject": "diagnosis-v4", "type": kind, "detected_at": detected}
    _regulate(incident, rules)
    return incident.get("regulatory")


def test_a_death_or_widespread_type_is_marked_even_when_not_also_listed_as_serious(
    tmp_path: Path,
) -> None:
    rules = """\
high_risk: ["diagnosis-*"]
serious_incident_types: [recall-drop]
death_types: [patient-death]
widespread_types: [outage]
"""
    death = _marked("patient-death", rules, tmp_path)
    widespread = _marked("outage", rules, tmp_path)
    assert death is not None and death["report_within_days"] == 10.0
    assert death["report_deadline"] == "2027-01-10T22:30:00.000Z"  # over the year's end
    assert widespread is not None and widespread["report_deadline"] == "2027-01-02T22:30:00.000Z"
    serious = _marked("recall-drop", rules, tmp_path, "2028-02-20T00:30:00+01:00")  # leap year
    assert serious is not None and serious["report_deadline"] == "2028-03-05T23:30:00.000Z"
    summer = _marked("recall-drop", rules, tmp_path, "2026-03-20T12:00:00+01:00")  # over DST
    assert summer is not None and summer["report_deadline"] == "2026-04-04T11:00:00.000Z"
    assert _marked("latency", rules, tmp_path) is None


def test_a_type_in_several_classes_gets_the_shortest_deadline(tmp_path: Path) -> None:
    rules = """\
high_risk: ["diagnosis-*"]
serious_incident_types: [harm]
death_types: [harm]
widespread_types: [harm]
"""
    marked = _marked("harm", rules, tmp_path)
    assert marked is not None and marked["report_within_days"] == 2.0


@pytest.mark.parametrize("days", ["0", "-5", ".inf", ".nan"])
def test_a_deadline_of_no_days_or_no_end_is_refused(tmp_path: Path, days: str) -> None:
    with pytest.raises(ConfigError, match=r"death_deadline_days.*above 0"):
        _marked("x", f"high_risk: [d]\ndeath_deadline_days: {days}\n", tmp_path)
