"""The compiled validators against jsonschema, the reference implementation.

The differential test mutates the schema examples thousands of times (seeded) and
requires the compiled validator to accept exactly what jsonschema accepts.  jsonschema
is configured for the three places where riskstream deliberately follows JSON rather
than Python (see ``riskstream.validation``): NaN/Infinity are not numbers, ``format:
date-time`` is asserted, and a pattern's ``$`` is the end of input (ECMA-262).
"""

from __future__ import annotations

import copy
import datetime
import json
import linecache
import math
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from riskstream.errors import ConfigError, SchemaError
from riskstream.validation import SCHEMA_DIR, compile_schema, load_schema, validator_for

NAMES = [
    "inference-event",
    "sensor-event",
    "label-event",
    "change-event",
    "incident",
    "routing-change",
]
PER_SCHEMA = 3000


# --- the reference: jsonschema, told about JSON's numbers, RFC 3339 and ECMA-262 ---

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-](\d\d):(\d\d))", re.ASCII
)


def rfc3339_date_time(value: object) -> bool:
    """RFC 3339 §5.6 written independently of the code under test."""
    if not isinstance(value, str) or (m := _RFC3339.fullmatch(value)) is None:
        return not isinstance(value, str)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if hour > 23 or minute > 59 or second > 60:
        return False
    if m[9] is not None and (int(m[9]) > 23 or int(m[10]) > 59):
        return False
    try:
        datetime.date(year or 2000, month, day)  # year 0000 is a leap year, like 2000
    except ValueError:
        return False
    return True


def _finite_number(checker: Any, value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _ecma_pattern(validator: Any, pattern: str, instance: object, schema: Any) -> Iterator[Any]:
    # Our schemas use `$` only as the final anchor (asserted below), so this is exact.
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(rfc3339_date_time)
Reference = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)


def reference(schema: dict[str, Any]) -> Callable[[object], bool]:
    return Reference(schema, format_checker=FORMATS).is_valid  # type: ignore[no-any-return]


def accepts(validate: Callable[[Any], None], value: object) -> bool:
    try:
        validate(value)
    except SchemaError:
        return False
    return True


def examples(name: str) -> list[Any]:
    return [
        json.loads(p.read_text()) for p in sorted((SCHEMA_DIR / "examples").glob(f"{name}.*.json"))
    ]


# --- mutations ---------------------------------------------------------------

JUNK: list[Any] = [
    True, False, None, 0, -1, 1, 1.0, 0.5, -0.0, 1.5, 2**70, 1e308, 86400001,
    math.nan, math.inf, -math.inf, "", "x", "x" * 129, "x" * 257, "x" * 5000, "0.91",
    [], [1, "a"], ["a1", "a2"], {}, {"a": {"b": [None, math.nan]}}, {"label": "x"},
    {"score": True}, {"count": 3, "mean": 1.5}, {"count": -1, "mean": 0},
    "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.250+05:30", "2026-02-30T10:00:00Z",
    "2024-02-29T23:59:59Z", "2026-11-26T10:00:00Z\n", "2026-11-26t10:00:00z",
    "2026-11-26T10:00:60Z", "2026-11-26 10:00:00Z", "2026-11-26T10:00:00", "0000-02-29T00:00:00Z",
    "2026-11-26T10:00:00.1234567890Z", "good", "bad", "deploy", "schema", "open", "critical",
    "fallback", "EUR", "eur", "EUR\n", "٣٣٣",
]  # fmt: skip
KEYS = ["extra", "label", "score", "mean", "count", "a b", "", "k" * 129, "prediction", "\n"]


