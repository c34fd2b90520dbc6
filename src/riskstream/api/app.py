"""The operator API and web console as one aiohttp application.

Three layers wrap every request, outermost first: metrics and the access log
(which see the final status, 500s included); errors (our exceptions become JSON
answers, anything else a bare 500 whose traceback stays in the log); the token
check (a route's least role, from ``routes.ROUTES``).  The console is static
files served from the package, so it works with no network but this API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from riskstream.api.auth import TokenTable
from riskstream.api.context import API, WRITE_PROBE, Api, caller, caller_scope, set_caller
from riskstream.api.errors import ApiError, from_exception
from riskstream.api.routes import ROUTES, Route, json_response
from riskstream.api.spec import load_spec
from riskstream.config import Config
from riskstream.logs import escape_logs
from riskstream.metrics import ApiMetrics
from riskstream.services.operations import OperatorService

__all__ = ["build_app", "console_dir", "serve"]

log = logging.getLogger("riskstream.api")

_ROLE_OF = web.AppKey("riskstream_roles", dict[tuple[str, str], Route])
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def console_dir() -> Path:
    return Path(str(resources.files("riskstream").joinpath("console")))


def build_app(
    ops: OperatorService,
    config: Config,
    tokens: TokenTable,
    metrics: ApiMetrics,
    spec: bytes | None = None,
    write_probe: Callable[[], None] | None = None,
) -> web.Application:
    """The API over ``ops``, the console at ``/``; ``spec`` defaults to schemas/openapi.yaml.

    Log messages are escaped from here on (a request path is the caller's text).
    ``write_probe``: one small write, so ``/health`` says degraded when Redis refuses
    writes (at maxmemory) while it still answers reads.
    """
    escape_logs()
    app = web.Application(
        middlewares=[_measured, _errors, _authenticated], client_max_size=64 * 1024
    )
    app[API] = Api(ops, config.monitors, tokens, metrics, spec or load_spec(), config.reporting)
    app[_ROLE_OF] = {}
    if write_probe is not None:
        app[WRITE_PROBE] = write_probe
    for route in ROUTES:
        # A model id may hold "/" ("team/bot"): its segment takes the rest of the path,
        # so /flags/team/bot and /flags/team%2Fbot both name it (no route lies below).
        # A newline too (?s): `.` alone left /flags/bot-7%0A unrouted, a 404 where the
        # override's check answers 400 naming the id, as for any other bad id.
        resource = app.router.add_resource(route.path.replace("{model_id}", "{model_id:(?s:.+)}"))
        resource.add_route(route.method, route.handler)
        app[_ROLE_OF][(route.method, resource.canonical)] = route
    static = console_dir()
    app.router.add_get("/", _index(static / "index.html"))
    app.router.add_static("/static/", static, show_index=False, follow_symlinks=False)
    app.on_response_prepare.append(_headers)
    app.on_cleanup.append(_close)
    return app


def _index(path: Path) -> Handler:
    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path)

    return index


async def _close(app: web.Application) -> None:
    app[API].close()


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


def _route_label(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    with caller_scope():
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            _observe(request, status, time.perf_counter() - started)


def _observe(request: web.Request, status: int, elapsed: float) -> None:
    """Count and log one answered request, naming the caller but never their token."""
    metrics = request.app[API].metrics
    route = _route_label(request)
    metrics.requests.labels(route, request.method, str(status)).inc()
    metrics.latency.labels(route, request.method).observe(elapsed)
    who = caller()
    log.info(
        "%s %s %s %d %.1f ms", who.name if who else "-", request.method, request.path,
        status, elapsed * 1000,
    )  # fmt: skip


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:  # aiohttp's own: no such route, wrong method, too large
        if exc.status < 400:
            raise
        message = {
            404: f"no such page or route: {request.path}; the API lives under /api/v1 "
            "(see /api/v1/openapi.json)",
            405: f"{request.method} is not allowed on {request.path}",
            413: "the body is too large (64 KiB at most)",
        }.get(exc.status, exc.reason)
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        code = codes.get(exc.status, "bad_request")
        return _refusal(ApiError(exc.status, code, message), exc.headers.get("Allow"))
    except Exception as exc:
        refusal = from_exception(exc)
        if refusal is None:
            log.exception("%s %s failed", request.method, request.path)
            refusal = ApiError(
                500, "internal", "the API failed unexpectedly; its log has the details"
            )
        elif refusal.status >= 500:
            log.error("%s %s: %s", request.method, request.path, refusal.message)
        return _refusal(refusal)


def _refusal(error: ApiError, allow: str | None = None) -> web.Response:
    response = json_response({"error": error.code, "message": error.message}, error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="riskstream"'
    if allow:
        response.headers["Allow"] = allow
    return response


@web.middleware
async def _authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    if request.match_info.http_exception is not None or resource is None:
        return await handler(request)
    route = request.app[_ROLE_OF].get((request.method, resource.canonical))
    if route is None or route.role is None:  # the console's files, health, the spec
        return await handler(request)
    api, client = request.app[API], request.remote or "unknown"
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    who = None
    if scheme.lower() == "bearer" and token.strip():
        who = api.tokens.authenticate(token.strip())
    # A locked-out client is refused only its bad tokens: behind a proxy every user is
    # one client, and anyone could otherwise lock all of them out with ten guesses.
    wait = api.logins.retry_after(client) if who is None else 0.0
    if wait > 0:
        api.metrics.auth_refused.inc()
        raise ApiError(
            429, "too_many_requests",
            f"too many requests with a bad token from {client}; try again in "
            f"{math.ceil(wait)} s with a valid token",
            retry_after=math.ceil(wait),
        )  # fmt: skip
    if who is None:
        api.logins.failed(client)
        api.metrics.auth_failures.inc()
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized",
            "send your token as the header `Authorization: Bearer <token>`; "
            "ask your riskstream admin for one (they create it with `riskstream api-token`)",
        )  # fmt: skip
    if who is None:
        raise ApiError(
            401, "unauthorized",
            "this token is not in the API's tokens file (mistyped, or revoked); "
            "ask your riskstream admin for a new one",
        )  # fmt: skip
    api.logins.succeeded(client)
    set_caller(who)
    if not who.may(route.role):
        raise ApiError(
            403, "forbidden",
            f"{route.doing} needs the {route.role} role; {who.name} is {_a(who.role)}. "
            f"Ask {_a(route.role)} to do it, or your riskstream admin for a token with "
            "that role.",
        )  # fmt: skip
    return await handler(request)


def _a(role: str) -> str:
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}"


async def serve(
    app: web.Application, host: str, port: int, ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT; ``ready`` gets the URL once the socket listens."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        log.info("api listening on %s/api/v1, console at %s/", url, url)
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
