"""Event validation compiled from the JSON Schemas in ``schemas/``.

The schema files are the single source of truth for the event contracts, so the run-time
checks are generated from them, never re-typed.  A generic interpreter (jsonschema) costs
hundreds of µs per event and fastjsonschema has no draft 2020-12, so this module turns a
schema into the source of one straight-line Python function and compiles it once.

It implements the keywords our schemas use and refuses every other keyword, ``format``
or non-local ``$ref`` with ConfigError at compile time, so that a schema and its validator
can never silently disagree.  Where JSON and Python differ it follows JSON: ``true`` is not
a number, NaN and ±Infinity are not numbers, ``format: date-time`` is asserted (RFC 3339
and the calendar), a pattern's ``$`` is the end of input as in ECMA-262 (Python's also
matches before a final newline) and ``\\d``/``\\w`` are ASCII.

>>> check = compile_schema({"properties": {"n": {"type": "integer", "minimum": 0}}})
>>> check({"n": 3})
>>> check({"n": -1})
Traceback (most recent call last):
...
riskstream.errors.SchemaError: $.n: must be >= 0, got -1
"""

from __future__ import annotations

import calendar
import functools
import itertools
import json
import linecache
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from riskstream.config import environment
from riskstream.errors import ConfigError, SchemaError

__all__ = ["DRAFT", "SCHEMA_DIR", "compile_schema", "load_schema", "validator_for"]

_PACKAGED = Path(__file__).resolve().parent / "_schemas"  # in a built wheel (setup.py)
SCHEMA_DIR = (
    _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent.parent / "schemas"
)
"""The contracts: shipped in the package (``riskstream/_schemas``, copied from the repo's
``schemas/`` when the wheel is built), else the repo's ``schemas/`` (an editable install);
``RISKSTREAM_SCHEMA_DIR``, read when a schema is loaded, points elsewhere."""
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_NUMBER_KW = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_STRING_KW = ("minLength", "maxLength", "format", "pattern")
_OBJECT_KW = ("maxProperties", "minProperties", "required", "properties", "propertyNames",
              "additionalProperties")  # fmt: skip
_ARRAY_KW = ("maxItems", "minItems", "items")
_OTHER_KW = ("$ref", "type", "enum", "const", "anyOf")
_IGNORED = ("$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples")
_KEYWORDS = frozenset(_IGNORED + _NUMBER_KW + _STRING_KW + _OBJECT_KW + _ARRAY_KW + _OTHER_KW)
_BOUNDS = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}
_NOT = {"<": ">=", ">": "<=", "<=": ">", ">=": "<"}
_UNITS = {"Length": "characters", "Items": "items", "Properties": "properties"}
# How generated code recognises each JSON type ({v} is the variable): bool is not a
# number, NaN/Infinity are not (x - x == 0 just when x is finite), 1.0 is an integer.
_TYPE_TEST = {
    "null": "{v} is None",
    "boolean": "isinstance({v}, bool)",
    "string": "isinstance({v}, str)",
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "number": "(isinstance({v}, float) and {v} - {v} == 0.0 or"
    " isinstance({v}, int) and not isinstance({v}, bool))",
    "integer": "(isinstance({v}, int) and not isinstance({v}, bool) or"
    " isinstance({v}, float) and {v}.is_integer())",
}
# The same on exact types (what JSON decoders produce), twice as fast; the type check
# falls back to _TYPE_TEST only when this fails, so subclasses (numpy floats) still pass.
_FAST_TEST = {
    "null": "{v} is None",
    "boolean": "{t} is bool",
    "string": "{t} is str",
    "object": "{t} is dict",
    "array": "{t} is list",
    "number": "{t} is int or {t} is float and {v} - {v} == 0.0",
    "integer": "{t} is int or {t} is float and {v}.is_integer()",
}
_ALL_TYPES = frozenset(_TYPE_TEST)
# keyword group -> (the types it applies to, the guard when the type is not known)
_GROUPS = {
    _NUMBER_KW: (frozenset({"number", "integer"}), _TYPE_TEST["number"]),
    _STRING_KW: (frozenset({"string"}), _TYPE_TEST["string"]),
    _OBJECT_KW: (frozenset({"object"}), _TYPE_TEST["object"]),
    _ARRAY_KW: (frozenset({"array"}), _TYPE_TEST["array"]),
}
_DATETIME = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:"
    r"(?:[0-5][0-9]|60)(?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_SERIAL = itertools.count(1)


