from __future__ import annotations

import io

import pytest

from riskstream.cli import main
from riskstream.core.timeutil import parse_time
from riskstream.demo import run_demo


@pytest.mark.parametrize("seed", [1, 7, 11])
def test_demo_raises_one_incident_on_the_drifting_sensor_after_the_drift(seed: int) -> None:
    out = io.StringIO()
    result = run_demo(seed=seed, out=out)
    assert [inc["subject"] for inc in result.incidents] == [result.drifting_sensor], out.getvalue()
    incident = result.incidents[0]
    detected = parse_time(incident["detected_at"])
    assert result.drift_starts_at <= detected <= result.drift_starts_at + 300
    assert abs(parse_time(incident["onset_at"]) - result.drift_starts_at) <= 120
    assert "INCIDENT" in out.getvalue()


def test_demo_command_exits_zero_and_prints_the_incident(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--seed", "3"]) == 0
    assert "INCIDENT" in capsys.readouterr().out
