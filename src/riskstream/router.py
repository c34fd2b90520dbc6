"""The serving side of containment: "which version, in which mode, for model X now?"

The containment worker writes one :class:`~riskstream.core.routing.RoutingFlag`
per model to Redis and announces every change; a :class:`Router` in each serving
process keeps a local copy fresh and answers :meth:`Router.route` from it, a dict
read with no I/O (about 2 µs, most of it building the :class:`Decision`)::

    import os
    from prometheus_client import REGISTRY
    from riskstream.router import Router

    router = Router("rediss://redis.internal:6380/0", namespace="prod", registry=REGISTRY,
                    password=os.environ["REDIS_PASSWORD"], ssl_ca_certs="/etc/ssl/redis-ca.pem")

    def predict(model_id: str, user_id: str, features: dict) -> Prediction:
        decision = router.route(model_id, key=user_id)  # local read: never blocks or raises
        if decision.mode == "blocked":
            raise ModelBlocked(model_id, decision.incident_id)
        return serve(model_id, decision.version or DEFAULT_VERSION[model_id], features)

Call ``router.close()`` on shutdown, or use the Router as a context manager.
Build it after a pre-fork server (gunicorn ``--preload``, multiprocessing) has
forked: the refresh thread does not survive ``fork()``, and a child would serve
a frozen cache that turns stale after ``max_staleness_s``.

It reads the flags hash and the ``changed`` channel of its namespace, as the flag
store writes them (:mod:`riskstream.adapters.redis.keys`).  How it keeps its copy
fresh without missing a change, and why, is in ``docs/design/router.md``.

Failure semantics a caller must know:

- Construction never fails because Redis is down, the host is wrong or the
  password is refused: serving must be able to start.  The constructor waits up
  to ``start_timeout_s`` for the first load; if that fails it logs a warning,
  :meth:`Router.route` answers the default decision (``version=default_version``,
  mode ``normal``) with ``stale=True``, and the thread keeps retrying with
  exponential backoff.  Only a malformed configuration (URL scheme, TLS options
  on a plain URL, credentials given twice, a bad namespace) raises
  :class:`~riskstream.errors.ConfigError`.
- While Redis is unreachable the last known decisions keep being served; once
  the last successful read is older than ``max_staleness_s`` they carry
  ``stale=True`` and the ``riskstream_router_stale`` gauge reads 1.  What to do
  with a stale decision (keep serving, fail closed) is the caller's policy.
- A revision never goes backwards: a flag or message with a revision at or below
  the one held is ignored.  The one exception is a *different Redis server*
  (its ``run_id`` changed: restart without persistence, failover): its hash is
  then adopted as it is, lower revisions and removed models included, because
  the flag store now works from that state too and serving must agree with it.
- **Lost state.**  The containment worker keeps an epoch key beside the flags
  (:mod:`riskstream.services.flag_epoch`).  When a Router that has seen an
  epoch finds it gone, Redis lost the flags (a restart without persistence, a
  failover to an empty replica): rather than read the empty hash as "every
  model normal", it keeps serving its last decisions, all marked ``stale=True``,
  with ``riskstream_router_state_lost`` at 1, until the worker has written its
  decisions back under a new epoch, which it then adopts as it is.
- A flag that does not parse or breaks the schema (unknown mode, fraction outside
  0..1, key and ``model_id`` disagreeing) is ignored with an error log and
  ``riskstream_router_invalid_flags_total``; the model keeps its last good flag.
- ``expires_at`` is reported by the store, not enforced here: the containment
  worker reverts an expired change with a new revision.  A model deleted from
  the hash on the same server keeps its last flag; write a ``normal`` revision
  to release it.

Metrics (on the registry passed in, or a private one at :attr:`Router.registry`):
``riskstream_router_stale`` (computed at scrape time, so it is right even if
the thread is stuck in a blocking call), ``riskstream_router_refresh_failures_total``,
``riskstream_router_last_refresh_timestamp_seconds`` (wall time),
``riskstream_router_updates_total`` (flags applied to the cache),
``riskstream_router_invalid_flags_total`` and ``riskstream_router_state_lost``.
One Router per registry.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from riskstream.adapters.redis import keys
from riskstream.adapters.redis.client import (
    CLUSTER_SCHEMES,
    RedisClient,
    client_builder,
    explain,
    shown_url,
    where,
)
from riskstream.adapters.redis.keys import ROUTER_ACL as REQUIRED_ACL
from riskstream.core.routing import MODES, RoutingFlag
from riskstream.errors import ConfigError, StateStoreError

__all__ = ["REQUIRED_ACL", "Decision", "FlagCache", "Router", "flag_keys"]

log = logging.getLogger(__name__)

_IDLE_WAIT_S: Final = 0.2  # longest wait for a message: bounds how long close() takes
_MAX_BATCH: Final = 1000  # messages drained before one HMGET
_BACKOFF_START_S: Final = 0.05
_DEFAULT_SOCKET_TIMEOUT_S: Final = 1.0


def flag_keys(namespace: str = "default") -> tuple[str, str]:
    """The ``(hash, channel)`` names of a namespace's flags, for operators and tests.

    A view of :func:`riskstream.adapters.redis.keys.flag_keys`, which owns the layout
    and the namespace rule, so the router and the flag store cannot disagree.
    """
    flag = keys.flag_keys(namespace)
    return flag.flags, flag.changed


@dataclass(frozen=True, slots=True)
class Decision:
    """How to serve one model now, as far as this process knows.

    ``version`` is None when the model has no flag and the Router has no
    ``default_version``: the caller uses its own default.  ``mode`` is one of
    :data:`~riskstream.core.routing.MODES` and ``traffic_fraction`` the share of
    traffic it applies to.  Asked with a request key (``route(model, key=...)``),
    ``version`` and ``mode`` are already the ones for that key: the key's stable
    hash puts it in the shifted share or in the rest (``previous_version`` in
    ``previous_mode``), the same way every time.  Asked without one, the caller
    samples.  ``revision`` is 0 when
    there is no flag.  ``age_s`` is the time since the cache was last confirmed
    against Redis (``inf`` if it never was); ``stale`` is ``age_s >
    max_staleness_s``.
    """

    model_id: str
    version: str | None
    mode: str
    traffic_fraction: float
    revision: int
    incident_id: str | None
    stale: bool
    age_s: float
    previous_version: str | None = None  # what the share not shifted serves
    previous_mode: str | None = None


class FlagCache:
    """The in-process half of the router: flags by model, and how fresh they are.

    One writer thread calls :meth:`offer`, :meth:`replace` and
    :meth:`mark_refreshed`; any number of threads call :meth:`route` without a
    lock (single dict and attribute reads are atomic).
    """

    def __init__(
        self,
        default_version: str | None = None,
        max_staleness_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_staleness_s > 0:
            raise ConfigError(f"max_staleness_s must be positive, not {max_staleness_s!r}")
        self.default_version = default_version
        self.max_staleness_s = float(max_staleness_s)
        self._clock = clock
        self._flags: dict[str, RoutingFlag] = {}
        self._last_ok = -math.inf
        self._changed = threading.Condition()
        self.lost = False  # Redis lost the flags: every decision is stale until restored

    def route(self, model_id: str, key: str | None = None) -> Decision:
        age = self._clock() - self._last_ok
        stale = self.lost or age > self.max_staleness_s
        flag = self._flags.get(model_id)
        if flag is None:
            return Decision(
                model_id, self.default_version, "normal", 1.0, 0, None, stale, age,
            )  # fmt: skip
        version, mode = (flag.active_version, flag.mode) if key is None else flag.serves(key)
        return Decision(
            model_id, version, mode, flag.traffic_fraction, flag.revision,
            flag.incident_id, stale, age, flag.previous_version, flag.previous_mode,
        )  # fmt: skip

    @property
    def stale(self) -> bool:
        return self.lost or self._clock() - self._last_ok > self.max_staleness_s

    def flag(self, model_id: str) -> RoutingFlag | None:
        return self._flags.get(model_id)

    def flags(self) -> dict[str, RoutingFlag]:
        """Every flag held, by model (a copy: for exports and change watchers)."""
        return dict(self._flags)

    def revision(self, model_id: str) -> int | None:
        """The revision held for the model, or None if it has no flag."""
        flag = self._flags.get(model_id)
        return None if flag is None else flag.revision

    def offer(self, flag: RoutingFlag) -> bool:
        """Take the flag if its revision is newer than the one held; say whether it was."""
        held = self._flags.get(flag.model_id)
        if held is not None and flag.revision <= held.revision:
            return False
        with self._changed:
            self._flags[flag.model_id] = flag
            self._changed.notify_all()
        return True

    def replace(self, flags: Iterable[RoutingFlag]) -> int:
        """Adopt exactly these flags (another server's state); return how many differ."""
        new = {flag.model_id: flag for flag in flags}
        old = self._flags
        differ = sum(1 for model_id, flag in new.items() if old.get(model_id) != flag)
        with self._changed:
            self._flags = new
            self._changed.notify_all()
        return differ

    def mark_refreshed(self) -> None:
        """Record that the cache was just confirmed against Redis."""
        self._last_ok = self._clock()

    def wait_for(self, model_id: str, revision: int, timeout: float) -> Decision:
        """Block until the cache holds ``revision`` or newer for the model.

        Raises :class:`TimeoutError` if it does not within ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(
                lambda: (self.revision(model_id) or 0) >= revision, timeout
            ):
                held = self.revision(model_id)
                raise TimeoutError(
                    f"routing flag of {model_id!r} did not reach revision {revision} within "
                    f"{timeout:g}s (cache holds {held})"
                )
        return self.route(model_id)


def parse_flag(model_id: str, raw: bytes | str) -> RoutingFlag:
    """The flag stored under ``model_id``; ValueError saying what is wrong with it."""
    try:
        flag = RoutingFlag.from_data(orjson.loads(raw))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if flag.model_id != model_id:
        raise ValueError(f"stored under {model_id!r} but names model {flag.model_id!r}")
    for mode in (flag.mode, flag.previous_mode or "normal"):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    if not 0.0 <= flag.traffic_fraction <= 1.0:
        raise ValueError(f"traffic_fraction {flag.traffic_fraction} is outside 0..1")
    return flag


def parse_message(data: bytes | str) -> tuple[str, int]:
    """``(model_id, revision)`` of a change message; ValueError if it is malformed."""
    try:
        message = orjson.loads(data)
        model_id, revision = message["model_id"], message["revision"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model_id, str) or not isinstance(revision, int):
        raise ValueError(f"expected a string model_id and an integer revision, got {message!r}")
    return model_id, revision


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _epoch_text(value: bytes | str) -> str:
    """The flag epoch as text; one that is not UTF-8 (not the worker's) still compares."""
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else value


class _Metrics:
    def __init__(self, registry: CollectorRegistry, cache: FlagCache) -> None:
        self.stale = Gauge(
            "riskstream_router_stale",
            "1 while the routing cache has not been confirmed against Redis for longer "
            "than its staleness bound.",
            registry=registry,
        )
        self.stale.set_function(lambda: 1.0 if cache.stale else 0.0)
        self.refresh_failures = Counter(
            "riskstream_router_refresh_failures_total",
            "Attempts to reach Redis for routing flags that failed.",
            registry=registry,
        )
        self.last_refresh = Gauge(
            "riskstream_router_last_refresh_timestamp_seconds",
            "Wall time the routing cache was last confirmed against Redis.",
            registry=registry,
        )
        self.updates = Counter(
            "riskstream_router_updates_total",
            "Routing flags applied to the local cache.",
            registry=registry,
        )
        self.invalid = Counter(
            "riskstream_router_invalid_flags_total",
            "Routing flags or change messages ignored because they were malformed.",
            registry=registry,
        )
        self.lost = Gauge(
            "riskstream_router_state_lost",
            "1 while Redis has lost the routing flags (the worker's epoch is gone) and "
            "the last decisions are served, stale, until the worker writes them back.",
            registry=registry,
        )
        self.lost.set_function(lambda: 1.0 if cache.lost else 0.0)


class Router:
    """A local, self-refreshing cache of one namespace's routing flags.

    ``redis`` is a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL, a Redis
    Cluster's ``redis+cluster://host:port,host:port`` (``rediss+cluster://``), or a
    ``redis.Redis`` or ``redis.cluster.RedisCluster`` client the caller keeps owning
    (either ``decode_responses``).  On a cluster the router subscribes on the primary
    that serves the namespace's slot and follows it through a failover.
    With a URL, ``username``/``password`` are Redis ACL credentials (keep them out
    of the URL, which ends up in logs), the ``ssl_*`` files are the CA bundle and,
    for mutual TLS, this client's certificate and key, and other keyword
    arguments go to :meth:`redis.Redis.from_url`.  The client built from a URL
    times out after 1 s and does not retry by itself (the router does); a client
    passed in should have timeouts too, or a black-holed server stalls the
    refresh thread (``route()`` still answers and turns stale).

    See the module docstring for what happens when Redis is down.
    """

    def __init__(
        self,
        redis_url_or_client: str | RedisClient,
        namespace: str = "default",
        default_version: str | None = None,
        max_staleness_s: float = 5.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        start_timeout_s: float = 2.0,
        username: str | None = None,
        password: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        self._hash, self._channel = flag_keys(namespace)
        self._epoch_key = keys.flag_keys(namespace).epoch
        self._epoch: str | None = None  # the worker's generation last seen
        self.namespace = namespace
        self._cache = FlagCache(default_version, max_staleness_s, clock)
        self._client: RedisClient | None
        if isinstance(redis_url_or_client, str):
            self._build = _client_builder(
                redis_url_or_client,
                username=username,
                password=password,
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                **client_kwargs,
            )
            self._owns_client = True
            # A cluster client connects as it is built: build it in the refresh thread.
            cluster = urlsplit(redis_url_or_client).scheme in CLUSTER_SCHEMES
            self._client = None if cluster else self._build()
            self._where = shown_url(redis_url_or_client) if cluster else where(self._redis)
        else:
            given = [
                name
                for name, value in {
                    "username": username,
                    "password": password,
                    "ssl_ca_certs": ssl_ca_certs,
                    "ssl_certfile": ssl_certfile,
                    "ssl_keyfile": ssl_keyfile,
                    **client_kwargs,
                }.items()
                if value is not None
            ]
            if given:
                raise ConfigError(
                    f"Router options {given} only apply to a URL; configure the "
                    "redis.Redis client you passed instead."
                )
            self._client = redis_url_or_client
            self._owns_client = False
            self._where = where(redis_url_or_client)
        self.registry = CollectorRegistry() if registry is None else registry
        try:
            self._metrics = _Metrics(self.registry, self._cache)
        except ValueError:  # prometheus: "Duplicated timeseries" (a second Router)
            if self._owns_client and self._client is not None:
                self._client.close()
            raise
        self._resync_every_s = self._cache.max_staleness_s / 2
        self._backoff_cap_s = max(_BACKOFF_START_S, min(1.0, self._cache.max_staleness_s / 4))
        self._raw: dict[str, bytes | str] = {}  # last value seen per model: skip re-parsing
        self._bad: dict[str, bytes | str] = {}  # last invalid value logged per model
        self._bad_keys: set[bytes | str] = set()  # hash fields that are not UTF-8, logged once
        self._run_id: str | None = None
        self._warned_info = False
        self._failures = 0
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"riskstream-router-{namespace}", daemon=True
        )
        self._thread.start()
        if not self._first_attempt.wait(start_timeout_s) or self._cache.stale:
            log.warning(
                "Router could not load routing flags from Redis at %s within %gs; serving "
                "default decisions marked stale and retrying in the background.",
                self._where,
                start_timeout_s,
            )

    def __repr__(self) -> str:
        return f"Router({self._where}, namespace={self.namespace!r})"

    def route(self, model_id: str, key: str | None = None) -> Decision:
        """How to serve ``model_id`` now: a local read, no I/O, never raises for Redis.

        With ``key`` (a user or session id), the decision is the one for that key
        during a progressive shift: a stable hash of it picks the shifted share or
        the rest, so one user does not flip between versions from request to request.
        """
        return self._cache.route(model_id, key)

    @property
    def stale(self) -> bool:
        """True once the cache has not been confirmed for ``max_staleness_s``."""
        return self._cache.stale

    def flags(self) -> dict[str, RoutingFlag]:
        """Every flag the cache holds, by model (a copy; for exports and OpenFeature)."""
        return self._cache.flags()

    def wait_for(self, model_id: str, revision: int, timeout: float = 5.0) -> Decision:
        """Block until the cache holds ``revision`` or newer (for tests and benchmarks).

        Raises :class:`TimeoutError` if it does not within ``timeout`` seconds.
        """
        return self._cache.wait_for(model_id, revision, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the refresh thread; close the client if it was built from a URL."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._owns_client and self._client is not None:
            self._client.close()

    @property
    def _redis(self) -> RedisClient:
        """The client, built now if it was left to the refresh thread (a cluster's)."""
        if self._client is None:
            self._client = self._build()
        return self._client

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the refresh thread ------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # the thread must outlive any failure
                self._failed(exc)
                self._first_attempt.set()
                delay = min(self._backoff_cap_s, _BACKOFF_START_S * 2 ** (self._failures - 1))
                self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        self._metrics.refresh_failures.inc()
        if isinstance(exc, StateStoreError):  # a cluster client that could not be built
            if self._failures == 1:
                log.warning("Router: %s Serving the last known decisions; retrying.", exc)
        elif not isinstance(exc, redis.RedisError):
            log.error("Router refresh failed unexpectedly; retrying.", exc_info=exc)
        elif self._failures == 1:
            refused = isinstance(exc, (redis.AuthenticationError, redis.ResponseError))
            log.log(
                logging.ERROR if refused else logging.WARNING,  # a refusal will not heal
                "Router cannot reach Redis at %s (%s: %s); serving the last known decisions, "
                "marked stale after %gs, and retrying. %s",
                self._where,
                type(exc).__name__,
                str(exc).rstrip("."),
                self._cache.max_staleness_s,
                explain(exc, self._where, REQUIRED_ACL),
            )
        else:
            log.debug("Router retry %d failed: %s", self._failures, exc)

    def _session(self) -> None:
        """Subscribe, load everything, then follow messages until stopped or broken."""
        client = self._redis
        if self._failures and isinstance(client, RedisCluster):
            # After a failover the slot map still names the dead primary: read it again
            # so the subscription goes to the node that serves the flags now.
            client.nodes_manager.initialize()
        pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
        try:
            pubsub.subscribe(self._channel)
            deadline = time.monotonic() + max(1.0, self._resync_every_s)
            while True:  # the subscription must be live before the load
                message = pubsub.get_message(timeout=_IDLE_WAIT_S)
                if message is not None and message["type"] == "subscribe":
                    break
                if time.monotonic() > deadline:
                    raise redis.TimeoutError("Redis did not confirm the subscription")
            self._resync(new_connection=True)
            self._follow(pubsub)
        finally:
            pubsub.close()

    def _follow(self, pubsub: redis.client.PubSub) -> None:
        next_resync = time.monotonic() + self._resync_every_s
        ping_outstanding = False
        while not self._stop.is_set():
            wait = min(_IDLE_WAIT_S, max(0.0, next_resync - time.monotonic()))
            message = pubsub.get_message(timeout=wait)
            changed: dict[str, int] = {}
            reconnected = False
            drained = 0
            while message is not None:
                kind = message["type"]
                if kind == "message":
                    self._note_message(message["data"], changed)
                elif kind == "pong":
                    ping_outstanding = False
                elif kind == "subscribe":  # redis-py reconnected and resubscribed
                    reconnected = True
                drained += 1
                if drained >= _MAX_BATCH:
                    break
                message = pubsub.get_message(timeout=0)
            if reconnected:
                ping_outstanding = False  # a PING sent before the drop gets no reply
                self._resync(new_connection=True)
                next_resync = time.monotonic() + self._resync_every_s
            elif changed and self._cache.lost:  # the worker may be writing them back
                self._resync(new_connection=False)
            elif changed:
                self._read_models(changed)
            if time.monotonic() >= next_resync:
                if ping_outstanding:
                    raise redis.ConnectionError("no reply to PING on the subscription connection")
                pubsub.ping()
                ping_outstanding = True
                self._resync(new_connection=False)
                next_resync = time.monotonic() + self._resync_every_s

    def _note_message(self, data: bytes | str, changed: dict[str, int]) -> None:
        try:
            model_id, revision = parse_message(data)
        except ValueError as exc:
            self._metrics.invalid.inc()
            log.error("Router ignored a malformed change message %r: %s", data[:200], exc)
            return
        held = self._cache.revision(model_id)
        if held is None or revision > held:
            changed[model_id] = max(revision, changed.get(model_id, revision))

    def _read_models(self, changed: Mapping[str, int]) -> None:
        model_ids = list(changed)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._epoch_key)
        pipe.hmget(self._hash, model_ids)
        raw_epoch, values = pipe.execute()
        if (None if raw_epoch is None else _epoch_text(raw_epoch)) != self._epoch:
            self._resync(new_connection=False)  # a new epoch, or gone: decide on the whole
            return
        self._refreshed()
        for model_id, raw in zip(model_ids, values, strict=True):
            if raw is not None:
                self._take(model_id, raw)

    def _resync(self, *, new_connection: bool) -> None:
        """Re-read the whole hash; adopt it as it is if the server is a different one."""
        run_id = self._server_run_id() if new_connection else None
        pipe = self._redis.pipeline(transaction=False)  # the epoch first: see _lost
        pipe.get(self._epoch_key)
        pipe.hgetall(self._hash)
        raw_epoch, stored = pipe.execute()
        epoch = None if raw_epoch is None else _epoch_text(raw_epoch)
        if epoch is None and self._epoch is not None:
            self._lost(run_id)
            return
        new_epoch = None not in (epoch, self._epoch) and epoch != self._epoch
        adopt = new_epoch or (None not in (run_id, self._run_id) and run_id != self._run_id)
        if adopt:
            log.warning(
                "Redis at %s %s; adopting its routing flags as they are, lower revisions "
                "and removed models included.",
                self._where,
                f"has a new flag epoch {epoch} (was {self._epoch}: the containment worker "
                "wrote its flags back)"
                if new_epoch
                else f"is a different server (run_id {run_id}, was {self._run_id}: restart "
                "or failover)",
            )
            flags: list[RoutingFlag] = []
            self._raw = {}
            for key, raw in stored.items():
                model_id = self._model_id(key)
                if model_id is None:
                    continue
                flag = self._parse(model_id, raw)
                if flag is not None:
                    self._raw[model_id] = raw
                else:
                    flag = self._cache.flag(model_id)  # keep the last good one, if any
                if flag is not None:
                    flags.append(flag)
            self._metrics.updates.inc(self._cache.replace(flags))
        else:
            for key, raw in stored.items():
                model_id = self._model_id(key)
                if model_id is not None:
                    self._take(model_id, raw)
        self._run_id = run_id or self._run_id  # only once the new state is in the cache
        self._epoch = epoch or self._epoch
        if self._cache.lost:
            self._cache.lost = False
            log.warning(
                "Router: routing flags restored under epoch %s; decisions fresh again", epoch
            )
        self._refreshed()
        if self._failures:
            log.info(
                "Router reached Redis at %s again after %d failed attempts.",
                self._where,
                self._failures,
            )
            self._failures = 0

    def _lost(self, run_id: str | None) -> None:
        """The epoch is gone: keep every decision, stale, until the worker restores them.

        The epoch is read before the hash, and the worker writes both in one step, so
        a hash read after a present epoch is never the empty one of a lost state.
        """
        if not self._cache.lost:
            self._cache.lost = True
            log.error(
                "Router: Redis at %s lost the routing flags (flag epoch %s is gone); serving "
                "the last %d decisions marked stale until the containment worker writes "
                "them back.",
                self._where, self._epoch, len(self._raw),
            )  # fmt: skip
        self._run_id = run_id or self._run_id
        self._refreshed()  # Redis answers; the decisions are stale because lost
        if self._failures:
            self._failures = 0

    def _take(self, model_id: str, raw: bytes | str) -> None:
        if self._raw.get(model_id) == raw:
            return
        flag = self._parse(model_id, raw)
        if flag is None:
            return
        self._raw[model_id] = raw
        if self._cache.offer(flag):
            self._metrics.updates.inc()

    def _model_id(self, key: bytes | str) -> str | None:
        """The model a hash field names; None (counted, logged once) if it is not UTF-8:
        no flag store writes such a field, and one left by another writer must not stop
        the read of every other flag."""
        try:
            return _text(key)
        except UnicodeDecodeError:
            if key not in self._bad_keys:
                self._bad_keys.add(key)
                self._metrics.invalid.inc()
                log.error(
                    "Router ignored the field %r of %s: its name is not UTF-8, so it names "
                    "no model; delete it (HDEL) — flag stores never write one",
                    key[:200], self._hash,
                )  # fmt: skip
            return None

    def _parse(self, model_id: str, raw: bytes | str) -> RoutingFlag | None:
        try:
            return parse_flag(model_id, raw)
        except ValueError as exc:
            if self._bad.get(model_id) != raw:  # log each bad value once, not every resync
                self._bad[model_id] = raw
                self._metrics.invalid.inc()
                log.error(
                    "Router ignored the routing flag of %r in %s (keeping the last good one): %s",
                    model_id,
                    self._hash,
                    exc,
                )
            return None

    def _server_run_id(self) -> str | None:
        try:
            client = self._redis
            if isinstance(client, RedisCluster):  # the server holding the flags
                node = client.get_node_from_key(self._hash)  # type: ignore[no-untyped-call]
                info = client.info("server", target_nodes=node)
            else:
                info = client.info("server")
        except redis.ResponseError as exc:  # NOPERM or INFO renamed: no restart detection
            if not self._warned_info:
                self._warned_info = True
                log.warning(
                    "Router cannot run INFO on %s (%s), so it cannot tell a Redis restart "
                    "or failover that lost changes: revisions that went backwards with one "
                    "are ignored until this process restarts. Grant +info to fix.",
                    self._where,
                    exc,
                )
            return None
        run_id = info.get("run_id")
        return None if run_id is None else str(run_id)

    def _refreshed(self) -> None:
        self._cache.mark_refreshed()
        self._metrics.last_refresh.set_to_current_time()
        self._first_attempt.set()


def _client_builder(url: str, **client_kwargs: Any) -> Callable[[], RedisClient]:
    """A client for the router: short timeouts and no retries of its own (the
    router's loop retries, with backoff), otherwise as every Redis adapter's."""
    options: dict[str, Any] = {
        "socket_timeout": _DEFAULT_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": _DEFAULT_SOCKET_TIMEOUT_S,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
        "client_name": "riskstream-router",
    }
    return client_builder(url, **{**options, **client_kwargs})
