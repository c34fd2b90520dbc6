"""What every handler needs: the service, the config's monitors, and a way to call them.

The service blocks (Redis and Kafka clients are synchronous), so calls run on a
small thread pool and the event loop keeps answering.  Writes also take one
lock: the containment service caches the audit trail as it reads it, and two
writers appending to that cache at once would each add the same entries.  A write
holds it for milliseconds, or up to ``PUBLISH_TIMEOUT_S`` while the broker does not
take its event; a write that cannot have it within ``WRITE_WAIT_S`` is refused
(503, nothing written) rather than queued behind a broker outage one write after another.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from riskstream.api.auth import FailedLogins, Principal, TokenTable
from riskstream.api.errors import ApiError
from riskstream.core.monitors import MonitorSpec
from riskstream.core.reports.settings import ReportSettings
from riskstream.errors import BusError
from riskstream.metrics import ApiMetrics
from riskstream.services.operations import PUBLISH_TIMEOUT_S, OperatorService

__all__ = [
    "API",
    "WRITE_PROBE",
    "WRITE_WAIT_S",
    "Api",
    "caller",
    "caller_scope",
    "principal",
    "set_caller",
]

T = TypeVar("T")

WRITE_WAIT_S = PUBLISH_TIMEOUT_S + 1.0
"""How long a write waits for the one before it: that one's wait for the broker, and a
second for its Redis work.  Healthy writes take milliseconds, so only a broker outage (or
hundreds of writes at once) makes a write wait this long."""


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
    wait_s: float = WRITE_WAIT_S  # how long a write waits for the one before it
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
        """``fn`` under the write lock; refused (503, nothing written) when the lock is
        not free within ``wait_s``."""
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        try:
            await asyncio.wait_for(self._write_lock.acquire(), self.wait_s)
        except TimeoutError:
            raise ApiError(
                503, "unavailable",
                f"another write has been in progress for over {self.wait_s:g} s (waiting "
                "for the Kafka broker to take its event?); nothing was written. Try again "
                "in a few seconds; /api/v1/health says whether the broker takes events",
                retry_after=math.ceil(self.wait_s),
            ) from None  # fmt: skip
        try:
            return await self.read(fn, *args, **kwargs)
        except BusError as exc:
            self.publish_failed = (time.monotonic(), str(exc))
            raise
        finally:
            self._write_lock.release()

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
