"""The containment worker as a faust-streaming app.

faust runs the consumer group (incidents and change events), commits offsets after
each event is handled, and gives us timers for approval expiry.  The decisions are
made by :class:`riskstream.services.containment.ContainmentService`, plain code
shared with the embedded mode; this module only wires faust to it.

Exactly-once *effects* do not depend on faust's commits: every action carries a
deterministic change id that the flag store refuses to apply twice, so a
redelivered incident (after a crash between the flag write and the commit)
changes nothing.

When Redis fails (down, at maxmemory, a failover) the worker does not exit: the
incident or change event at hand is retried with backoff (0.1 s doubling to 10 s)
until it goes through — that same idempotence makes a retry safe — and meanwhile
``/health`` says degraded and ``riskstream_containment_store_up`` reads 0. A broker
that does not take the routing change or the dead letter of the incident at hand
(down, no leader, a timeout) is waited out the same way, with
``riskstream_containment_bus_up`` at 0 instead (the two gauges tell Redis from
Kafka): the incident is handled again, its change comes back "duplicate", and what
its first try wrote is published from the outbox then. An outage neither
dead-letters it nor crashes the agent (faust would commit its offset and restart the
agent on the next incident: the routing change was never published). The routing
changes a worker wrote and did not publish (the broker was away, it stopped) wait in
the flag store's outbox: the worker publishes them at start and at every tick
(:mod:`riskstream.core.outbox`). Every call into the service runs in a worker
thread, one at a time (:func:`off_loop`): a try waiting for an absent broker (the
producer's flush, up to 30 s) leaves faust's event loop, its heartbeats and fetches
free. Each second the :class:`~riskstream.services.flag_epoch.FlagGuard` checks the
flag epoch and writes the flags back if Redis lost them, and the same timer judges
the steps of progressive shifts whose dwell is over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import tempfile
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from riskstream.config import Config
from riskstream.errors import BusError, StateStoreError
from riskstream.metrics import StoreHealth
from riskstream.services.backfill import SuspectBackfill
from riskstream.services.containment import ContainmentService
from riskstream.services.flag_epoch import FlagGuard

__all__ = ["build_app"]

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 10.0


async def off_loop(call: Callable[[], T], lock: threading.Lock | None = None) -> T:
    """``call()`` in a worker thread, holding ``lock`` (one call at a time: the service
    is not made for two threads), while the event loop goes on.

    The service's calls block: on Redis, and on the broker, whose flush waits up to the
    producer's timeout (30 s) when the broker is away.  Run on faust's event loop, each
    such try stopped every other coroutine for as long: the consumer's heartbeats and
    fetches, the other agent, the timer.  The lock is taken in the thread, so a call
    whose awaiting task was cancelled (the worker stopping) still holds it until it
    returns."""
    if lock is None:
        return await asyncio.to_thread(call)

    def locked() -> T:
        with lock:
            return call()

    return await asyncio.to_thread(locked)


async def retrying(
    health: StoreHealth,
    what: str,
    call: Callable[[], T],
    lock: threading.Lock | None = None,
    bus: StoreHealth | None = None,
) -> T:
    """``call()`` until it raises neither StateStoreError nor BusError (the containment
    service raises only a broker outage's: :func:`~riskstream.services.announcer.bus_outage`),
    with backoff; ``health`` says when Redis fails, ``bus`` when the broker does (the
    same one if not given).  Each try runs off the event loop (:func:`off_loop`,
    holding ``lock``)."""
    delay = RETRY_FIRST_S
    broker = bus or health
    failed: list[StoreHealth] = []  # what failed this call
    while True:
        try:
            result = await off_loop(call, lock)
        except (StateStoreError, BusError) as exc:
            redis = isinstance(exc, StateStoreError)
            which, cause = (health, "Redis") if redis else (broker, "the broker")
            if not which.failing:
                log.error("%s: %s fails, retrying with backoff up to %gs: %s",
                          what, cause, RETRY_MAX_S, exc)  # fmt: skip
            else:
                log.warning("%s: %s still fails: %s", what, cause, exc)
            which.failed(str(exc), cause=cause)
            if which not in failed:
                failed.append(which)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(RETRY_MAX_S, delay * 2)
            continue
        # A call that went through answered for Redis (each reads or writes it); for the
        # broker only if the broker failed it (it may have published nothing).
        if health.failing or failed:
            log.info("%s: goes through again", what)
        for which in (health, *failed):
            which.ok()
        return result


def build_app(
    config: Config,
    bootstrap: str,
    service: ContainmentService,
    *,
    health: StoreHealth | None = None,
    bus: StoreHealth | None = None,
    guard: FlagGuard | None = None,
    app_id: str = "riskstream-containment",
    replication_factor: int = 1,
    expiry_interval_s: float = 1.0,
    commit_every: int = 1,
    commit_interval_s: float = 2.8,
    backfill: SuspectBackfill | None = None,
) -> Any:
    """A faust App whose agents feed the containment service (and ``backfill``: change
    events read after their incident, listed on it; :mod:`riskstream.services.backfill`)."""
    import faust  # imported here: faust pulls in a lot, and only this process needs it

    store = health or StoreHealth.unexported()
    calls = threading.Lock()  # the agents, the start task and the timer: one at a time

    def retry(what: str, call: Callable[[], T]) -> Coroutine[Any, Any, T]:
        return retrying(store, what, call, calls, bus)

    app = faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        value_serializer="raw",
        web_enabled=False,
        topic_replication_factor=replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=commit_every,
        broker_commit_interval=commit_interval_s,
        datadir=tempfile.mkdtemp(prefix="riskstream-faust-"),
    )
    incidents = app.topic(config.topics.incidents, value_type=bytes)
    changes = app.topic(config.topics.change, value_type=bytes)

    @app.agent(incidents)
    async def contain(stream: Any) -> None:
        async for event in stream.events():
            # checked first: what is no incident goes to the dead-letter topic
            receive = functools.partial(
                service.receive_incident, event.value, event.message.headers or ()
            )
            incident, outcomes = await retry("incident", receive)
            if incident is None:
                continue
            log.info("incident %s: %s", incident.get("incident_id"), outcomes)
            if backfill is not None:
                await retry(
                    f"suspects of incident {incident.get('incident_id')}",
                    functools.partial(backfill.on_incident, incident),
                )

    @app.agent(changes)
    async def record_changes(stream: Any) -> None:
        async for value in stream:
            event, _ = await retry("change event", functools.partial(service.receive_change, value))
            if event is not None and backfill is not None:
                try:
                    await retry(
                        "change event's incidents", functools.partial(backfill.on_change, event)
                    )
                except (KeyError, ValueError) as exc:
                    log.error("skipping a change event riskstream cannot read: %s", exc)

    @app.task
    async def publish_left() -> None:
        """What a worker that stopped left in the outbox, published at start (the timer
        would at its first tick; this is at once)."""
        sent = await retry("the outbox", service.publish_outbox)
        if sent:
            log.warning("published %d routing changes an earlier worker left unpublished", sent)

    def tick() -> list[str]:
        if guard is not None:
            guard.check()
        return service.run_due()

    @app.timer(interval=expiry_interval_s)
    async def expire_approvals() -> None:
        try:
            for line in await off_loop(tick, calls):
                log.warning("%s", line)
        except StateStoreError as exc:  # the next tick tries again
            if not store.failing:
                log.error("timer: Redis fails; retrying each second: %s", exc)
            store.failed(str(exc))

    return app
