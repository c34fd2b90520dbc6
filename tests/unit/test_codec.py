"""The input decoder: reasons for what it refuses, and what it lets through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream.bootstrap import build_decoder
from riskstream.codec import EventDecoder, Rejection
from riskstream.config import load_config
from riskstream.config.processor import KEYED_BY
from riskstream.ports import Record
from riskstream.validation import validator_for

CONFIG = load_config(None)
T = CONFIG.topics
TIME = "2026-11-26T10:00:00.250Z"
EVENTS: dict[str, dict[str, Any]] = {
    T.sensor: {"event_id": "e", "time": TIME, "sensor_id": "line-1/temp-03", "value": 20.5},
    T.inference: {"event_id": "e", "time": TIME, "model_id": "bot", "prediction_id": "p"},
    T.label: {"event_id": "e", "time": TIME, "model_id": "bot", "prediction_id": "p", "label": 1},
    T.change: {"event_id": "e", "time": TIME, "kind": "deploy", "subject": "bot"},
}


def _record(topic: str, key: bytes | None, event: dict[str, Any]) -> Record:
    return Record(topic, 0, 0, key, orjson.dumps(event))


@pytest.mark.parametrize(("topic", "field"), [(T.sensor, "sensor_id"), (T.inference, "model_id"),
                                              (T.label, "model_id")])  # fmt: skip
def test_a_record_keyed_by_another_subject_is_refused_as_key_mismatch(
    topic: str, field: str
) -> None:
    """Kafka places a record by its key: one keyed otherwise than its subject would
    start a second copy of the subject's streams on another partition."""
    decoder = build_decoder(CONFIG)
    event = EVENTS[topic]
    assert decoder.decode(_record(topic, str(event[field]).encode(), event)) == event
    got = decoder.decode(_record(topic, b"someone-else", event))
    assert got == Rejection(
        "key_mismatch",
        f"keyed 'someone-else' but {field} is {event[field]!r}; key events by {field}, so "
        f"that all of one stream's events reach the partition holding its detectors",
    )


@pytest.mark.parametrize("key", [b"\xff\xfe", b"line-1/temp-03 ", b"LINE-1/TEMP-03", b""])
def test_a_key_that_is_not_the_subjects_utf8_is_a_mismatch(key: bytes) -> None:
    got = build_decoder(CONFIG).decode(_record(T.sensor, key, EVENTS[T.sensor]))
    assert isinstance(got, Rejection) and got.reason == "key_mismatch"


def test_a_non_ascii_subject_keyed_by_its_utf8_is_applied() -> None:
    event = {**EVENTS[T.sensor], "sensor_id": "Öfen-3/température"}
    assert build_decoder(CONFIG).decode(_record(T.sensor, "Öfen-3/température".encode(), event))


def test_a_long_key_is_shortened_in_the_message() -> None:
    got = build_decoder(CONFIG).decode(_record(T.sensor, b"k" * 5000, EVENTS[T.sensor]))
    assert isinstance(got, Rejection) and got.reason == "key_mismatch"
    assert f"keyed '{'k' * 100}...' but sensor_id" in got.message


def test_change_events_are_not_held_to_their_key() -> None:
    """A change event goes to the change log every processor reads, not to the
    detectors of one partition: its key places nothing (see KEYED_BY)."""
    assert "change" not in KEYED_BY and "change" not in CONFIG.processor.keyed_by
    event = EVENTS[T.change]
    assert build_decoder(CONFIG).decode(_record(T.change, b"ci-pipeline", event)) == event


def test_the_schema_is_checked_before_the_key() -> None:
    """An event without its subject says what is missing (schema), not key_mismatch."""
    event = {k: v for k, v in EVENTS[T.sensor].items() if k != "sensor_id"}
    got = build_decoder(CONFIG).decode(_record(T.sensor, b"line-1/temp-03", event))
    assert isinstance(got, Rejection) and got.reason == "schema"


def test_a_mismatched_key_is_refused_before_the_subject_is_looked_up() -> None:
    decoder = EventDecoder(
        {T.sensor: validator_for("sensor-event")}, 4096, {T.sensor: "sensor_id"},
        subject_fields={T.sensor: "sensor_id"}, known_subjects=frozenset({"line-1/temp-03"}),
    )  # fmt: skip
    event = EVENTS[T.sensor]
    assert decoder.decode(_record(T.sensor, b"line-1/temp-03", event)) == event
    unknown = {**event, "sensor_id": "intruder"}
    assert decoder.decode(_record(T.sensor, b"intruder", unknown)) == Rejection(
        "unknown_subject", "sensor_id='intruder' is not a known subject"
    )
    got = decoder.decode(_record(T.sensor, b"line-1/temp-03", unknown))
    assert isinstance(got, Rejection) and got.reason == "key_mismatch"


def test_without_a_subject_field_any_key_goes() -> None:
    decoder = EventDecoder({}, 4096)
    assert decoder.decode(_record(T.sensor, b"anything", EVENTS[T.sensor])) == EVENTS[T.sensor]


LINE_KEYED = """\
version: 1
processor:
  keyed_by: {sensor: line_id}
monitors:
  - {name: line-level, reads: sensor, key: line_id, value: value, detector: adwin}
  - {name: per-sensor, reads: sensor, key: [line_id, sensor_id], subject: sensor_id,
     value: value, detector: page-hinkley}
known_subjects: [line-1/temp-03]
"""


def test_events_keyed_by_the_field_processor_keyed_by_names_are_applied(tmp_path: Path) -> None:
    """A plant keys sensor events by line (one partition per line), so that line-level
    monitors see all of a line's events: the key is checked against line_id, and the
    known subjects are still sensors."""
    path = tmp_path / "line.yaml"
    path.write_text(LINE_KEYED)
    config = load_config(path)
    assert config.processor.keyed_by == {**KEYED_BY, "sensor": "line_id"}
    decoder = build_decoder(config)
    event = {**EVENTS[T.sensor], "line_id": "line-1"}
    assert decoder.decode(_record(T.sensor, b"line-1", event)) == event
    got = decoder.decode(_record(T.sensor, b"line-1/temp-03", event))
    assert isinstance(got, Rejection) and got.reason == "key_mismatch"
    assert "key events by line_id" in got.message
    stranger = {**event, "sensor_id": "intruder"}
    got = decoder.decode(_record(T.sensor, b"line-1", stranger))
    assert got == Rejection("unknown_subject", "sensor_id='intruder' is not a known subject")
    assert decoder.decode(_record(T.inference, b"bot", EVENTS[T.inference])) == Rejection(
        "unknown_subject", "model_id='bot' is not a known subject"
    )  # the other kinds keep their default key
