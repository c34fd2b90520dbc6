"""The routes under ``/api/v1``: parse the request, call OperatorService, shape the answer.

Nothing here decides anything about incidents, actions or flags; every rule
(who may approve, what a flag may say, what "already decided" means) lives in
the service and the core, and their errors become HTTP answers in ``errors``.
Each route names the least role it needs (``None``: no token).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from riskstream import __version__
from riskstream.api.context import API, WRITE_PROBE, principal
from riskstream.api.errors import ApiError
from riskstream.api.views import (
    action_view,
    audit_view,
    flag_view,
    incident_view,
    monitor_view,
    summary,
)
from riskstream.core.incident_records import IncidentFilter, IncidentRecord
from riskstream.core.reports import FORMATS, KINDS
from riskstream.errors import RiskstreamError

__all__ = ["CURSOR_PATTERN", "DEFAULT_LIMIT", "ROUTES", "Route", "json_response"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEFAULT_LIMIT = 100  # items per page of every list route, unless `limit` says otherwise
MAX_LIMIT = 1000
PUBLISH_FAILED_S = 60.0  # the health check says degraded this long after a failed publish
CURSOR_LONGEST = 256  # the longest id (incident, action, model) a page can end on
_CONTROL = "\\u0000-\\u001F\\u007F-\\u009F"  # what no cursor holds
CURSOR_PATTERN = f"^[^{_CONTROL}]*$"  # as schemas/openapi.yaml says
_NOT_IN_CURSOR = re.compile(f"[{_CONTROL}]")
_Fields = Mapping[str, type | tuple[type, ...]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: method and path, its handler, and the least role that may call it."""

    method: str
    path: str
    handler: Handler
    role: str | None  # the least role allowed; None: open (health, the spec)
    doing: str  # for the 403 message: "<doing> needs the <role> role"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


# -- request parsing ------------------------------------------------------------------


def _query(request: web.Request, known: tuple[str, ...]) -> dict[str, str]:
    """The query's parameters; an unknown or repeated one is refused (it is a typo), and
    so is an empty one: ``?limit=`` or ``?status=`` is a client that lost its value, and
    taking it for the default (100; pending actions only) would hide that."""
    for name in request.query:
        if name not in known:
            raise ApiError(
                400, "bad_request",
                f"unknown query parameter {name!r}; this route knows: {', '.join(known)}",
            )  # fmt: skip
        if len(request.query.getall(name)) > 1:
            raise ApiError(400, "bad_request", f"query parameter {name!r} is given twice")
        if request.query[name] == "":
            raise ApiError(
                400, "bad_request",
                f"query parameter {name!r} is empty: give it a value, or leave it out "
                "for its default",
            )  # fmt: skip
    return dict(request.query)


def _after(params: Mapping[str, str]) -> str | None:
    """The page cursor: the ``next`` of a previous page, so an id (at most 256
    characters, no control characters; CURSOR_PATTERN)."""
    after = params.get("after")
    if after is not None and (len(after) > CURSOR_LONGEST or _NOT_IN_CURSOR.search(after)):
        raise ApiError(
            400, "bad_request",
            f"after {after[:80]!r} is no cursor: give the `next` of the previous page (an "
            f"id of at most {CURSOR_LONGEST} characters, no control characters), or leave "
            "it out for the first page",
        )  # fmt: skip
    return after


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    # int() also takes "1_0", " 10", "+10" and other scripts' digits: the contract's
    # integer is ASCII digits
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else low - 1
    if not low <= value <= high:
        raise ApiError(
            400, "bad_request", f"{name} must be a whole number {low}-{high}, not {raw!r}"
        )
    return value


