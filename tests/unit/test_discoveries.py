"""False-discovery control: many noisy streams, few real changes, few false incidents."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from riskstream.config import load_config
from riskstream.core.discoveries import DiscoveryControl, FdrSettings, bh_level
from riskstream.core.incidents import incident_from_finding
from riskstream.core.monitors import Finding, MonitorSpec, PartitionDetectors, ValueSpec
from riskstream.core.streams import StreamSettings
from riskstream.core.timeutil import format_time
from riskstream.errors import ConfigError

T0 = 1.8e9
STREAMS, STEPS = 200, 1200
SHIFTED = {f"s{i}" for i in range(0, STREAMS, 20)}  # 10 of 200 shift +1 sigma halfway

NOISY = MonitorSpec(
    name="temp", reads="sensor", value=ValueSpec("value"), key=("sensor_id",),
    subject="sensor_id", detector="page-hinkley",
    params={"threshold": 10.0, "delta": 0.1, "min_instances": 1, "alpha": 1.0, "mode": "both"},
    settings=StreamSettings(warmup=300, scale=True), episode_s=0,
)  # fmt: skip
CONTROLLED = replace(NOISY, fdr=FdrSettings(q=0.05, confirm=30, window_s=60.0))


def _events() -> list[dict[str, object]]:
    rng = random.Random(3)
    return [
        {"time": format_time(T0 + step), "sensor_id": f"s{i}",
         "value": rng.gauss(0.0, 1.0) + (1.0 if step >= STEPS // 2 and f"s{i}" in SHIFTED else 0.0)}
        for step in range(STEPS)
        for i in range(STREAMS)
    ]  # fmt: skip


EVENTS = _events()


def _is_false(f: Finding) -> bool:
    return f.stream_key not in SHIFTED or f.alarm.onset_at - T0 < STEPS // 2 - 60


def test_fdr_control_removes_most_false_incidents_and_keeps_the_real_ones() -> None:
    raw_detectors = PartitionDetectors([NOISY], "sensor")
    raw = [f for e in EVENTS for f in raw_detectors.observe(e)]
    controlled_detectors = PartitionDetectors([CONTROLLED], "sensor")
    controlled = [f for e in EVENTS for f in controlled_detectors.observe(e)]
    raw_false = sum(map(_is_false, raw))
    false = sum(map(_is_false, controlled))
    real = {f.stream_key for f in controlled if not _is_false(f)}
    assert raw_false > 100  # the monitor really is noisy on its own
    assert false <= 2, f"{false} false incidents of {len(controlled)}"
    assert len(real) >= 6, f"only {sorted(real)} of {sorted(SHIFTED)} found"
    evidence = incident_from_finding(controlled[-1])["evidence"]["fdr"]
    assert evidence["p_value"] <= evidence["level"] and evidence["streams"] == STREAMS


def test_a_restart_mid_confirmation_releases_the_same_incidents() -> None:
    straight = PartitionDetectors([CONTROLLED], "sensor")
    expected = [(f.finding_id, f.alarm.detected_at) for e in EVENTS for f in straight.observe(e)]
    cut = (STEPS // 2 + 20) * STREAMS  # after the shift, with candidates mid-confirmation
    first = PartitionDetectors([CONTROLLED], "sensor")
    got = [(f.finding_id, f.alarm.detected_at) for e in EVENTS[:cut] for f in first.observe(e)]
    saved = first.take_changed()
    assert any(k.endswith("\x1b") for k in saved)
    resumed = PartitionDetectors([CONTROLLED], "sensor")
    resumed.load(saved)
    got += [(f.finding_id, f.alarm.detected_at) for e in EVENTS[cut:] for f in resumed.observe(e)]
    assert got == expected
    assert resumed.snapshot_all() == straight.snapshot_all()


def test_borderline_candidates_wait_for_the_window_and_pass_together() -> None:
    control = DiscoveryControl(FdrSettings(q=0.1, confirm=1, window_s=10.0))
    assert control.tick(0.0, 4) == []
    assert control.decide(0.01, "now", streams=4) == "now"  # <= q/m: BH passes it anyway
    assert control.decide(0.03, "a", streams=4) is None  # borderline: held
    assert control.decide(0.04, "b", streams=4) is None
    assert control.decide(0.9, "c", streams=4) is None
    passed = control.tick(10.0, 4)  # BH at q=0.1, m=4: 0.04 <= 0.1*3/4
    assert [item for item, _, _ in passed] == ["a", "b"] and control.suppressed == 1
    assert bh_level([0.5], 4, 0.1) == 0.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("fdr: {q: 1.5}", "fdr.q must be between 0 and 1"),
        ("fdr: {confirm: 0}", "must be >= 1"),
        ("detector: {kind: threshold, upper: 5}\n    fdr: {}", "fdr does not apply to 'threshold'"),
    ],
)
def test_fdr_config_errors_name_the_problem(tmp_path: Path, extra: str, message: str) -> None:
    detector = "" if "detector" in extra else "detector: {kind: page-hinkley}\n    "
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\nmonitors:\n  - name: m\n    reads: sensor\n    key: sensor_id\n"
        f"    value: value\n    {detector}{extra}\n"
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)
