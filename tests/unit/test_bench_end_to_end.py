"""The pure helpers of bench/end_to_end.py: the config it gives the processor, the
profile it prints.

The benchmark itself is a measurement, not a test; these check that the processor it
times runs the monitors and settings its setup text names.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def e2e() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # it imports harness and throughput as siblings
    try:
        import end_to_end

        yield end_to_end
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("monitors", ["bench", "default"])
def test_the_config_is_the_default_processor_section_with_its_own_topic_and_group(
    e2e: ModuleType, tmp_path: Path, monitors: str
) -> None:
    from riskstream.config import load_config

    path = tmp_path / "c.yaml"
    e2e.write_config(path, "t-sensor", "g-1", monitors)
    config = load_config(path)
    default = load_config(None)
    assert config.topics.sensor == "t-sensor"
    assert config.processor.group_id == "g-1"
    assert config.processor.checkpoint_events == default.processor.checkpoint_events
    assert config.processor.dedup_window == default.processor.dedup_window
    kinds = sorted(str(s.detector) for s in config.monitors if s.reads == "sensor")
    if monitors == "bench":
        assert kinds == ["adwin", "page-hinkley"]
    else:
        assert kinds == sorted(str(s.detector) for s in default.monitors if s.reads == "sensor")


def test_a_py_spy_profile_is_summed_by_function_own_and_inclusive(
    e2e: ModuleType, tmp_path: Path
) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);work (a.py:5) 3\nmain (a.py:2);work (a.py:9);leaf (b.py:2) 1\n")
    run = e2e.ProcRun("x", 1, 1, 1.0, None, [0.0], [0.0], [{}], "", "")
    run.extra["profile"] = raw
    lines = e2e.top_functions(run, "py-spy")
    assert " 75.0%  work (a.py)" in lines
    assert "100.0%  + main (a.py)" in lines
    assert " 25.0%  leaf (b.py)" in lines


def test_unit_costs_time_each_kind_alone_then_the_default_sensor_monitors_together(
    e2e: ModuleType,
) -> None:
    """The capacity plan takes the "together" row: it must run all five default sensor
    monitors in one PartitionDetectors (five streams per sensor), not one of them."""
    rows = e2e.unit_costs(keys=4, warm=40, timed=5)
    alone = {r["monitor"]: r for r in rows if r["kind"] != "together"}
    (together,) = (r for r in rows if r["kind"] == "together")
    assert set(alone) == {
        "value-drift", "value-adwin", "sensor-value-drift", "sensor-noise",
        "sensor-out-of-range", "sensor-stuck", "sensor-missing",
    }  # fmt: skip
    default = [r for r in rows if r["monitor"].startswith("sensor-")]
    assert together["streams"] == sum(r["streams"] for r in default)
    assert together["bytes_per_key"] == pytest.approx(
        sum(r["bytes_per_stream"] * r["streams"] for r in default) / 4, rel=0.1
    )
    assert rows[-1] is together and together["us_per_event"] > 0


def test_a_run_says_how_long_each_processor_spent_in_each_loop_phase(e2e: ModuleType) -> None:
    """The phases come from the processes' own counters, summed over processes; a phase
    no process spent time in is left out."""
    phase = "riskstream_processor_phase_seconds_total"
    metrics = [
        {
            "riskstream_checkpoint_seconds_count": 2.0,
            "riskstream_checkpoint_seconds_sum": 0.2,
            f"{phase}{{poll}}": 1.5,
            f"{phase}{{encode}}": 0.25,
            "riskstream_batch_seconds_sum": 6.0,
        },
        {
            "riskstream_checkpoint_seconds_count": 1.0,
            "riskstream_checkpoint_seconds_sum": 0.1,
            f"{phase}{{poll}}": 0.5,
            f"{phase}{{save}}": 0.125,
            "riskstream_batch_seconds_sum": 7.0,
        },
    ]
    run = e2e.ProcRun("x", 2, 1000, 10.0, 1.0, [1.0, 1.0], [0.1, 0.1], metrics, "", "")
    (line,) = [s for s in e2e.describe(run) if "loop phases" in s]
    assert "poll 2.00 s, encode 0.25 s, save 0.12 s, apply 13.00 s (of 20.00 s of wall" in line
    assert "flush" not in line and "fork" not in line