def _is_datetime(text: str) -> bool:
    """RFC 3339 §5.6 ``date-time``, plus the calendar check a regex cannot do."""
    if _DATETIME.fullmatch(text) is None:
        return False
    if text[8:10] <= "28":  # the common case needs no calendar
        return True
    month = int(text[5:7])
    leap = month == 2 and calendar.isleap(int(text[:4]))
    return int(text[8:10]) <= (29 if leap else _DAYS[month - 1])


def _jtype(value: Any) -> str:
    """The JSON name of a value's type, for ``expected X, got Y``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    names = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}
    names |= {list: "array", type(None): "null"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)


def _short(value: Any) -> str:
    """A bounded rendering of a scalar for messages: input can be absurdly large."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return repr(value) if isinstance(value, int | float) else _jtype(value)


def _seg(key: Any) -> str:
    """One path step for a key: ``.name`` when plain, ``['odd key']`` otherwise."""
    return "." + key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else f"[{_short(key)}]"


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality of scalars for enum/const: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _regex(pattern: Any, where: str) -> re.Pattern[str]:
    """Compile an ECMA-262 ``pattern``: ``$`` outside a class becomes ``\\Z``."""
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: must be a string")
    out, i, in_class = [], 0, False
    while i < len(pattern):
        step = pattern[i : i + 2] if pattern[i] == "\\" else pattern[i]
        in_class = (in_class or step == "[") and step != "]"
        out.append(r"\Z" if step == "$" and not in_class else step)
        i += len(step)
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as exc:
        raise ConfigError(f"{where}: bad pattern {pattern!r}: {exc}") from exc