def _bool(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiError(400, "bad_request", f"{name} must be true or false, not {raw!r}")
    return raw == "true"


async def _body(request: web.Request, fields: _Fields, required: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object sent, checked against the fields the route takes."""
    data: Any = {}
    if request.can_read_body:
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:  # its message says what and where
            raise ApiError(
                400, "bad_request", f"the body is not valid JSON ({exc}); send a JSON object"
            ) from None
        except web.RequestPayloadError:  # e.g. Content-Encoding: gzip on a plain body
            raise ApiError(
                400,
                "bad_request",
                "the body cannot be read as its Content-Encoding says; send plain JSON",
            ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    for key, value in data.items():
        if key not in fields:
            raise ApiError(
                400, "bad_request", f"unknown field {key!r}; this route takes: {', '.join(fields)}"
            )
        wanted = fields[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, wanted)):
            kind = "a number" if wanted == (int, float) else "a string"
            raise ApiError(400, "bad_request", f"{key} must be {kind}, not {value!r}")
    for key in required:
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ApiError(400, "bad_request", f"{key!r} is required: say why, for the audit trail")
    return data


_NOTE: _Fields = {"note": str}
_FLAG: _Fields = {"version": str, "mode": str, "traffic_fraction": (int, float), "reason": str}


# -- handlers ---------------------------------------------------------------------------


async def health(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    try:
        await api.read(api.ops.ping)
    except RiskstreamError as exc:
        log.warning("health check: the store does not answer: %s", exc)
        return json_response(
            {"status": "unavailable", "redis": "not answering", "version": __version__,
             "message": "Redis does not answer; the API's log says why"},
            status=503,
        )  # fmt: skip
    probe = request.app.get(WRITE_PROBE)
    if probe is not None:
        try:
            await api.read(probe)
        except RiskstreamError as exc:
            log.warning("health check: Redis refuses writes: %s", exc)
            return json_response(
                {"status": "degraded", "redis": "refuses writes", "version": __version__,
                 "message": "Redis answers but refuses writes (at maxmemory?): approvals, "
                            "acknowledgements and flag changes fail; the API's log says why"},
                status=503,
            )  # fmt: skip
    failed = api.publish_failed
    if failed is not None and time.monotonic() - failed[0] < PUBLISH_FAILED_S:
        log.warning("health check: a write's event was not published: %s", failed[1])
        return json_response(
            {"status": "degraded", "redis": "ok", "kafka": "did not take a publish",
             "version": __version__,
             "message": f"{time.monotonic() - failed[0]:.0f} s ago the broker did not take "
                        "a write's event: what was written stands, but subscribers were not "
                        "told; the API's log says why"},
            status=503,
        )  # fmt: skip
    return json_response({"status": "ok", "redis": "ok", "version": __version__})


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[API].spec, content_type="application/json")


async def me(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    return json_response({"name": who.name, "role": who.role})


async def list_incidents(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    q = _query(
        request,
        ("status", "min_severity", "subject", "type", "monitor", "acknowledged", "limit", "after"),
    )
    where = IncidentFilter(
        status=q.get("status"), min_severity=q.get("min_severity"), subject=q.get("subject"),
        type=q.get("type"), monitor=q.get("monitor"), acknowledged=_bool(q, "acknowledged"),
    )  # fmt: skip
    page = await api.read(api.ops.incident_page, where, _limit(q), _after(q))
    return json_response({"incidents": [summary(r) for r in page.items], "next": page.next})


def _limit(q: Mapping[str, str]) -> int:
    return _int(q, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


async def _incident(request: web.Request, record: IncidentRecord) -> web.StreamResponse:
    api = request.app[API]
    actions = await api.read(api.ops.actions, None, record.incident_id)
    story = await api.read(api.ops.story_of, record)
    return json_response(incident_view(record, actions, story))


async def get_incident(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    _query(request, ())
    record = await api.read(api.ops.incident, request.match_info["incident_id"])
    return await _incident(request, record)


async def report(request: web.Request) -> web.StreamResponse:
    """A regulator's draft or a post-mortem, as Markdown (to read) or JSON (for tools)."""
    api = request.app[API]
    q = _query(request, ("kind", "format"))
    kind, fmt = q.get("kind", "art73"), q.get("format", "md")
    if kind not in KINDS or fmt not in FORMATS:
        raise ApiError(
            400, "bad_request",
            f"kind must be one of {', '.join(KINDS)} and format one of {', '.join(FORMATS)}",
        )  # fmt: skip
    text = await api.read(
        api.ops.report, request.match_info["incident_id"], kind, fmt, api.reporting
    )
    content_type = "application/json" if fmt == "json" else "text/markdown"
    return web.Response(text=text, content_type=content_type, charset="utf-8")


async def acknowledge(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    body = await _body(request, _NOTE, ())
    record = await api.write(
        api.ops.acknowledge,
        request.match_info["incident_id"], principal(request).name, body.get("note") or "",
    )  # fmt: skip
    return await _incident(request, record)


async def resolve(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    body = await _body(request, _NOTE, ())
    record = await api.write(
        api.ops.resolve,
        request.match_info["incident_id"], principal(request).name, body.get("note") or "",
    )  # fmt: skip
    return await _incident(request, record)


async def list_actions(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    q = _query(request, ("status", "incident_id", "limit", "after"))
    status = q.get("status", "pending")
    page = await api.read(
        api.ops.action_page, None if status == "all" else status, q.get("incident_id"),
        _limit(q), _after(q),
    )  # fmt: skip
    return json_response({"actions": [action_view(a) for a in page.items], "next": page.next})


async def action_members(request: web.Request) -> web.StreamResponse:
    """The incidents a grouped (incident-storm) action holds, a page at a time."""
    api = request.app[API]
    q = _query(request, ("limit", "after"))
    page = await api.read(
        api.ops.member_page, request.match_info["action_id"], _limit(q), _after(q)
    )
    return json_response({"members": [m.to_data() for m in page.items], "next": page.next})


async def get_action(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    _query(request, ())
    return json_response(
        action_view(await api.read(api.ops.action, request.match_info["action_id"]))
    )


async def _decide(request: web.Request, approve: bool) -> web.StreamResponse:
    api = request.app[API]
    action_id = request.match_info["action_id"]
    body = await _body(request, _NOTE, ())
    await api.write(
        api.ops.decide, action_id, approve, principal(request).name, body.get("note") or ""
    )
    return json_response(action_view(await api.read(api.ops.action, action_id)))


async def approve(request: web.Request) -> web.StreamResponse:
    return await _decide(request, True)


async def reject(request: web.Request) -> web.StreamResponse:
    return await _decide(request, False)


async def list_flags(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    q = _query(request, ("limit", "after"))
    page = await api.read(api.ops.flag_page, _limit(q), _after(q))
    return json_response({"flags": [flag_view(f) for f in page.items], "next": page.next})


async def get_flag(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    _query(request, ())
    return json_response(flag_view(await api.read(api.ops.flag, request.match_info["model_id"])))


async def put_flag(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    body = await _body(request, _FLAG, ("reason",))
    fraction = body.get("traffic_fraction")
    flag = await api.write(
        api.ops.set_flag, request.match_info["model_id"], principal(request).name,
        body["reason"], version=body.get("version"), mode=body.get("mode"),
        traffic_fraction=None if fraction is None else float(fraction),
        approver=principal(request).may("approver"),
    )  # fmt: skip
    return json_response(flag_view(flag))


async def monitors(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    _query(request, ())
    return json_response({"monitors": [monitor_view(m) for m in api.monitors]})


async def audit(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    q = _query(request, ("start", "limit"))
    start = _int(q, "start", 0, 0, 2**62)
    entries = await api.read(api.ops.audit, start, _int(q, "limit", 100, 1, 1000))
    return json_response(
        {"entries": [audit_view(e) for e in entries],
         "next_start": entries[-1].seq if entries else start}
    )  # fmt: skip


async def verify_audit(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    _query(request, ())
    report = await api.read(api.ops.verify_audit)
    return json_response({"ok": report.ok, "length": report.length, "problem": report.problem})


_V1 = "/api/v1"
ROUTES = (
    Route("GET", f"{_V1}/health", health, None, "the health check"),
    Route("GET", f"{_V1}/openapi.json", openapi, None, "the API description"),
    Route("GET", f"{_V1}/me", me, "viewer", "reading"),
    Route("GET", f"{_V1}/incidents", list_incidents, "viewer", "reading"),
    Route("GET", f"{_V1}/incidents/{{incident_id}}", get_incident, "viewer", "reading"),
    Route("GET", f"{_V1}/incidents/{{incident_id}}/report", report, "viewer", "reading"),
    Route("POST", f"{_V1}/incidents/{{incident_id}}/acknowledge", acknowledge, "operator",
          "acknowledging an incident"),
    Route("POST", f"{_V1}/incidents/{{incident_id}}/resolve", resolve, "operator",
          "resolving an incident"),
    Route("GET", f"{_V1}/actions", list_actions, "viewer", "reading"),
    Route("GET", f"{_V1}/actions/{{action_id}}", get_action, "viewer", "reading"),
    Route("GET", f"{_V1}/actions/{{action_id}}/members", action_members, "viewer", "reading"),
    Route("POST", f"{_V1}/actions/{{action_id}}/approve", approve, "approver",
          "approving an action"),
    Route("POST", f"{_V1}/actions/{{action_id}}/reject", reject, "approver",
          "rejecting an action"),
    Route("GET", f"{_V1}/flags", list_flags, "viewer", "reading"),
    Route("GET", f"{_V1}/flags/{{model_id}}", get_flag, "viewer", "reading"),
    Route("PUT", f"{_V1}/flags/{{model_id}}", put_flag, "operator", "overriding a routing flag"),
    Route("GET", f"{_V1}/monitors", monitors, "viewer", "reading"),
    Route("GET", f"{_V1}/audit", audit, "viewer", "reading"),
    Route("GET", f"{_V1}/audit/verify", verify_audit, "viewer", "reading"),
)  # fmt: skip