def _slots(value: Any, path: str = "$") -> Iterator[tuple[Any, Any, str]]:
    """Every (container, key-or-index, rendered path) inside a JSON value."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        step = f"[{key}]" if isinstance(key, int) else f".{key}"
        yield value, key, path + step
        yield from _slots(child, path + step)


def junk(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(JUNK))


def mutate(rng: random.Random, event: Any) -> tuple[Any, str | None]:
    """1-3 random edits; returns the event and, for a single plain edit, where it was."""
    event = copy.deepcopy(event)
    edits = rng.choice([1, 1, 1, 2, 3])
    where = None
    for _ in range(edits):
        slots = list(_slots(event))
        op = rng.random()
        if op < 0.02 or not slots:
            return junk(rng), None
        container, key, path = rng.choice(slots)
        if op < 0.25 and isinstance(container, dict):
            del container[key]
            where = path.rsplit(".", 1)[0]
        elif op < 0.75:
            container[key] = junk(rng)
            where = path
        elif op < 0.85 and isinstance(container[key], dict):
            container[key] = {f"f{i}": 1 for i in range(rng.choice([33, 65, 513, 1001]))}
            where = path
        else:
            target = rng.choice([event, *(c for c, _, _ in slots if isinstance(c, dict))])
            if isinstance(target, dict):
                target[rng.choice(KEYS)] = junk(rng)
            where = None
    return event, where if edits == 1 else None


@pytest.mark.parametrize("name", NAMES)
def test_compiled_validator_agrees_with_jsonschema(name: str) -> None:
    schema = load_schema(SCHEMA_DIR / f"{name}.schema.json")
    for sub in _subschemas(schema):  # the premise of _ecma_pattern
        assert "$" not in sub.get("pattern", "$")[:-1], sub
    compiled, ref = validator_for(name), reference(schema)
    rng = random.Random(f"riskstream-{name}")
    seeds = examples(name)
    verdicts = {True: 0, False: 0}
    for n in range(PER_SCHEMA):
        event, where = mutate(rng, rng.choice(seeds))
        expected = ref(event)
        try:
            compiled(event)
        except SchemaError as exc:
            assert not expected, f"#{n}: compiled rejected a valid event: {exc}\n{event!r:.2000}"
            message = str(exc)
            assert message.startswith("$"), message
            assert len(message) < 2000, message[:300]
            at = message.split(": ", 1)[0]
            if where and re.fullmatch(r"\$(\.[A-Za-z_]\w{0,63}|\[\d+\])*", where):
                assert at.startswith(where) or where.startswith(at), (where, message)
        else:
            assert expected, f"#{n}: compiled accepted an invalid event:\n{event!r:.2000}"
        verdicts[expected] += 1
    assert min(verdicts.values()) > PER_SCHEMA // 20, verdicts  # both sides exercised


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _subschemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _subschemas(value)


# --- JSON semantics ------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        (
            {"type": "number"},
            [0, -1, 1.5, 2**70, -0.0],
            [True, False, None, "1", math.nan, math.inf],
        ),
        ({"type": "integer"}, [0, 2**70, 1.0, -3.0], [True, 1.5, "1", math.nan, math.inf, None]),
        ({"type": "boolean"}, [True, False], [0, 1, None, "true"]),
        ({"type": ["string", "null"]}, ["", None], [0, [], {}]),
        ({"enum": [1, "a", None]}, [1, 1.0, "a", None], [True, "1", 2, [1], {}]),
        ({"const": 1}, [1, 1.0], [True, "1", [1], {}]),
        ({"anyOf": [{"type": "string"}, {"maximum": 0}]}, ["a", -1, None], [1]),
        ({"anyOf": [False, {"type": "null"}]}, [None], [0, False]),
        ({"pattern": "^abc$"}, ["abc", 42], ["abc\n", "abcd", "xabc"]),
        ({"pattern": "^[0-9]+$"}, ["123"], ["١٢٣", ""]),
        ({"maxLength": 2, "minLength": 1}, ["ab", "é", 123], ["", "abc"]),
        ({"exclusiveMinimum": 0, "exclusiveMaximum": 1}, [0.5, "x"], [0, 1, -1]),
        (
            {"minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            [["a"]],
            [[], [1], ["a"] * 3],
        ),
        (
            {"properties": {"a": {}}, "additionalProperties": False},
            [{"a": None}, {}, 1],
            [{"b": 1}],
        ),
        ({"additionalProperties": {"type": "integer"}}, [{"a": 1}, {}], [{"a": "1"}]),
        ({"propertyNames": {"maxLength": 1}}, [{"a": 1}, "ab"], [{"ab": 1}]),
        ({"format": "date-time"}, ["2024-02-29T23:59:60z", 7], ["2023-02-29T00:00:00Z"]),
        ({"properties": {"a": True}}, [{"a": None}], []),
        ({"properties": {"a": False}}, [{}, {"b": 1}], [{"a": None}]),
    ],
)
def test_json_semantics_match_the_reference(
    schema: dict[str, Any], good: list[Any], bad: list[Any]
) -> None:
    ref, compiled = reference(schema), compile_schema(schema)
    for value in good:
        assert ref(value) and accepts(compiled, value), value
    for value in bad:
        assert not ref(value) and not accepts(compiled, value), value


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026-11-26T10:00:00.250Z", True),
        ("2026-11-26T10:00:00+01:00", True),
        ("2024-02-29T10:00:00-00:00", True),
        ("2026-02-29T10:00:00Z", False),
        ("2026-04-31T10:00:00Z", False),
        ("2026-13-01T10:00:00Z", False),
        ("2026-11-26T24:00:00Z", False),
        ("2026-11-26T10:00:00+24:00", False),
        ("2026-11-26T10:00:00", False),
        ("2026-11-26", False),
        ("2026-11-26T10:00:00.Z", False),
    ],
)
def test_date_time_format(text: str, valid: bool) -> None:
    compiled = compile_schema({"format": "date-time"})
    assert accepts(compiled, text) is valid is rfc3339_date_time(text)


TIMES = [
    "2026-11-26T10:00:00.250Z", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.123456789Z",
    "2026-11-26T10:00:00.1234567890Z", "2026-11-26T10:00:00+05:30", "2024-02-29T23:59:59Z",
    "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-04-30T00:00:00Z", "2026-12-31T23:59:59Z",
    "2026-11-26t10:00:00z", "2026-11-26T10:00:60Z", "2026-11-26T10:00:00.Z", "2026-11-26T10:00:00",
    "2026-11-26 10:00:00Z", "2026-11-26T10:00:00Z\n", "x2026-11-26T10:00:00Z", "", "2026",
    "2026-13-01T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T10:00:00+24:00",
    "0000-02-29T00:00:00Z", "١٢٣٤-11-26T10:00:00Z", "2026-11-26T10:00:00.250Z" + "0" * 5000,
]  # fmt: skip


@pytest.mark.parametrize(
    "pattern",
    [
        json.loads((SCHEMA_DIR / "sensor-event.schema.json").read_text())["$defs"]["timestamp"][
            "pattern"
        ],
        "Z$",  # unanchored: searched anywhere, as JSON Schema says
        "(?i)^2026",  # inline flags: cannot share the date-time regex, checked apart
        "^(2026)-\\d\\d-\\1",  # a back-reference: group numbers are kept
    ],
)
def test_date_time_with_a_pattern_is_one_regex_with_the_same_verdicts_and_messages(
    pattern: str,
) -> None:
    """The time fields carry ``format`` and ``pattern``; the compiled code checks both in
    one regex when it can, and a failure still gets the message the first failing
    keyword gives on its own (format first, as the schema lists them)."""
    schema = {"type": "string", "format": "date-time", "pattern": pattern}
    compiled, ref = compile_schema(schema), reference(schema)
    source = "".join(linecache.getlines(compiled.__code__.co_filename))
    assert ("_both" in source) is (not pattern.startswith("(?i)")), source
    fmt, pat = compile_schema({"format": "date-time"}), compile_schema({"pattern": pattern})
    for text in TIMES:
        expected = next(
            (str(e) for check in (fmt, pat) if (e := _error(check, text)) is not None), None
        )
        assert _error(compiled, text) == expected, text
        assert ref(text) is (expected is None), text


def _error(validate: Callable[[Any], None], value: object) -> str | None:
    try:
        validate(value)
    except SchemaError as exc:
        return str(exc)
    return None


# --- messages ----------------------------------------------------------------


def test_messages_name_the_path_and_the_problem() -> None:
    validate = validator_for("inference-event")
    event = examples("inference-event")[0]

    def message(edit: Callable[[dict[str, Any]], None]) -> str:
        bad = copy.deepcopy(event)
        edit(bad)
        with pytest.raises(SchemaError) as info:
            validate(bad)
        return str(info.value)

    assert message(lambda e: e["prediction"].update(score="0.9")) == (
        "$.prediction.score: expected number, got string"
    )
    assert message(lambda e: e["prediction"].update(score=math.nan)) == (
        "$.prediction.score: expected number, got NaN"
    )
    assert (
        message(lambda e: e.update(latency_ms=True)) == "$.latency_ms: expected number, got boolean"
    )
    assert message(lambda e: e.pop("time")) == "$: missing required property 'time'"
    assert message(lambda e: e["segment"].update({"age band": 65})) == (
        "$.segment['age band']: expected string, got integer"
    )
    long_key = message(lambda e: e["features"].update({"k" * 10_000: 1}))
    assert long_key.startswith("$.features['kkk") and "(name): must have 1 to 128" in long_key
    assert len(long_key) < 200
    assert message(lambda e: e.update(time="x" * 10_000)).startswith("$.time: expected an RFC 3339")
    assert message(lambda e: e.update(prediction={})).startswith("$.prediction: matches no anyOf")
    incident = {**examples("incident")[0], "children": ["a", 2]}
    with pytest.raises(SchemaError, match=r"^\$\.children\[1\]: expected string, got integer$"):
        validator_for("incident")(incident)


def test_messages_for_the_actions_array_carry_the_index() -> None:
    incident = copy.deepcopy(examples("incident")[1])
    incident["actions"].append({"kind": "notify", "status": "sent"})
    with pytest.raises(SchemaError, match=r"^\$\.actions\[1\]\.status: expected one of 'pending'"):
        validator_for("incident")(incident)


# --- compile time ------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "unevaluatedProperties": False},
        {"properties": {"a": {"not": {"type": "null"}}}},
        {"items": {"uniqueItems": True}},
        {"prefixItems": [{}]},
        {"items": [{"type": "string"}]},
        {"contains": {}},
        {"if": {}, "then": {}},
        {"dependentRequired": {"a": ["b"]}},
        {"oneOf": [{}]},
        {"allOf": [{}]},
        {"patternProperties": {"^x-": {}}},
        {"enum": [[1]]},
        {"exclusiveMaximum": float("inf")},
        {"format": "email"},
        {"$ref": "other.schema.json#/$defs/id"},
        {"$ref": "#/$defs/missing"},
        {"$ref": "#/$defs/node", "$defs": {"node": {"items": {"$ref": "#/$defs/node"}}}},
        {"$defs": {"unused": {"multipleOf": 2}}},
        {"$schema": "http://json-schema.org/draft-07/schema#"},
        {"$dynamicRef": "#meta"},
        {"pattern": "(unclosed"},
        {"maxLength": -1},
        {"minimum": "0"},
        {"type": "float"},
        {"type": [{"not": "a type"}]},
        {"required": "a"},
        {"enum": []},
        {"anyOf": []},
    ],
)
def test_unknown_keywords_and_bad_values_are_refused_at_compile_time(
    schema: dict[str, Any],
) -> None:
    with pytest.raises(ConfigError):
        compile_schema(schema)


def test_schema_text_cannot_inject_code() -> None:
    evil = "'] or __import__('os').system('false') or x['"
    validate = compile_schema({"required": [evil], "properties": {evil: {"const": evil}}})
    validate({evil: evil})
    with pytest.raises(SchemaError, match="missing required property"):
        validate({})
    with pytest.raises(SchemaError, match="expected one of"):
        validate({evil: "x"})


def test_validator_for_is_cached_and_takes_a_schema_dir(tmp_path: Path) -> None:
    assert validator_for("sensor-event") is validator_for("sensor-event")
    (tmp_path / "tiny.schema.json").write_text('{"type": "string"}')
    assert accepts(validator_for("tiny", tmp_path), "a")
    assert not accepts(validator_for("tiny", tmp_path), 1)
    with pytest.raises(ConfigError, match=r"missing\.schema\.json"):
        validator_for("missing", tmp_path)
    with pytest.raises(ConfigError):
        validator_for("../secrets")
    (tmp_path / "broken.schema.json").write_text('{"type": "string",\n "maxLength": }')
    with pytest.raises(ConfigError, match="line 2"):
        validator_for("broken", tmp_path)
    (tmp_path / "odd.schema.json").write_text('{"type": "string", "contentEncoding": "base64"}')
    with pytest.raises(ConfigError, match=r"odd\.schema\.json.*contentEncoding"):
        validator_for("odd", tmp_path)


def test_subclasses_of_json_types_take_the_slow_path() -> None:
    class Name(str):
        pass

    class Score(float):  # like numpy.float64
        pass

    validate = compile_schema(
        {"properties": {"n": {"type": "string", "maxLength": 3}, "s": {"type": "number"}}}
    )
    validate({"n": Name("abc"), "s": Score(0.5)})
    with pytest.raises(SchemaError, match="at most 3"):
        validate({"n": Name("abcd")})
    with pytest.raises(SchemaError, match=r"^\$\.s: expected number, got NaN$"):
        validate({"s": Score("nan")})
