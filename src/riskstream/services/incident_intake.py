"""Is a record of the incidents topic an incident?  One answer for every reader.

The containment worker and the notifier both read the incidents topic, which any
producer with access can write.  They must agree on what is an incident, or a record
one refuses is acted on by the other (a forged record with a time lacking its offset
paged people while containment refused it).  The containment worker owns the dead
letters of this topic: it dead-letters what this refuses, with the reason; the notifier
skips it, counts it and logs it, so each bad record lands on the dead-letter topic once.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from riskstream.config.environment import schema_dir
from riskstream.core.incident_checks import incident_problem
from riskstream.errors import SchemaError
from riskstream.validation import SCHEMA_DIR, compile_schema, load_schema

__all__ = ["incident_rejection"]


def incident_rejection(data: Any) -> str | None:
    """What is wrong with ``data`` (decoded JSON) as an incident, or ``None``:
    :func:`~riskstream.core.incident_checks.incident_problem`, then
    ``schemas/incident.schema.json`` less the keys ``evidence`` must hold."""
    problem = incident_problem(data)
    if problem is not None:
        return problem
    try:
        _incident_validator()(data)
    except SchemaError as exc:
        return str(exc)
    return None


@functools.cache
def _incident_validator() -> Callable[[Any], None]:
    """The incident schema, less the keys ``evidence`` itself must hold (detectors
    and people's tools write what they have; what is there is type-checked)."""
    schema = copy.deepcopy(load_schema(schema_dir(SCHEMA_DIR) / "incident.schema.json"))
    schema["properties"]["evidence"].pop("required", None)
    return compile_schema(schema)
