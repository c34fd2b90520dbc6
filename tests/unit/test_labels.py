"""Delayed labels: what is kept of a prediction, and how a label scores it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from riskstream.adapters.memory.predictions import InMemoryPredictionStore
from riskstream.core.labels import LabelOutcome, join, label_text, prediction_record
from riskstream.core.monitors import MonitorSpec, PartitionDetectors, ValueSpec, field_getter
from riskstream.core.state_keys import LIMITS_KEY
from riskstream.core.streams import StreamSettings
from riskstream.core.timeutil import parse_time

T0 = 1795687200.25  # 2026-11-26T10:00:00.250Z

INFERENCE: dict[str, Any] = {
    "event_id": "e1",
    "time": "2026-11-26T10:00:00.250Z",
    "model_id": "derm",
    "model_version": "4.2",
    "prediction_id": "p1",
    "prediction": {"label": "benign", "score": 0.81},
    "features": {"lesion_mm": 7.5, "history": "long free text"},
    "segment": {"sex": "f", "age_band": "65+", "region": "eu"},
    "safety": {},
    "latency_ms": 12.0,
}


def _label(label: Any, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": "l1",
        "time": "2026-11-30T10:00:00.250Z",
        "prediction_id": "p1",
        "model_id": "derm",
        "label": label,
        "source": "biopsy",
        **fields,
    }


def test_a_record_keeps_model_prediction_segment_and_time_but_no_features() -> None:
    assert prediction_record(INFERENCE) == {
        "model_id": "derm",
        "time": T0,
        "model_version": "4.2",
        "label": "benign",
        "score": 0.81,
        "segment": {"sex": "f", "age_band": "65+", "region": "eu"},
    }


def test_a_record_keeps_only_the_named_segment_attributes() -> None:
    record = prediction_record(INFERENCE, segment=["age_band", "sex", "not-there"])
    assert record["segment"] == {"age_band": "65+", "sex": "f"}
    assert "segment" not in prediction_record(INFERENCE, segment=["not-there"])


def test_a_record_leaves_out_what_the_event_does_not_say() -> None:
    event = {
        "event_id": "e2",
        "time": "2026-11-26T11:00:00+01:00",
        "model_id": "scorer",
        "prediction_id": "p2",
        "prediction": {"score": 0.4, "label": None},
        "segment": {},
    }
    assert prediction_record(event) == {"model_id": "scorer", "time": T0 - 0.25, "score": 0.4}


def test_a_wrong_prediction_of_a_tracked_class_is_an_error_and_a_miss() -> None:
    out = join(prediction_record(INFERENCE), _label("melanoma"), positive={"melanoma"})
    assert out == LabelOutcome(
        prediction_id="p1",
        model_id="derm",
        model_version="4.2",
        predicted="benign",
        label="melanoma",
        score=0.81,
        error=1.0,
        missed=1.0,
        predicted_at=T0,
        labelled_at=T0 + 4 * 86400,
        latency_s=4 * 86400.0,
        segment={"sex": "f", "age_band": "65+", "region": "eu", "label": "melanoma"},
        source="biopsy",
    )


@pytest.mark.parametrize(
    ("predicted", "true", "positive", "error", "missed"),
    [
        ("melanoma", "melanoma", {"melanoma"}, 0.0, 0.0),  # a hit
        ("benign", "melanoma", {"melanoma"}, 1.0, 1.0),  # a miss
        ("melanoma", "benign", {"melanoma"}, 1.0, None),  # a false alarm: not a miss
        ("benign", "benign", {"melanoma"}, 0.0, None),
        ("benign", "benign", None, 0.0, 0.0),  # every class tracked: per-class recall
        ("carcinoma", "melanoma", None, 1.0, 1.0),
        (True, True, {True}, 0.0, 0.0),
        (False, True, {True}, 1.0, 1.0),
        (1, True, {1}, 0.0, 0.0),  # Python's 1 == True
        ("1", 1, {1}, 1.0, 1.0),  # but text is not a number
        (2, 2.0, {2}, 0.0, 0.0),
    ],
)
def test_error_and_miss_indicators(
    predicted: Any, true: Any, positive: set[Any] | None, error: float, missed: float | None
) -> None:
    record = {"model_id": "derm", "time": T0, "label": predicted}
    out = join(record, _label(true), positive=positive)
    assert (out.error, out.missed) == (error, missed)


def test_a_score_only_prediction_has_no_error_or_miss() -> None:
    out = join({"model_id": "derm", "time": T0, "score": 0.3}, _label("melanoma"))
    assert (out.predicted, out.error, out.missed, out.score) == (None, None, None, 0.3)


def test_the_segment_adds_the_true_label_as_text() -> None:
    record = {"model_id": "derm", "time": T0, "label": False, "segment": {"label": "mine"}}
    out = join(record, _label(True))
    assert out.segment == {"label": "true"}  # the true label wins over an attribute of that name
    assert join({"model_id": "derm", "time": T0}, _label(3)).segment == {"label": "3"}
    assert [label_text(v) for v in ("a", False, 10, 2.5)] == ["a", "false", "10", "2.5"]


def test_a_label_that_comes_first_has_a_negative_latency() -> None:
    out = join({"model_id": "derm", "time": T0 + 10.0}, _label("x", time="2026-11-26T10:00:00Z"))
    assert out.latency_s == pytest.approx(-10.25)


def test_a_label_for_another_model_is_refused() -> None:
    with pytest.raises(ValueError, match=r"names model 'other'.*made by model 'derm'"):
        join(prediction_record(INFERENCE), _label("benign", model_id="other"))


def test_the_outcome_reads_as_an_event_with_the_usual_field_paths() -> None:
    out = join(prediction_record(INFERENCE), _label("melanoma"), positive={"melanoma"})
    event = out.as_event()
    assert ValueSpec("missed").getter()(event) == 1.0
    assert ValueSpec("error").getter()(event) == 1.0
    assert ValueSpec("predicted", equals="benign").getter()(event) == 1.0
    assert [field_getter(p)(event) for p in ("model_id", "segment.label", "segment.age_band")] == [
        "derm",
        "melanoma",
        "65+",
    ]
    assert (event["time"], event["predicted_at"], event["latency_s"]) == (
        "2026-11-30T10:00:00.250Z",
        "2026-11-26T10:00:00.250Z",
        4 * 86400.0,
    )
    assert parse_time(event["time"]) == out.labelled_at  # as PartitionDetectors reads it
    assert orjson.loads(orjson.dumps(event)) == event  # plain data


def test_a_join_through_a_store_equals_a_direct_one_and_can_repeat() -> None:
    store = InMemoryPredictionStore(clock=lambda: 0.0)
    record = prediction_record(INFERENCE, segment=["age_band"])
    store.put("p1", record, ttl_s=30 * 86400)
    label = _label("melanoma")
    first = join(store.get("p1") or {}, label, positive={"melanoma"})
    again = join(store.get("p1") or {}, label, positive={"melanoma"})  # a redelivered label
    assert first == again == join(record, label, positive={"melanoma"})


def test_label_monitors_run_on_outcomes_through_the_existing_partition_detectors() -> None:
    spec = MonitorSpec(
        name="recall",
        reads="label",
        value=ValueSpec("missed"),
        key=("model_id", "segment.label", "segment.age_band"),
        subject="model_id",
        detector="threshold",
        params={"upper": 0.5},
        settings=StreamSettings(warmup=0, scale=False),
    )
    detectors = PartitionDetectors([spec], "label")
    record = prediction_record(INFERENCE)
    hit = join({**record, "label": "melanoma"}, _label("melanoma"), positive={"melanoma"})
    miss = join(record, _label("melanoma"), positive={"melanoma"})
    assert detectors.observe(hit.as_event()) == []
    (finding,) = detectors.observe(miss.as_event())
    assert (finding.stream_key, finding.subject) == ("derm|melanoma|65+", "derm")
    negative = join(record, _label("benign"), positive={"melanoma"})
    assert detectors.observe(negative.as_event()) == []  # missed is None: not a sample
    # one stream, and the incident's episode (one per monitor and subject)
    assert [k for k in detectors.snapshot_all() if k != LIMITS_KEY] == [
        "recall\x1f\x1dderm", "recall\x1fderm|melanoma|65+"
    ]  # fmt: skip
