"""A bad config is refused at start, naming the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskstream.cli import main
from riskstream.config import load_config
from riskstream.errors import ConfigError

GOOD = """\
version: 1
monitors:
  - name: temp
    reads: sensor
    key: sensor_id
    value: value
    detector: {kind: page-hinkley, threshold: 30}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitors.yaml"
    path.write_text(text)
    return path


def test_the_shipped_default_watches_sensors_per_sensor_and_models() -> None:
    config = load_config(None)
    sensor = [m for m in config.monitors if m.reads == "sensor"]
    assert sensor and all(m.key == ("sensor_id",) for m in sensor)
    assert {m.reads for m in config.monitors} >= {"sensor", "inference"}


def test_a_good_file_loads_into_specs(tmp_path: Path) -> None:
    (spec,) = load_config(_write(tmp_path, GOOD)).monitors
    assert (spec.name, spec.reads, spec.key, spec.detector) == (
        "temp", "sensor", ("sensor_id",), "page-hinkley"
    )  # fmt: skip
    assert spec.params == {"threshold": 30}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("page-hinkley", "page-hinkly"), 7, "unknown detector 'page-hinkly'"),
        (GOOD.replace("threshold: 30", "treshold: 30"), 7, "treshold"),
        (GOOD.replace("reads: sensor", "reads: sensors"), 4, "reads must be one of"),
        (GOOD.replace("    value: value\n", ""), 3, "missing 'value'"),
        (GOOD + "    warmup: -3\n", 8, "must be >= 0"),
        (GOOD + "    colour: red\n", 8, "unknown monitor key 'colour'"),
        (GOOD + GOOD.split("monitors:\n")[1], 8, "used twice"),
        (GOOD.replace("version: 1", "version: 2"), 1, "unsupported config version"),
        ("version: 1\nmonitors: [\n", 3, "not valid YAML"),
        (GOOD + "procesor: {}\n", 8, "unknown section 'procesor'"),
        (
            GOOD.replace("key: sensor_id", "key: line_id"),
            3,
            "monitor 'temp' keys its streams by line_id, but sensor events are keyed (so "
            "partitioned) by sensor_id (processor.keyed_by), so one line_id's events would "
            "arrive on several partitions",
        ),
        (
            GOOD + "processor: {keyed_by: {sensor: line_id}}\n",
            3,
            "Add line_id to the monitor's key, or have producers key sensor events by "
            "sensor_id (processor.keyed_by: {sensor: sensor_id})",
        ),
        (
            GOOD + "processor: {keyed_by: {change: subject}}\n",
            8,
            "keyed_by takes inference, sensor, label (change events are not held to a key)",
        ),
        (
            GOOD + "processor: {keyed_by: {sensor: line.id}}\n",
            8,
            "keyed_by.sensor is a top-level field name, got 'line.id'",
        ),
    ],
)
def test_a_bad_file_is_refused_with_file_line_and_problem(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_config_check_command_reports_ok_or_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(_write(tmp_path, GOOD))]) == 0
    assert "ok, 1 monitors" in capsys.readouterr().out
    bad = _write(tmp_path, GOOD.replace("page-hinkley", "nope"))
    assert main(["config", "check", str(bad)]) == 2
    assert f"{bad}:7:" in capsys.readouterr().err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2


def test_checkpoint_budget_is_a_share_of_the_time(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nprocessor: {checkpoint_budget: 0.25}\n")
    assert load_config(path).processor.checkpoint_budget == 0.25
    path.write_text("version: 1\nprocessor: {checkpoint_budget: 2}\n")
    with pytest.raises(ConfigError, match="checkpoint_budget is a share of the time"):
        load_config(path)