@functools.cache
def _datetime_and(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """One regex for ``format: date-time`` and a ``pattern`` together (None when the
    pattern does not combine): it matches at the start just when the whole text is an
    RFC 3339 date-time (all but the calendar) and the pattern matches somewhere in it.

    A time field carries both, and checking them as one C call instead of two (and a
    Python function) is a tenth of the processor's schema validation.
    """
    try:
        return re.compile(rf"(?={_DATETIME.pattern}\Z)(?s:.*?)(?:{pattern.pattern})", pattern.flags)
    except re.error:  # inline global flags, say: keep the two checks apart
        return None


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: must be a non-negative integer")
    return value


class _Path:
    """Where a value sits, as Python source: a run-time part (map keys, array indexes)
    and static text after it, so that a message costs nothing until a check fails."""

    def __init__(self, code: str | None, text: str) -> None:
        self.code, self.text = code, text

    def key(self, name: str) -> _Path:
        return _Path(self.code, self.text + _seg(name))

    def dynamic(self, expr: str, text: str = "") -> _Path:
        return _Path(f"{self.render('')} + {expr}", text)

    def render(self, tail: str) -> str:
        lit = repr(self.text + tail)
        return lit if self.code is None else f"{self.code} + {lit}"


class _Compiler:
    """Emits the body of ``validate(x0)``, one keyword at a time."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root, self.count = root, 0
        self.lines: list[str] = []
        self.refs: list[str] = []  # the $refs being inlined, to refuse recursion
        self.ns: dict[str, Any] = {"_E": SchemaError, "_M": object()}
        self.ns |= {f.__name__: f for f in (_jtype, _seg, _short, _is_datetime, _json_equal)}

    def var(self, prefix: str, value: Any = None) -> str:
        """A fresh name; with a value, a constant the generated code can refer to."""
        self.count += 1
        if value is not None:
            self.ns[f"{prefix}{self.count}"] = value
        return f"{prefix}{self.count}"

    def emit(self, d: int, line: str) -> int:
        self.lines.append("    " * d + line)
        return len(self.lines)

    def close(self, mark: int) -> None:
        """Drop the block header emitted at ``mark`` if nothing was emitted under it."""
        if len(self.lines) == mark:
            del self.lines[mark - 1]

    def fail(self, d: int, path: _Path, msg: str, dynamic: str = "") -> None:
        self.emit(d, f"raise _E({path.render(': ' + msg)}{' + ' + dynamic if dynamic else ''})")

    def check(self, schema: Any, v: str, path: _Path, d: int, where: str) -> None:
        """Emit code at indent ``d`` that raises unless variable ``v`` matches ``schema``."""
        if schema is True or schema is False:
            return None if schema else self.fail(d, path, "no value is allowed here")
        if not isinstance(schema, Mapping):
            raise ConfigError(f"{where}: a schema must be an object or a boolean")
        if unknown := sorted(set(schema) - _KEYWORDS):
            raise ConfigError(f"{where}: unsupported keyword(s) {', '.join(unknown)}")
        if "$id" in schema and where != "#":
            raise ConfigError(f"{where}: $id is only supported at the root")
        if "$schema" in schema and str(schema["$schema"]).rstrip("#") != DRAFT:
            raise ConfigError(f"{where}: $schema must be {DRAFT}, got {schema['$schema']!r}")
        if "$ref" in schema:
            self.ref(schema["$ref"], v, path, d, where)
        types = self.types(schema, v, path, d, where)
        if "enum" in schema or "const" in schema:
            self.enum(schema, v, path, d, where)
        for group, (applies_to, guard) in _GROUPS.items():
            if types & applies_to and any(k in schema for k in group):
                inner = d if types <= applies_to else d + 1  # known type: no guard needed
                mark = self.emit(d, f"if {guard.format(v=v)}:") if inner > d else 0
                for kw in (k for k in group if k in schema):
                    self.keyword(kw, schema, v, path, inner, f"{where}/{kw}")
                if mark:
                    self.close(mark)
        if "anyOf" in schema:
            self.any_of(schema["anyOf"], v, path, d, f"{where}/anyOf")
        return None

    def ref(self, ref: Any, v: str, path: _Path, d: int, where: str) -> None:
        """Inline a local ``#/$defs/name``; anything else, or recursion, is refused."""
        name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ref
        if name == ref or name not in self.root.get("$defs", {}):
            raise ConfigError(f"{where}: $ref {ref!r} is not a local #/$defs/<name>")
        if ref in self.refs:
            raise ConfigError(f"{where}: recursive $ref {ref!r} is not supported")
        self.refs.append(ref)
        self.check(self.root["$defs"][name], v, path, d, ref)
        self.refs.pop()

    def types(
        self, s: Mapping[str, Any], v: str, path: _Path, d: int, where: str
    ) -> frozenset[str]:
        """Emit the ``type`` check; return the JSON types ``v`` can have after it."""
        if "type" not in s:
            return _ALL_TYPES
        names = [s["type"]] if isinstance(s["type"], str) else s["type"]
        if (
            not isinstance(names, list)
            or not names
            or not all(n in _TYPE_TEST for n in map(str, names))
        ):
            raise ConfigError(f"{where}/type: unknown type(s) {s['type']!r}")
        fast = " or ".join(_FAST_TEST[n] for n in sorted(names, key="null".__eq__))
        self.emit(d, f"if not ({fast.replace('{t}', '(t_ := type({v}))', 1).format(t='t_', v=v)}):")
        self.emit(d + 1, f"if not ({' or '.join(_TYPE_TEST[n].format(v=v) for n in names)}):")
        self.fail(d + 2, path, f"expected {' or '.join(names)}, got ", f"_jtype({v})")
        return frozenset(names) | ({"integer"} if "number" in names else set())

    def enum(self, s: Mapping[str, Any], v: str, path: _Path, d: int, where: str) -> None:
        values = s["enum"] if "enum" in s else [s["const"]]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}/enum: must be a non-empty array")
        if any(isinstance(x, list | dict) for x in values):
            raise ConfigError(f"{where}: only scalars are supported in enum and const")
        if all(isinstance(x, str) for x in values):  # the common case: a set lookup
            test = f"isinstance({v}, str) and {v} in {self.var('_enum', frozenset(values))}"
        else:
            test = f"any(_json_equal({v}, e) for e in {self.var('_enum', list(values))})"
        self.emit(d, f"if not ({test}):")
        shown = ", ".join(map(_short, values))[:200]
        self.fail(d + 1, path, f"expected one of {shown}; got ", f"_short({v})")

    def keyword(self, kw: str, s: Mapping[str, Any], v: str, path: _Path, d: int, at: str) -> None:
        """One keyword, for a value known to be of the type the keyword applies to."""
        arg = s[kw]
        if kw in _BOUNDS:
            if not isinstance(arg, int | float) or isinstance(arg, bool) or not math.isfinite(arg):
                raise ConfigError(f"{at}: must be a number")
            self.emit(d, f"if {v} {_BOUNDS[kw]} {arg!r}:")
            self.fail(d + 1, path, f"must be {_NOT[_BOUNDS[kw]]} {arg!r}, got ", f"_short({v})")
        elif kw[3:] in _UNITS:  # min and max together, so the hot path calls len() once
            lo, hi = s.get("min" + kw[3:]), s.get("max" + kw[3:])
            lo, hi = (None if n is None else _count(n, at) for n in (lo, hi))
            if kw.startswith("max") and lo is not None:
                return  # done with the min
            if lo is not None and hi is not None:
                test, says = f"not {lo} <= len({v}) <= {hi}", f"{lo} to {hi}"
            elif hi is None:
                test, says = f"len({v}) < {lo}", f"at least {lo}"
            else:
                test, says = f"len({v}) > {hi}", f"at most {hi}"
            self.emit(d, f"if {test}:")
            self.fail(d + 1, path, f"must have {says} {_UNITS[kw[3:]]}, got ", f"str(len({v}))")
        elif kw == "format":
            if arg != "date-time":
                raise ConfigError(f"{at}: unsupported format {arg!r} (only date-time)")
            both = None
            if "pattern" in s:
                pattern = _regex(s["pattern"], at.rsplit("/", 1)[0] + "/pattern")
                both = _datetime_and(pattern)
            if both is not None:  # the usual case in one regex; the checks below say why not
                self.emit(d, f"if {self.var('_both', both)}.match({v}) is None or (")
                self.emit(d + 1, f"{v}[8:10] > '28' and not _is_datetime({v})):")
                d += 1
            self.emit(d, f"if not _is_datetime({v}):")
            self.fail(d + 1, path, "expected an RFC 3339 date-time, got ", f"_short({v})")
            if both is not None:
                self.pattern(s["pattern"], v, path, d, at)
        elif kw == "pattern":
            if s.get("format") == "date-time" and _datetime_and(_regex(arg, at)) is not None:
                return  # checked with the format, in one regex
            self.pattern(arg, v, path, d, at)
        elif kw == "required":
            if not isinstance(arg, list) or not all(isinstance(k, str) for k in arg):
                raise ConfigError(f"{at}: must be an array of strings")
            for key in arg:
                self.emit(d, f"if {key!r} not in {v}:")
                self.fail(d + 1, path, f"missing required property {key!r}")
        elif kw == "properties":
            if not isinstance(arg, Mapping):
                raise ConfigError(f"{at}: must be an object")
            for key, sub in arg.items():
                x = self.var("x")
                if key in s.get("required", ()):  # present: `required` was checked above
                    self.emit(d, f"{x} = {v}[{key!r}]")
                    self.check(sub, x, path.key(key), d, f"{at}/{key}")
                else:
                    # `in` and a subscript, not .get(): no call, and none when it is absent
                    mark = self.emit(d, f"if {key!r} in {v}:")
                    self.emit(d + 1, f"{x} = {v}[{key!r}]")
                    self.check(sub, x, path.key(key), d + 1, f"{at}/{key}")
                    self.close(mark + 1)
                    self.close(mark)
        elif kw == "propertyNames" or (kw == "additionalProperties" and "propertyNames" not in s):
            self.each_property(s, v, path, d, at.rsplit("/", 1)[0])  # one loop serves both
        elif kw == "items":
            i, x = self.var("i"), self.var("x")
            mark = self.emit(d, f"for {i}, {x} in enumerate({v}):")
            self.check(arg, x, path.dynamic(f"f'[{{{i}}}]'"), d + 1, at)
            self.close(mark)

    def each_property(self, s: Mapping[str, Any], v: str, path: _Path, d: int, where: str) -> None:
        """propertyNames, and additionalProperties for keys not in properties."""
        k, x = self.var("k"), self.var("x")
        mark = self.emit(d, f"for {k}, {x} in {v}.items():")
        names_path = path.dynamic(f"_seg({k})", " (name)")
        self.check(s.get("propertyNames", True), k, names_path, d + 1, f"{where}/propertyNames")
        if "additionalProperties" in s:  # for the keys not in properties
            known = s.get("properties") and self.var("_known", frozenset(s["properties"]))
            inner = self.emit(d + 1, f"if {k} not in {known}:") if known else 0
            e, key_path = d + 1 + bool(inner), path.dynamic(f"_seg({k})")
            if (extra := s["additionalProperties"]) is False:  # a better message than the default
                self.fail(e, key_path, "unexpected property")
            else:
                self.check(extra, x, key_path, e, f"{where}/additionalProperties")
            if inner:
                self.close(inner)
        self.close(mark)

    def pattern(self, arg: Any, v: str, path: _Path, d: int, at: str) -> None:
        self.emit(d, f"if {self.var('_re', _regex(arg, at))}.search({v}) is None:")
        self.fail(d + 1, path, f"does not match pattern {arg!r}")

    def any_of(self, subs: Any, v: str, path: _Path, d: int, where: str) -> None:
        """Try each branch until one matches, keeping the reasons the others did not."""
        if not isinstance(subs, list) or not subs:
            raise ConfigError(f"{where}: must be a non-empty array")
        ok, why = self.var("ok"), self.var("why")
        self.emit(d, f"{ok}, {why} = False, []")
        for i, sub in enumerate(subs):
            self.emit(d, f"if not {ok}:")
            self.emit(d + 1, "try:")
            self.check(sub, v, path, d + 2, f"{where}/{i}")
            self.emit(d + 2, f"{ok} = True")
            self.emit(d + 1, "except _E as exc:")
            self.emit(d + 2, f"{why}.append(str(exc))")
        self.emit(d, f"if not {ok}:")
        self.fail(d + 1, path, "matches no anyOf branch: ", f"'; '.join({why})")


