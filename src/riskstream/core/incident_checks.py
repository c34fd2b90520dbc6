"""Is what came on the incidents topic an incident riskstream can act on?

Any producer with access can write to the incidents topic, and the containment
worker changes routing flags from what it reads there.  The full contract is
``schemas/incident.schema.json``; this checks the fields riskstream itself reads, so a
malformed or forged record is refused whole — before any flag moves — with a reason
a person can act on, instead of failing half-way through a playbook.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from riskstream.core.timeutil import parse_time

__all__ = ["incident_problem"]

_TEXT = ("type", "severity", "status", "subject", "monitor", "stream_key", "parent_id")
_TIMES = ("detected_at", "onset_at")
_STATUSES = ("open", "contained", "resolved")
_LONGEST_ID = 256


def incident_problem(data: Any) -> str | None:
    """What is wrong with ``data`` as an incident, or ``None`` (a ``null`` optional field
    counts as absent).

    >>> incident_problem({"incident_id": "i1", "detected_at": "2026-11-26T10:00:00Z"})
    >>> incident_problem([1])
    'expected a JSON object, got list'
    >>> incident_problem({"incident_id": "i1", "evidence": [1]})
    "field 'evidence' must be an object, got list"
    """
    if not isinstance(data, Mapping):
        return f"expected a JSON object, got {type(data).__name__}"
    incident_id = data.get("incident_id")
    if not isinstance(incident_id, str) or not incident_id.strip():
        return f"field 'incident_id' must be a non-empty string, got {incident_id!r}"
    if len(incident_id) > _LONGEST_ID:
        return f"field 'incident_id' has {len(incident_id)} characters; at most {_LONGEST_ID}"
    for name in _TEXT:
        if data.get(name) is not None and not isinstance(data[name], str):
            return f"field {name!r} must be a string, got {type(data[name]).__name__}"
    for name in ("incident_id", *_TEXT):  # what a flag, a log line, a page or a person reads
        if any(unicodedata.category(c) == "Cc" for c in data.get(name) or ""):
            return f"field {name!r} {data[name]!r} holds a control character"
    if data.get("status") is not None and data["status"] not in _STATUSES:
        return f"field 'status' {data['status']!r}: one of {', '.join(_STATUSES)}"
    for name in _TIMES:
        if name in data:
            problem = _time_problem(data[name])
            if problem:
                return f"field {name!r} {data[name]!r}: {problem}"
    for name in ("evidence", "blast_radius", "regulatory"):
        if data.get(name) is not None and not isinstance(data[name], Mapping):
            return f"field {name!r} must be an object, got {type(data[name]).__name__}"
    for name, item in (("suspected_changes", Mapping), ("children", str), ("actions", Mapping)):
        value = data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            kind = "objects" if item is Mapping else "strings"
            return f"field {name!r} must be a list of {kind}, got {value!r:.80}"
    return None


def _time_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected an RFC 3339 time as a string"
    try:
        parse_time(value)
    except (ValueError, OverflowError) as exc:
        return f"not an RFC 3339 time with an offset ({exc})"
    return None
