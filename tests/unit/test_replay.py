"""``riskstream replay``: monitors back-tested on a file of records."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from riskstream.cli import main
from riskstream.core.timeutil import format_time

NOW = "2027-01-16T00:00:00Z"  # the wall clock the events (from 1.8e9) are judged against


def _events(n: int, drift_at: int) -> list[dict[str, object]]:
    rng = random.Random(4)
    return [
        {
            "event_id": str(i),
            "time": format_time(1.8e9 + i),
            "sensor_id": "press-7",
            "value": rng.gauss(3.0 if i >= drift_at else 0.0, 1.0),
        }
        for i in range(n)
    ]


def test_replay_of_mixed_records_writes_incidents_and_reports_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.jsonl"
    lines = [
        orjson.dumps({"topic": "sensor-events", "key": "press-7", "value": e})
        for e in _events(3000, drift_at=2000)
    ]
    lines.insert(10, b'{"topic": "sensor-events", "key": "press-7", "value": {"event_id": 1}}')
    lines.insert(20, b"this line is not a record")
    lines.insert(30, orjson.dumps({"topic": "nobody-reads-this", "key": "k", "value": {}}))
    records.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "incidents.jsonl"

    assert main(["replay", "--input", str(records), "--output", str(out), "--now", NOW]) == 0
    incidents = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [i["subject"] for i in incidents] == ["press-7"]
    assert incidents[0]["monitor"] == "sensor-value-drift"
    err = capsys.readouterr().err
    assert "line 21: skipped" in err and "line 31: skipped" in err
    assert "3,001 records, 3,000 applied, 1 dead-lettered, 1 incidents, 2 lines skipped" in err


def test_replay_of_bare_events_with_topic_writes_to_stdout(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in _events(3000, drift_at=2500)))
    assert main(["replay", "--input", str(events), "--topic", "sensor-events", "--now", NOW]) == 0
    (incident,) = [orjson.loads(x) for x in capsysbinary.readouterr().out.splitlines()]
    assert incident["stream_key"] == "press-7"


def test_replay_refuses_an_unknown_topic_and_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    assert main(["replay", "--input", str(events), "--topic", "sensors"]) == 2
    assert "not an input topic" in capsys.readouterr().err
    assert main(["replay", "--input", str(tmp_path / "none.jsonl")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_bare_events_are_keyed_by_the_field_processor_keyed_by_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With sensor events keyed by line, ``--topic`` keys each bare event by its
    ``line_id``: keyed by its sensor, every one would be dead-lettered as key_mismatch."""
    config = tmp_path / "line.yaml"
    config.write_text(
        "version: 1\nprocessor: {keyed_by: {sensor: line_id}}\nmonitors:\n"
        "  - {name: per-sensor, reads: sensor, key: [line_id, sensor_id], subject: sensor_id,\n"
        "     value: value, detector: {kind: page-hinkley, threshold: 50}, warmup: 100}\n"
    )
    events = tmp_path / "events.jsonl"
    lines = [orjson.dumps({**e, "line_id": "line-2"}) for e in _events(3000, drift_at=2500)]
    events.write_bytes(b"\n".join(lines))
    out = tmp_path / "incidents.jsonl"
    argv = ["replay", "--config", str(config), "--input", str(events), "--output", str(out)]
    assert main([*argv, "--topic", "sensor-events", "--now", NOW]) == 0
    assert "3,000 records, 3,000 applied, 0 dead-lettered" in capsys.readouterr().err
    incidents = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert incidents and {i["subject"] for i in incidents} == {"press-7"}


def test_records_of_odd_shapes_and_sizes_are_named_by_line_and_the_good_ones_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A topic that is a list or an object stopped the replay with a TypeError
    traceback, losing every record after it; a 5 MB line was read whole; a byte order
    mark cost the first record. Each is named by its line now, and the rest applied."""
    good = [
        orjson.dumps({"topic": "sensor-events", "key": "press-7", "value": e})
        for e in _events(30, drift_at=100)
    ]
    bad = [
        b'{"topic": ["sensor-events"], "key": "press-7", "value": {}}',
        b'{"topic": {"a": 1}, "value": {}}',
        b'{"topic": "sensor-events", "key": "press-7", "value": "' + b"x" * 5_000_000 + b'"}',
    ]
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"\xef\xbb\xbf" + b"\n".join(good[:10] + bad + good[10:]) + b"\n")

    assert main(["replay", "--input", str(records), "--now", NOW]) == 0
    err = capsys.readouterr().err
    assert "line 11: skipped, not a record: topic ['sensor-events'] is not an input" in err
    assert "line 12: skipped, not a record: topic {'a': 1} is not an input" in err
    assert "line 13: skipped, over 1,048,576 bytes" in err
    assert "30 records, 30 applied, 0 dead-lettered, 0 incidents, 3 lines skipped" in err
