"""``riskstream schemas validate`` and ``riskstream config check``: checks with no server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from riskstream.cli import main
from riskstream.schema_files import check_text, guess_schema
from riskstream.validation import SCHEMA_DIR

EXAMPLES = sorted((SCHEMA_DIR / "examples").glob("*.json"))
INVALID = sorted((SCHEMA_DIR / "examples" / "invalid").glob("*.json"))


def _schema_of(path: Path) -> str:
    return path.name.split(".")[0]


@pytest.mark.parametrize("path", EXAMPLES + INVALID, ids=lambda p: p.name)
def test_the_schema_is_guessed_from_the_event(path: Path) -> None:
    assert guess_schema(orjson.loads(path.read_bytes())) == _schema_of(path)


def test_every_example_is_judged_as_its_folder_says() -> None:
    assert all(check_text(p.read_text())[0].ok for p in EXAMPLES)
    assert not any(check_text(p.read_text())[0].ok for p in INVALID)


def test_json_lines_report_each_bad_line_with_its_number_and_the_complaint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = orjson.loads((SCHEMA_DIR / "examples" / "sensor-event.1.json").read_bytes())
    record = {"topic": "sensor-events", "key": "t", "value": good}
    lines = [orjson.dumps(good), b"", orjson.dumps(good | {"quality": "ok"}), b"{not json",
             orjson.dumps({"x": 1}), orjson.dumps(record)]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines))
    assert main(["schemas", "validate", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{path}: line 3: sensor-event: $.quality: expected one of 'good', 'suspect', 'bad'; "
        "got 'ok'"
    )
    assert out[1].startswith(f"{path}: line 4: ?: not JSON: ")
    assert out[2] == f"{path}: line 5: ?: cannot tell which event this is: pass --schema"
    assert out[3] == "5 events checked, 3 bad"


def test_a_named_schema_applies_to_every_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "list.json"
    path.write_bytes(orjson.dumps([{"event_id": "e", "time": "2026-11-26T10:00:00Z"}]))
    assert main(["schemas", "validate", str(path), "--schema", "label-event"]) == 1
    assert "item 1: label-event: $: missing required property 'prediction_id'" in (
        capsys.readouterr().out
    )
    ok = SCHEMA_DIR / "examples" / "change-event.1.json"
    assert main(["schemas", "validate", str(ok)]) == 0
    assert capsys.readouterr().out == "1 events checked, 0 bad: all valid\n"
    assert main(["schemas", "validate", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err


def test_config_check_summarises_topics_monitors_playbooks_and_models(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib import resources

    path = str(resources.files("riskstream").joinpath("scenarios/medical.yaml"))
    assert main(["config", "check", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: ok, 1 monitors, 1 playbooks, 1 models"
    assert out[1].startswith("  topics    in: inference-events, sensor-events")
    assert "  playbook  clinical: human-review, route-to-version (approval)" in out
    assert "  model     diagnosis-v4: risk class high, Example Dx imaging classifier" in out
    assert out[-2:] == [
        "  provider  Example Diagnostics B.V. (fictional)", "  raci      for diagnosis-*, default"
    ]  # fmt: skip


def test_config_check_names_the_path_of_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nmodels:\n  m: {colour: red}\n")
    assert main(["config", "check", str(path)]) == 2
    assert f"{path}:3: $.models.m.colour: unknown key 'colour'" in capsys.readouterr().err


def test_json_lines_split_at_newlines_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON string may hold U+2028 (or U+0085) as it is; str.splitlines split the line
    there, so two valid events were reported as "4 events checked, 4 bad"."""
    good = orjson.loads((SCHEMA_DIR / "examples" / "sensor-event.1.json").read_bytes())
    lines = [orjson.dumps(good | {"sensor_id": "s\u2028x"}), orjson.dumps(good), b"{no"]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["schemas", "validate", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: line 3: ?: not JSON: ")
    assert out[1] == "3 events checked, 1 bad"


def test_a_file_that_is_not_utf8_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "cannot read: 'utf-8' codec can't decode byte 0xff in position 25", no line."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": "\xff"}\n')
    assert main(["schemas", "validate", str(path)]) == 2
    assert "line 3: not UTF-8 (invalid start byte at byte 25)" in capsys.readouterr().err
