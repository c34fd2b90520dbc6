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
from collections.abc import Callable, Mapping
from typing import Any

from riskstream.config.environment import schema_dir
from riskstream.core.incident_checks import incident_problem
from riskstream.errors import SchemaError
from riskstream.ports import IncidentStore
from riskstream.validation import SCHEMA_DIR, compile_schema, load_schema

__all__ = ["incident_rejection", "unconfirmed_resolution"]


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


def unconfirmed_resolution(incident: Mapping[str, Any], records: IncidentStore) -> str | None:
    """Why a "resolved" on the topic is not to be believed, or ``None``.

    A person's resolve records it before it is published (``OperatorService.resolve``),
    so a "resolved" for an incident whose record is open was written by someone else:
    acted on, it would revert the incident's containment and close its pages.  An
    incident with no record (the store was reset, or it never reached containment) is
    believed, as before.  Raises StateStoreError when the store cannot answer."""
    if incident.get("status") != "resolved":
        return None
    record = records.get(str(incident["incident_id"]))
    if record is None or record.status == "resolved":
        return None
    return (
        f"incident {incident['incident_id']!r} is resolved on the topic but open in its "
        "record; resolve it with `riskstream incidents resolve` or the API"
    )


@functools.cache
def _incident_validator() -> Callable[[Any], None]:
    """The incident schema, less the keys ``evidence`` itself must hold (detectors
    and people's tools write what they have; what is there is type-checked)."""
    schema = copy.deepcopy(load_schema(schema_dir(SCHEMA_DIR) / "incident.schema.json"))
    schema["properties"]["evidence"].pop("required", None)
    return compile_schema(schema)
