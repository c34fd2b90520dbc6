"""The schema files in ``schemas/``: well-formed, documented, and true to their examples.

Every example is checked twice, by jsonschema (the reference) and by the compiled
validator riskstream runs, so an example can never be valid for one and not the other.
"""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from riskstream.demo import run_demo
from riskstream.errors import SchemaError
from riskstream.validation import DRAFT, SCHEMA_DIR, load_schema, validator_for

INPUTS = ["inference-event", "sensor-event", "label-event", "change-event"]
OUTPUTS = ["incident", "routing-change"]
NAMES = INPUTS + OUTPUTS
EXAMPLES = SCHEMA_DIR / "examples"
VALID = sorted(EXAMPLES.glob("*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))


def _date_time(value: object) -> bool:
    """Reference date-time check.  Enough here because every date-time in our schemas
    also carries a pattern that admits only RFC 3339 shapes fromisoformat reads."""
    if not isinstance(value, str):
        return True
    try:
        return datetime.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(_date_time)


def reference(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        load_schema(SCHEMA_DIR / f"{name}.schema.json"), format_checker=FORMATS
    )


def schema_of(example: Path) -> str:
    return example.name.split(".", 1)[0]


def test_every_schema_file_is_known_and_has_examples() -> None:
    assert sorted(p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.json")) == sorted(
        NAMES
    )
    for name in NAMES:
        assert any(schema_of(p) == name for p in VALID), f"no valid example for {name}"
        assert any(schema_of(p) == name for p in INVALID), f"no invalid example for {name}"
    for example in VALID:
        assert example.name.split(".")[1].isdigit(), f"{example.name}: want <schema>.<n>.json"


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_2020_12_and_documented(name: str) -> None:
    schema = load_schema(SCHEMA_DIR / f"{name}.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT
    assert schema["$id"].endswith(f":{name}:1")
    assert schema["title"] and schema["description"]
    for key, prop in schema["properties"].items():
        assert "description" in prop, f"{name}: property {key!r} has no description"
    validator_for(name)  # and the compiler understands every keyword in it


@pytest.mark.parametrize("name", INPUTS)
def test_inputs_stay_open_but_bounded(name: str) -> None:
    schema = load_schema(SCHEMA_DIR / f"{name}.schema.json")
    assert schema.get("additionalProperties", True) is not False, "inputs may gain fields"
    assert schema["maxProperties"] <= 64
    assert {"event_id", "time"} <= set(schema["required"])


@pytest.mark.parametrize("example", VALID, ids=lambda p: p.name)
def test_valid_examples_pass_both_validators(example: Path) -> None:
    event = json.loads(example.read_text())
    reference(schema_of(example)).validate(event)
    validator_for(schema_of(example))(event)


@pytest.mark.parametrize("example", INVALID, ids=lambda p: p.name)
def test_invalid_examples_fail_both_validators(example: Path) -> None:
    event = json.loads(example.read_text())
    assert not reference(schema_of(example)).is_valid(event)
    with pytest.raises(SchemaError, match=r"^\$"):
        validator_for(schema_of(example))(event)


def test_the_incidents_riskstream_emits_match_the_incident_schema() -> None:
    results = run_demo(seed=3, out=io.StringIO())
    incidents: list[dict[str, Any]] = [i for r in results for i in r.incidents]
    assert {i["type"] for i in incidents} >= {"fairness", "sensor-drift", "upstream-failure"}
    for incident in incidents:
        reference("incident").validate(incident)
        validator_for("incident")(incident)