def compile_schema(schema: Mapping[str, Any]) -> Callable[[Any], None]:
    """A function that returns None for a valid instance and raises SchemaError otherwise.

    Raises ConfigError when the schema uses anything this compiler does not implement.
    """
    if not isinstance(schema, Mapping) or not isinstance(schema.get("$defs", {}), Mapping):
        raise ConfigError("a schema must be a JSON object, and its $defs too")
    comp = _Compiler(schema)
    for name, sub in schema.get("$defs", {}).items():  # refuse bad $defs even if unused
        comp.check(sub, "x0", _Path(None, "$"), 1, f"#/$defs/{name}")
    comp.lines.clear()
    comp.emit(0, "def validate(x0):")
    comp.check(schema, "x0", _Path(None, "$"), 1, "#")
    comp.emit(1, "return None")
    source = "\n".join(comp.lines) + "\n"
    filename = f"<riskstream schema {schema.get('$id', 'anonymous')} #{next(_SERIAL)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), comp.ns)  # schema text is in it only as repr()
    validate: Callable[[Any], None] = comp.ns["validate"]
    validate.__doc__ = f"Validate against {schema.get('title', filename)} (generated code)."
    return validate


def load_schema(path: str | Path) -> dict[str, Any]:
    """Parse a schema file; ConfigError names the file (and line) when it cannot."""
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read JSON schema: {exc}") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"{path}: a schema file must hold a JSON object")
    return schema


@functools.cache
def validator_for(name: str, schema_dir: str | Path | None = None) -> Callable[[Any], None]:
    """The compiled validator of ``<schema_dir>/<name>.schema.json``, built once per process."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name):
        raise ConfigError(f"schema name {name!r}: expected lower-case words like 'inference-event'")
    path = Path(schema_dir or environment.schema_dir(SCHEMA_DIR)) / f"{name}.schema.json"
    schema = load_schema(path)
    try:
        return compile_schema(schema)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
