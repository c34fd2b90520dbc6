"""Routing flags as a flagd flag definition file, for services that are not Python.

flagd (and every OpenFeature SDK's in-process flagd provider) reads a JSON file
of flags (schema ``https://flagd.dev/schema/v0/flags.json``) and reloads it when
it changes.  :func:`flagd_document` turns the router's flags into that file, with
the same keys the OpenFeature provider answers (:mod:`riskstream.openfeature_provider`):
``MODEL.version``, ``MODEL.mode``, ``MODEL.incident_id`` (strings),
``MODEL.traffic_fraction``, ``MODEL.revision`` (numbers), ``MODEL.blocked``,
``MODEL.human_review`` (booleans) and ``MODEL`` (the whole decision, an object).
Each flag has one variant, riskstream's current decision, as its default; its
metadata carries the revision, the incident and the reason.

:func:`write_atomically` replaces the file in one rename, so flagd never reads
half a file; ``riskstream flags export --format flagd --watch`` keeps it in step.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from riskstream.core.routing import RoutingFlag
from riskstream.core.timeutil import format_time

__all__ = ["FLAGD_SCHEMA", "flagd_document", "write_atomically"]

FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"


def _flag(variant: str, value: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {variant: value},
        "defaultVariant": variant,
        "metadata": dict(metadata),
    }


def flagd_document(flags: Mapping[str, RoutingFlag], namespace: str) -> dict[str, Any]:
    """The flagd flag definition for ``flags`` (the router's, by model).

    >>> doc = flagd_document({"bot": RoutingFlag("bot", "v2", "blocked", revision=3)}, "prod")
    >>> doc["flags"]["bot.version"]["variants"], doc["flags"]["bot.blocked"]["defaultVariant"]
    ({'v2': 'v2'}, 'true')
    """
    out: dict[str, Any] = {}
    for model, f in sorted(flags.items()):
        meta: dict[str, Any] = {
            "revision": f.revision,
            "reason": f.reason,
            "actor": f.actor,
            "updated_at": format_time(f.updated_at),
        }
        if f.incident_id:
            meta["incident_id"] = f.incident_id
        decision = {
            "model_id": model, "version": f.active_version, "mode": f.mode,
            "traffic_fraction": f.traffic_fraction, "revision": f.revision,
            "incident_id": f.incident_id or "",
        }  # fmt: skip
        out[f"{model}.version"] = _flag(f.active_version, f.active_version, meta)
        out[f"{model}.mode"] = _flag(f.mode, f.mode, meta)
        out[f"{model}.incident_id"] = _flag("current", f.incident_id or "", meta)
        out[f"{model}.traffic_fraction"] = _flag("current", f.traffic_fraction, meta)
        out[f"{model}.revision"] = _flag("current", f.revision, meta)
        for key, on in (
            ("blocked", f.mode == "blocked"),
            ("human_review", f.mode == "human-review"),
        ):
            out[f"{model}.{key}"] = {
                **_flag("true" if on else "false", on, meta),
                "variants": {"true": True, "false": False},
            }
        out[model] = _flag("current", decision, meta)
    version = sum(f.revision for f in flags.values())
    return {
        "$schema": FLAGD_SCHEMA,
        "metadata": {"flagSetId": f"riskstream/{namespace}", "version": str(version)},
        "flags": out,
    }


def write_atomically(path: Path, document: Mapping[str, Any]) -> bool:
    """Write ``document`` to ``path`` in one rename; False (nothing written) if unchanged."""
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
