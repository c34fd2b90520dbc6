"""bench/public/skab.py: SKAB rows become valid sensor events; replay's output is read right.

Only the conversion and the parsing: the bench's scorer (tsad) is not a test dependency.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import orjson

from riskstream.validation import validator_for

BENCH = Path(__file__).resolve().parents[2] / "bench" / "public" / "skab.py"

HEADER = (
    "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;"
    "Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint"
)
ROWS = [
    "2020-03-09 10:34:33;0.027;0.039;0.87;0.054;75.49;25.83;244.09;32.0;0.0;0.0",
    "2020-03-09 10:34:34;0.026;0.038;1.30;0.054;75.54;25.84;224.17;32.0;1.0;1.0",
    "2020-03-09 10:34:36;0.025;0.037;1.10;-0.27;75.60;25.85;230.00;31.5;1.0;0.0",
]


def _skab() -> ModuleType:
    spec = importlib.util.spec_from_file_location("skab_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["skab_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_an_experiment_becomes_valid_sensor_events_in_time_order(tmp_path: Path) -> None:
    skab = _skab()
    path = tmp_path / "valve1" / "0.csv"
    path.parent.mkdir()
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    exp = skab.read_experiment(path)
    assert exp.name == "valve1-0"
    assert exp.changepoints == [1]

    recs = list(skab.records(exp))
    assert len(recs) == 3 * 8 == exp.events
    check = validator_for("sensor-event")
    for rec in recs:
        check(orjson.loads(orjson.dumps(rec["value"])))
        assert rec["topic"] == "sensor-events"
        assert rec["key"] == rec["value"]["sensor_id"]
    first = [r["value"] for r in recs[:8]]
    assert [e["sensor_id"] for e in first][3] == "valve1-0/Pressure"
    assert first[7]["sensor_id"] == "valve1-0/VolumeFlowRateRMS"
    assert first[7]["unit"] == "L/min"
    assert {e["time"] for e in first} == {"2020-03-09T10:34:33Z"}
    assert first[0]["asset_id"] == "valve1-0" and first[0]["quality"] == "good"
    assert recs[-1]["value"]["time"] == "2020-03-09T10:34:36Z"
    assert recs[-1]["value"]["value"] == 31.5
    times = [r["value"]["time"] for r in recs]
    assert times == sorted(times)
    assert len({r["value"]["event_id"] for r in recs}) == len(recs)


def test_the_anomaly_free_run_needs_no_labels(tmp_path: Path) -> None:
    skab = _skab()
    path = tmp_path / "anomaly-free" / "anomaly-free.csv"
    path.parent.mkdir()
    header = HEADER.removesuffix(";anomaly;changepoint")
    path.write_text("\n".join([header, *(r.rsplit(";", 2)[0] for r in ROWS)]) + "\n")
    exp = skab.read_experiment(path, scored=False)
    assert exp.name == "anomaly-free" and exp.changepoints == [] and not exp.scored
    assert next(skab.records(exp))["key"] == "anomaly-free/Accelerometer1RMS"


def test_only_the_first_record_of_an_incident_is_new() -> None:
    skab = _skab()

    def line(iid: str, alarms: int, at: str, parent: str | None = None) -> bytes:
        return orjson.dumps(
            {
                "incident_id": iid,
                "monitor": "sensor-value-drift",
                "subject": "valve1-0/Pressure",
                "stream_key": "valve1-0/Pressure",
                "detected_at": at,
                "onset_at": "2020-03-09T10:30:00.000Z",
                "evidence": {"episode": {"alarms": alarms}},
                **({"parent_id": parent} if parent else {}),
            }
        )

    lines = [
        line("a", 1, "2020-03-09T10:31:00.000Z"),
        line("a", 2, "2020-03-09T10:32:00.000Z"),
        line("a.1", 1, "2020-03-09T10:31:00.000Z", parent="a"),
        line("b", 1, "2020-03-09T10:33:00Z"),
        b"",
    ]
    incidents, children = skab.parse_incidents(lines)
    assert [(i.incident_id, i.new) for i in incidents] == [("a", True), ("a", False), ("b", True)]
    assert children == 1
    assert str(incidents[2].detected_at) == "2020-03-09 10:33:00"
