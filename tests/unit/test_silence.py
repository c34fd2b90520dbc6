"""Missing data: a stream that stops is reported once per silence, in data time."""

from __future__ import annotations

import random

import pytest

from riskstream.config import load_config
from riskstream.core.monitors import PartitionDetectors
from riskstream.core.timeutil import format_time, parse_time


def _events(seed: int, stops: dict[str, tuple[int, int]]) -> list[dict[str, object]]:
    """Three sensors reporting every 10 s; ``stops[s] = (from, to)`` silences s in between."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for step in range(400):
        for s in ("a", "b", "c"):
            start, end = stops.get(s, (-1, -1))
            if start <= step < end:
                continue
            out.append(
                {
                    "event_id": f"{s}{step}",
                    "time": format_time(1.8e9 + 10 * step + rng.random()),
                    "sensor_id": s,
                    "value": rng.gauss(0, 1),
                }
            )
    return out


def _missing_only() -> PartitionDetectors:
    specs = [m for m in load_config(None).monitors if m.detector == "missing"]
    assert specs, "the default config watches for missing sensors"
    return PartitionDetectors(specs, "sensor")


def test_each_silence_is_reported_once_with_its_last_event_as_onset() -> None:
    detectors = _missing_only()
    findings = [
        f for e in _events(1, {"b": (100, 150), "c": (300, 400)}) for f in detectors.observe(e)
    ]
    got = [(f.subject, f.alarm.onset_at) for f in findings]
    assert [s for s, _ in got] == ["b", "c"]
    b = findings[0]
    assert 300 <= b.alarm.detected_at - b.alarm.onset_at < 320  # after: 300 s
    assert parse_time(format_time(b.alarm.onset_at)) == pytest.approx(1.8e9 + 990, abs=1)


@pytest.mark.parametrize("cut", [50, 130, 333, 700])
def test_restored_silence_state_reports_exactly_what_an_unbroken_one_does(cut: int) -> None:
    events = _events(2, {"a": (40, 90), "b": (120, 125), "c": (200, 260)})
    straight, resumed = _missing_only(), _missing_only()
    a = [f.finding_id for e in events for f in straight.observe(e)]
    b = [f.finding_id for e in events[:cut] for f in resumed.observe(e)]
    saved = resumed.take_changed()
    resumed = _missing_only()
    resumed.load(saved)
    b += [f.finding_id for e in events[cut:] for f in resumed.observe(e)]
    assert a == b and len(a) == 2
    assert resumed.snapshot_all() == straight.snapshot_all()
