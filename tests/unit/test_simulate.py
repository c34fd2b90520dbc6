"""The seeded scenario simulators and ``riskstream simulate``."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.cli import main
from riskstream.cli import simulate as cli_simulate
from riskstream.core.enrichment import downstream_of, upstream_of
from riskstream.core.timeutil import format_time, parse_time
from riskstream.errors import ConfigError
from riskstream.simulate import KINDS, SCENARIOS, Simulation
from riskstream.simulate.chatbot import GROUPS
from riskstream.validation import validator_for

DAY = 86_400.0
SUBJECT = {"inference": "model_id", "sensor": "sensor_id", "label": "model_id", "change": "subject"}


@pytest.fixture(scope="module")
def sims() -> dict[str, Simulation]:
    """Each scenario at full size, seed 7: generated once for the module."""
    return {name: simulate() for name, simulate in SCENARIOS.items()}


def _events(sim: Simulation, kind: str) -> list[dict[str, Any]]:
    return [event for k, _, event in sim.records if k == kind]


def _rate(hits: Iterable[bool]) -> float:
    values = list(hits)
    return sum(values) / len(values)


# -- common properties ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_same_seed_gives_the_same_records_and_another_seed_others(name: str) -> None:
    simulate = SCENARIOS[name]
    first, again = simulate(3, scale=0.05), simulate(3, scale=0.05)
    assert first.records == again.records
    assert first.truth == again.truth
    other = simulate(4, scale=0.05)
    assert other.records != first.records
    assert [e["event_id"] for _, _, e in other.records] != [
        e["event_id"] for _, _, e in first.records
    ]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_event_matches_its_schema_and_is_keyed_by_its_subject(
    sims: dict[str, Simulation], name: str
) -> None:
    validators = {kind: validator_for(f"{kind}-event") for kind in KINDS}
    for kind, key, event in sims[name].records:
        validators[kind](event)
        assert key == event[SUBJECT[kind]]
        # what the Kafka producer and the replay file carry is plain JSON
        assert orjson.loads(orjson.dumps(event)) == event


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_records_are_in_data_time_order_with_unique_ids(
    sims: dict[str, Simulation], name: str
) -> None:
    times = [parse_time(event["time"]) for _, _, event in sims[name].records]
    assert all(a <= b for a, b in pairwise(times))
    ids = Counter(event["event_id"] for _, _, event in sims[name].records)
    assert ids.most_common(1)[0][1] == 1
    predictions = Counter(e["prediction_id"] for e in _events(sims[name], "inference"))
    assert predictions.most_common(1)[0][1] == 1


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sizes_at_scale_one_and_scale_multiplies_traffic(
    sims: dict[str, Simulation], name: str
) -> None:
    sim = sims[name]
    assert 20_000 <= len(sim.records) <= 60_000
    assert sim.truth["counts"]["records"] == len(sim.records)
    for kind, n in sim.counts().items():
        assert sim.truth["counts"][kind] == n
    half = SCENARIOS[name](scale=0.5)
    traffic = len(sim.records) - sim.counts()["change"]
    half_traffic = len(half.records) - half.counts()["change"]
    assert half_traffic == pytest.approx(traffic / 2, rel=0.05)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_truth_is_json_and_its_failure_lies_inside_the_data(
    sims: dict[str, Simulation], name: str
) -> None:
    sim = sims[name]
    truth = json.loads(json.dumps(sim.truth))
    assert truth == sim.truth
    assert truth["scenario"] == name
    failure = truth["failure_start_epoch"]
    assert parse_time(truth["failure_start"]) == failure
    assert truth["data_start_epoch"] < failure < truth["data_end_epoch"]
    traffic = [parse_time(e["time"]) for k, _, e in sim.records if k in ("inference", "sensor")]
    assert sum(t < failure for t in traffic) > 5000
    assert sum(t >= failure for t in traffic) > 2000
    changes = {e["event_id"]: e for e in _events(sim, "change")}
    cause = changes[truth["causing_change_id"]]
    assert truth["causing_change"] == {k: cause[k] for k in truth["causing_change"]}
    assert 0 < failure - parse_time(cause["time"]) <= 3600
    listed = {truth["causing_change_id"], *truth["unrelated_change_ids"]}
    listed |= set(truth["baseline_change_ids"])
    assert listed == set(changes)
    assert all(subject in _subjects(sim) for subject in truth["failing_subjects"])


def _subjects(sim: Simulation) -> set[str]:
    return {key for _, key, _ in sim.records}


def test_scenarios_refuse_bad_options() -> None:
    with pytest.raises(ValueError, match="scale"):
        SCENARIOS["chatbot"](scale=0)
    with pytest.raises(ValueError, match="target_group"):
        SCENARIOS["chatbot"](target_group="group-z")
    with pytest.raises(ValueError, match="drifting_sensor"):
        SCENARIOS["manufacturing"](drifting_sensor="line-9/temp-01")
    with pytest.raises(ValueError, match="failure_after_days"):
        SCENARIOS["medical"](failure_after_days=30)


# -- 1. the biased chatbot ------------------------------------------------------------------


def test_chatbot_harms_only_the_target_group_on_the_bot(sims: dict[str, Simulation]) -> None:
    sim = sims["chatbot"]
    truth = sim.truth
    failure, target = truth["failure_start_epoch"], truth["affected_segment"]["group"]
    assert truth["failing_subjects"] == ["support-bot"] and target in GROUPS
    harmful: dict[tuple[str, str, bool], list[bool]] = defaultdict(list)
    for e in _events(sim, "inference"):
        assert set(e["segment"]) == {"group", "channel", "region"}
        assert isinstance(e["features"]["user_id"], str)
        assert all(0.0 <= v <= 1.0 for v in e["safety"].values())
        after = parse_time(e["time"]) >= failure
        harmful[e["model_id"], e["segment"]["group"], after].append(e["safety"]["harmful"] > 0.5)
    assert {m for m, _, _ in harmful} == {"support-bot", "search-ranker", "summarizer"}
    for (model, group, after), hits in harmful.items():
        rate = _rate(hits)
        if model == "support-bot" and group == target and after:
            assert rate >= 3 * _rate(harmful[model, group, False])
            assert rate >= 0.04
        else:
            assert 0.005 <= rate <= 0.03, (model, group, after, rate)
    for group in GROUPS:
        if group != target:  # the other groups stay flat on the bot
            before = _rate(harmful["support-bot", group, False])
            assert _rate(harmful["support-bot", group, True]) <= 1.6 * before
    # the truth's counts and rates are what the data shows
    tally = truth["harmful_rates"]["support-bot"][target]["after"]
    assert tally["events"] == len(harmful["support-bot", target, True])
    assert tally["harmful"] == sum(harmful["support-bot", target, True])
    assert truth["counts"]["target_harmful_after"] == tally["harmful"]
    users = {
        e["features"]["user_id"]
        for e in _events(sim, "inference")
        if e["model_id"] == "support-bot"
        and e["segment"]["group"] == target
        and parse_time(e["time"]) >= failure
    }
    assert truth["counts"]["affected_users"] == len(users) > 500


def test_chatbot_changes_name_the_cause_and_a_last_known_good_version(
    sims: dict[str, Simulation],
) -> None:
    sim = sims["chatbot"]
    truth = sim.truth
    failure = truth["failure_start_epoch"]
    changes = {e["event_id"]: e for e in _events(sim, "change")}
    cause = changes[truth["causing_change_id"]]
    assert cause["kind"] in ("deploy", "prompt") and cause["subject"] == "support-bot"
    assert cause["version"] == "bot-1.5"
    assert 60 <= failure - parse_time(cause["time"]) <= 600
    good = changes[truth["last_known_good"]["change_id"]]
    assert (good["kind"], good["subject"], good["version"]) == ("deploy", "support-bot", "bot-1.4")
    assert failure - parse_time(good["time"]) > DAY
    unrelated = [changes[i] for i in truth["unrelated_change_ids"]]
    assert {c["kind"] for c in unrelated} >= {"deploy", "data-pipeline"}
    assert any(c["subject"] != "support-bot" and c["kind"] == "deploy" for c in unrelated)
    bot = [e for e in _events(sim, "inference") if e["model_id"] == "support-bot"]
    deployed = parse_time(cause["time"])
    assert all(
        e["model_version"] == ("bot-1.5" if parse_time(e["time"]) >= deployed else "bot-1.4")
        for e in bot
    )


# -- 2. silent sensor drift, cascading ------------------------------------------------------


def test_manufacturing_drifts_one_sensor_only(sims: dict[str, Simulation]) -> None:
    sim = sims["manufacturing"]
    truth = sim.truth
    failure, drifting = truth["failure_start_epoch"], truth["drifting_sensor"]
    readings: dict[str, list[tuple[float, float]]] = defaultdict(list)
    quality = Counter()
    for e in _events(sim, "sensor"):
        readings[e["sensor_id"]].append((parse_time(e["time"]), e["value"]))
        quality[e["quality"]] += 1
        assert e["sensor_id"].startswith(e["line_id"] + "/")
        assert e["asset_id"].startswith(e["line_id"] + "/")
    assert len(readings) == truth["counts"]["sensors"] == 24
    assert set(quality) == {"good", "suspect"} and quality["suspect"] < 0.01 * quality["good"]
    for sensor, values in readings.items():
        before = [v for t, v in values if failure - 3600 <= t < failure]
        last_hour = [v for t, v in values if t >= truth["data_end_epoch"] - 3600]
        sd = statistics.stdev(before)
        shift = (statistics.fmean(last_hour) - statistics.fmean(before)) / sd
        if sensor == drifting:
            assert shift > 3.0, shift  # a ramp: 2.5 degC after 3 hours, noise sd 0.5
        else:
            assert abs(shift) < 0.5, (sensor, shift)


def test_manufacturing_cascade_anomaly_model_goes_flat_then_maintenance_goes_wrong(
    sims: dict[str, Simulation],
) -> None:
    sim = sims["manufacturing"]
    truth = sim.truth
    failure = truth["failure_start_epoch"]
    sensor_stage, anomaly_stage, maintenance_stage = truth["cascade"]
    assert sensor_stage["subject"] == truth["drifting_sensor"]
    assert failure == sensor_stage["start_epoch"] < anomaly_stage["start_epoch"]
    assert anomaly_stage["start_epoch"] < maintenance_stage["start_epoch"]
    scores: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for e in _events(sim, "inference"):
        scores[e["model_id"]].append(
            (parse_time(e["time"]), e["prediction"]["score"], e["prediction"]["label"])
        )
    assert len(scores) == truth["counts"]["models"] == 6
    flat_at, wrong_at = anomaly_stage["start_epoch"], maintenance_stage["start_epoch"]
    for model, series in scores.items():
        before = [s for t, s, _ in series if t < failure]
        after_flat = [s for t, s, _ in series if t >= flat_at]
        stops_before = _rate(lb == "stop-line" for t, _, lb in series if t < failure)
        stops_after = _rate(lb == "stop-line" for t, _, lb in series if t >= wrong_at + 1800)
        if model == anomaly_stage["subject"]:  # silent: flat and flags nothing
            assert statistics.pstdev(after_flat) < 0.002 < statistics.pstdev(before)
            assert max(after_flat) < 0.05
        elif model == maintenance_stage["subject"]:
            assert stops_after >= 0.3 and stops_after >= 10 * stops_before
        elif model.startswith("anomaly-"):
            assert statistics.fmean(after_flat) == pytest.approx(statistics.fmean(before), abs=0.01)
            assert statistics.pstdev(after_flat) > 0.01
        else:
            assert stops_after < 0.03 and stops_before < 0.03
    # lineage: sensor -> anomaly model -> maintenance model; the cause sits upstream
    lineage = truth["lineage"]
    assert downstream_of(truth["drifting_sensor"], lineage) == truth["expected_downstream"]
    assert truth["expected_downstream"] == [anomaly_stage["subject"], maintenance_stage["subject"]]
    assert truth["causing_change"]["kind"] == "data-pipeline"
    assert truth["causing_change"]["subject"] in upstream_of(truth["drifting_sensor"], lineage)


# -- 3. medical, subgroup miss, regulated ----------------------------------------------------


def test_medical_labels_arrive_days_later_out_of_order_and_some_never(
    sims: dict[str, Simulation],
) -> None:
    sim = sims["medical"]
    predictions = {e["prediction_id"]: e for e in _events(sim, "inference")}
    labels = _events(sim, "label")
    assert 0.85 * len(predictions) <= len(labels) <= 0.93 * len(predictions)
    assert len(predictions) - len(labels) == sim.truth["counts"]["labels_never"]
    order = []
    for label in labels:
        prediction = predictions[label["prediction_id"]]
        assert label["model_id"] == prediction["model_id"] == "diagnosis-v4"
        delay = parse_time(label["time"]) - parse_time(prediction["time"])
        assert 0.5 * DAY <= delay <= 10 * DAY + 1
        order.append(parse_time(prediction["time"]))
    assert any(a > b for a, b in pairwise(order))  # out of order
    for prediction in predictions.values():  # nothing at inference knows the truth
        assert set(prediction["segment"]) == {"age_band", "sex", "site"}
        assert "subtype" not in prediction["features"]


def test_medical_recall_falls_for_one_subtype_in_one_age_band_only(
    sims: dict[str, Simulation],
) -> None:
    sim = sims["medical"]
    truth = sim.truth
    failure, segment = truth["failure_start_epoch"], truth["affected_segment"]
    predictions = {e["prediction_id"]: e for e in _events(sim, "inference")}
    hits: dict[tuple[str, str, bool], list[bool]] = defaultdict(list)
    for label in _events(sim, "label"):
        if label["label"] == "benign":
            continue
        p = predictions[label["prediction_id"]]
        after = parse_time(p["time"]) >= failure
        hits[label["label"], p["segment"]["age_band"], after].append(
            p["prediction"]["label"] == label["label"]
        )
    target = (segment["true_label"], segment["age_band"])
    for (subtype, band, after), got in hits.items():
        if after:
            continue
        before, later = _rate(got), _rate(hits[subtype, band, True])
        if (subtype, band) == target:
            assert before > 0.8 and later < 0.45, (before, later)
        else:
            assert later == pytest.approx(before, abs=0.1), (subtype, band, before, later)
    assert truth["recall"][f"{target[0]}|{target[1]}"]["after"]["recall"] < 0.45
    changes = {e["event_id"]: e for e in _events(sim, "change")}
    cause = changes[truth["causing_change_id"]]
    assert (cause["subject"], cause["version"]) == ("diagnosis-v4", "dx-4.1")
    assert truth["high_risk"] is True
    assert truth["last_known_good"]["version"] == "dx-4.0"


# -- the command ----------------------------------------------------------------------------


def _simulate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="riskstream")
    cli_simulate.register(parser.add_subparsers(dest="command", required=True))
    return cli_simulate.run(parser.parse_args(["simulate", *argv]))


def test_the_command_offers_every_scenario() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_simulate.register(sub)
    for name in SCENARIOS:
        assert parser.parse_args(["simulate", name]).scenario == name
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "nuclear-plant"])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_command_writes_a_replay_file_that_replay_accepts(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-truth.json"
    assert (
        _simulate(
            name, "--seed", "5", "--scale", "0.05", "--output", str(out), "--truth", str(truth)
        )
        == 0
    )
    sim = SCENARIOS[name](5, scale=0.05)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    topics = {
        "inference": "inference-events",
        "sensor": "sensor-events",
        "label": "label-events",
        "change": "change-events",
    }
    assert lines == [{"topic": topics[k], "key": key, "value": e} for k, key, e in sim.records]
    assert json.loads(truth.read_text()) == sim.truth
    capsys.readouterr()
    incidents = tmp_path / "incidents.jsonl"
    # the stories are dated from 2026-11-26 on, up to weeks: judged as of their end
    end = format_time(max(parse_time(e["time"]) for _, _, e in sim.records))
    assert main(["replay", "--input", str(out), "--output", str(incidents), "--now", end]) == 0
    err = capsys.readouterr().err
    assert f"{len(sim.records):,} records, {len(sim.records):,} applied, 0 dead-lettered" in err


def test_the_command_takes_topic_names_from_the_config_and_options(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\ntopics:\n  inference: ai-in\n  change: changes-in\n")
    out = tmp_path / "records.jsonl"
    assert (
        _simulate(
            "chatbot",
            "--scale",
            "0.02",
            "--config",
            str(config),
            "--output",
            str(out),
            "--set",
            "harm_multiplier=6",
            "--set",
            "target_group=group-a",
        )
        == 0
    )
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {line["topic"] for line in lines} == {"ai-in", "changes-in"}
    assert main(["replay", "--config", str(config), "--input", str(out)]) == 0
    with pytest.raises(ConfigError, match="harm_multiplier"):
        _simulate("chatbot", "--set", "harm_multipler=6")
    with pytest.raises(ConfigError, match="not a float"):
        _simulate("chatbot", "--set", "harm_multiplier=lots")
    with pytest.raises(ConfigError, match="target_group"):
        _simulate("chatbot", "--set", "target_group=nobody")


def test_the_command_without_output_prints_counts_and_truth(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _simulate("medical", "--scale", "0.02") == 0
    out = capsys.readouterr().out
    sim = SCENARIOS["medical"](scale=0.02)
    assert f"records: {len(sim.records):,}" in out
    assert f"label-events: {sim.counts()['label']:,}" in out
    assert '"causing_change_id": "medical-s7/change/deploy-dx-4.1"' in out


def test_the_command_lists_a_scenarios_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert _simulate("chatbot", "--set", "help") == 0
    out = capsys.readouterr().out
    assert "harm_multiplier (default 4.0): the target group's rate" in out
    assert "scale" not in out.split("\n", 1)[1]


def test_the_command_keys_records_as_the_configs_processor_checks(tmp_path: Path) -> None:
    """With sensor events keyed by line, the simulated plant's records are keyed by
    their line_id (keyed by sensor, the processor would dead-letter every one)."""
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\nprocessor: {keyed_by: {sensor: line_id}}\nmonitors: []\n")
    out = tmp_path / "records.jsonl"
    argv = ["manufacturing", "--scale", "0.02", "--config", str(config), "--output", str(out)]
    assert _simulate(*argv) == 0
    sensors = [r for r in map(orjson.loads, out.read_bytes().splitlines())
               if r["topic"] == "sensor-events"]  # fmt: skip
    assert sensors and all(r["key"] == r["value"]["line_id"] for r in sensors)
    assert any(r["key"] != r["value"]["sensor_id"] for r in sensors)
