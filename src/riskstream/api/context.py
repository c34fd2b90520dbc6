"""What every handler needs: the service, the config's monitors, and a way to call them.

The service blocks (Redis and Kafka clients are synchronous), so calls run on a
small thread pool and the event loop keeps answering.  Writes also take one
lock: the containment service caches the audit trail as it reads it, and two
writers appending to that cache at once would each add the same entries.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from riskstream.api.auth import FailedLogins, Principal, TokenTable
from riskstream.core.monitors import MonitorSpec
from riskstream.core.reports.settings import ReportSettings
from riskstream.errors import BusError
from riskstream.metrics import ApiMetrics
from riskstream.services.operations import OperatorService

__all__ = ["API", "WRITE_PROBE", "Api", "caller", "caller_scope", "principal", "set_caller"]

T = TypeVar("T")


@dataclass
class Api:
    """What every request handler needs: the operator service, the monitors, the token
    table and metrics, and a thread pool so Redis and Kafka calls never block the loop."""

    ops: OperatorService
    monitors: tuple[MonitorSpec, ...]
    tokens: TokenTable
    metrics: ApiMetrics
    spec: bytes  # the OpenAPI document, as served
    reporting: ReportSettings = field(default_factory=ReportSettings)
    logins: FailedLogins = field(default_factory=FailedLogins)
    workers: int = 8
    _executor: ThreadPoolExecutor | None = field(default=None, init=False)
    _write_lock: asyncio.Lock | None = field(default=None, init=False)
    # The last write the broker did not take: (monotonic time, why), for the health check.
    publish_failed: tuple[float, str] | None = field(default=None, init=False)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="riskstream-api")
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            try:
                return await self.read(fn, *args, **kwargs)
            except BusError as exc:
                self.publish_failed = (time.monotonic(), str(exc))
                raise

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


API = web.AppKey("riskstream_api", Api)

WRITE_PROBE: web.AppKey[Callable[[], None]] = web.AppKey("riskstream_write_probe")
"""One small write to Redis, for ``/health``: a Redis at maxmemory still answers reads."""

# Who is calling, for the request being handled.  A context variable rather than
# request storage: aiohttp before 3.14 has no typed request keys and 3.14 warns
# on string ones.  ``caller_scope`` (the outermost middleware) starts each request
# with nobody, so a keep-alive connection's next request never sees the last caller.
_CALLER: ContextVar[Principal | None] = ContextVar("riskstream_api_caller", default=None)


@contextmanager
def caller_scope() -> Iterator[None]:
    token = _CALLER.set(None)
    try:
        yield
    finally:
        _CALLER.reset(token)


def set_caller(who: Principal) -> None:
    _CALLER.set(who)


def caller() -> Principal | None:
    return _CALLER.get()


def principal(request: web.Request) -> Principal:
    """The authenticated caller; only routes with a role (so a checked token) ask."""
    who = _CALLER.get()
    if who is None:
        raise RuntimeError(f"{request.path}: no authenticated caller for a route that needs one")
    return who
