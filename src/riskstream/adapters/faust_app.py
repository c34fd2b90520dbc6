"""The containment worker as a faust-streaming app.

faust runs the consumer group (incidents and change events), commits offsets after
each event is handled, and gives us timers for approval expiry.  The decisions are
made by :class:`riskstream.services.containment.ContainmentService`, plain code
shared with the embedded mode; this module only wires faust to it.

Exactly-once *effects* do not depend on faust's commits: every action carries a
deterministic change id that the flag store refuses to apply twice, so a
redelivered incident (after a crash between the flag write and the commit)
changes nothing.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import orjson

from riskstream.config import Config
from riskstream.services.containment import ContainmentService

__all__ = ["build_app"]

log = logging.getLogger(__name__)


def build_app(
    config: Config,
    bootstrap: str,
    service: ContainmentService,
    *,
    app_id: str = "riskstream-containment",
    replication_factor: int = 1,
    expiry_interval_s: float = 1.0,
    commit_every: int = 1,
    commit_interval_s: float = 2.8,
) -> Any:
    """A faust App whose agents feed the containment service."""
    import faust  # imported here: faust pulls in a lot, and only this process needs it

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
        async for value in stream:
            try:
                incident = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                log.error("skipping an incident that is not JSON: %s", exc)
                continue
            outcomes = service.on_incident(incident)
            log.info("incident %s: %s", incident.get("incident_id"), outcomes)

    @app.agent(changes)
    async def record_changes(stream: Any) -> None:
        async for value in stream:
            try:
                service.on_change_event(orjson.loads(value))
            except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
                log.error("skipping a change event riskstream cannot read: %s", exc)

    @app.timer(interval=expiry_interval_s)
    async def expire_approvals() -> None:
        for pending in service.expire_due():
            log.warning("approval for %s expired", pending.action_id)
        for model_id in service.lapse_flags():
            log.warning("routing flag of %s lapsed after its ttl: restored", model_id)

    return app
