"""``riskstream demo``: the three situations end to end on the embedded pipeline."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import orjson
import pytest

from riskstream.cli import main
from riskstream.demo import APPROVER, run_situation


def test_chatbot_rolls_the_bot_back_to_its_last_known_good_version() -> None:
    result, _ = run_situation("chatbot", seed=7)
    assert result.false_incidents == []
    (incident,) = result.incidents
    assert incident["stream_key"] == "support-bot|group-c"
    assert incident["suspected_changes"][0]["event_id"] == result.truth["causing_change_id"]
    assert 0 < (result.detection_delay_s or 0) <= 2 * 3600
    flag = result.flags["support-bot"]
    assert (flag["active_version"], flag["mode"]) == ("bot-1.4", "normal")


def test_manufacturing_opens_one_cascade_and_routes_the_maintenance_model_to_fallback() -> None:
    result, _ = run_situation("manufacturing", seed=7)
    assert result.false_incidents == []
    drift = next(i for i in result.incidents if i["type"] == "sensor-drift")
    assert drift["subject"] == result.truth["drifting_sensor"]
    assert drift["blast_radius"]["downstream"] == result.truth["expected_downstream"]
    children = [i for i in result.incidents if i.get("parent_id") == drift["incident_id"]]
    assert [c["subject"] for c in children] == result.truth["expected_downstream"]
    assert drift["blast_radius"]["estimated_cost"]["amount"] > 0
    flag = result.flags["maintenance-line-2"]
    assert (flag["mode"], flag["active_version"]) == ("fallback", "rules-v2")
    assert {m for m, f in result.flags.items() if f["incident_id"]} == {"maintenance-line-2"}
    # the sensor, the flat anomaly model and the maintenance model: one story, not six pages
    (related,) = result.groups.values()
    assert drift["incident_id"] in related and len(related) + 1 == len(result.incidents)


def test_medical_reviews_at_once_and_rolls_back_only_with_a_named_approval() -> None:
    held, _ = run_situation("medical", seed=7, approve=False)
    assert held.false_incidents == []
    incident = held.incidents[0]
    assert incident["regulatory"]["potential_serious_incident"] is True
    assert incident["regulatory"]["report_within_days"] == 15
    assert held.flags["diagnosis-v4"]["mode"] == "human-review"  # applied at once
    assert [p["action"] for p in held.pending][:1] == ["route-to-version"]  # held for a person

    approved, _ = run_situation("medical", seed=7)
    flag = approved.flags["diagnosis-v4"]
    assert (flag["active_version"], flag["actor"]) == ("dx-4.0", APPROVER)


def test_demo_json_prints_one_summary_per_situation(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run's log file goes
    assert main(["demo", "--json", "--scenario", "chatbot", "--scenario", "medical"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summaries = [orjson.loads(line) for line in lines]
    assert [s["scenario"] for s in summaries] == ["chatbot", "medical"]
    assert {
        "ground_truth",
        "incidents",
        "actions_applied",
        "actions_pending",
        "final_flags",
    } <= set(summaries[0])


def test_demo_tells_each_story(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    from riskstream.demo import run_demo

    run_demo(["manufacturing"], seed=7, out=out)
    text = out.getvalue()
    for line in ("ground truth", "detected", "suspect 1", "cascade", "contained", "final flag"):
        assert line in text, text


def test_the_manufacturing_story_opens_on_the_sensor_not_on_the_model_seen_first() -> None:
    # Issue 15 (3): the flat anomaly model is detected first (onset ~13:08), but the
    # drifting sensor feeding it began earlier (~13:04) and is the root.
    result, _ = run_situation("manufacturing", seed=7)
    (story,) = result.stories.values()
    root, *effects = story["members"]
    assert (root["subject"], root["type"]) == (result.truth["drifting_sensor"], "sensor-drift")
    flat = next(m for m in effects if m["type"] == "model-output-flat")
    assert root["onset_at"] < flat["onset_at"] and flat["detected_at"] < root["detected_at"]
    assert {m["role"] for m in effects} == {"effect"}
    assert "feeds anomaly-line-2" in story["why"] and "began first" in story["why"]
    out = io.StringIO()
    from riskstream.demo import _tell

    _tell(result, out)
    text = out.getvalue()
    assert text.index("root cause    sensor-drift on line-2/temp-03") < text.index("detected")
    assert text.index("sensor-drift on line-2/temp-03\n") < text.index("model-output-flat")
