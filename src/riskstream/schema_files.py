"""Check a file of events against the contracts in ``schemas/`` before it reaches Kafka.

A producer team wants to know, before its first deploy, which of its events the
processor would dead-letter and why.  The file is one JSON document (an event or
a list of them) or JSON lines; each event is checked by the same compiled
validators the processor runs, against the schema named or, when none is, the
one its keys point to.  Replay records (``{"topic", "key", "value"}``) are
checked by their value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from riskstream.errors import SchemaError
from riskstream.validation import validator_for

__all__ = ["SCHEMA_NAMES", "Checked", "check_text", "guess_schema"]

SCHEMA_NAMES = (
    "inference-event", "sensor-event", "label-event", "change-event", "incident", "routing-change",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Checked:
    """One event's verdict; ``where`` is ``line N`` (JSON lines) or ``item N`` (a list)."""

    where: str
    schema: str | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def guess_schema(event: Any) -> str | None:
    """The schema an event's keys point to, or ``None`` when they point nowhere.

    >>> guess_schema({"event_id": "e", "sensor_id": "t-1", "value": 20.5})
    'sensor-event'
    >>> guess_schema({"prediction_id": "p", "model_id": "m", "label": "benign"})
    'label-event'
    >>> guess_schema({"hello": "world"}) is None
    True
    """
    if not isinstance(event, Mapping):
        return None
    keys = set(event)
    if keys & {"active_version", "traffic_fraction"}:  # before incident: it names one too
        return "routing-change"
    if "incident_id" in keys:
        return "incident"
    if "sensor_id" in keys:
        return "sensor-event"
    if "label" in keys and not keys & {"prediction", "features"}:
        return "label-event"
    if keys & {"prediction_id", "prediction", "features", "model_version", "model_id"}:
        return "inference-event"
    if keys & {"kind", "subject"}:
        return "change-event"
    return None


def _events(text: str) -> Iterator[tuple[str, Any]]:
    """(where, event or the reason it is not JSON) for every event of the file."""
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None  # JSON lines, or broken: read line by line to say which line
    else:
        if isinstance(whole, list):
            yield from ((f"item {n}", event) for n, event in enumerate(whole, 1))
        else:
            yield "line 1", whole
        return
    # Lines end at "\n" only, as in JSON lines and as replay and Kafka tools read them:
    # str.splitlines also splits at U+2028, U+0085 and the like, which a JSON string may
    # hold as they are, so a valid event was cut in two and every line after misnumbered.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield f"line {n}", orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield f"line {n}", ValueError(f"not JSON: {exc}")


def _unwrap(event: Any) -> Any:
    if isinstance(event, Mapping) and {"topic", "value"} <= set(event):
        return event["value"]
    return event


def check_text(
    text: str,
    schema: str | None = None,
    validator: Callable[[str], Callable[[Any], None]] = validator_for,
) -> list[Checked]:
    """Every event's verdict, in file order."""
    out = []
    for where, event in _events(text):
        if isinstance(event, ValueError):
            out.append(Checked(where, schema, str(event)))
            continue
        event = _unwrap(event)
        name = schema or guess_schema(event)
        if name is None:
            out.append(Checked(where, None, "cannot tell which event this is: pass --schema"))
            continue
        try:
            validator(name)(event)
        except SchemaError as exc:
            out.append(Checked(where, name, str(exc)))
        else:
            out.append(Checked(where, name))
    return out
