"""The ticketer against real HTTP servers (Jira, GitHub, ServiceNow subsets) over
incident records in a real Redis: one incident's life, redelivery and restart,
a rate limit, an outage and lost answers — nothing lost, nothing doubled."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.adapters.tickets import GitHubTickets, JiraTickets, ServiceNowTickets
from riskstream.core.incident_records import (
    IncidentRecord,
    note_action,
    record_incident,
    resolve,
    with_entry,
)
from riskstream.core.tickets import TicketSettings, external_id
from riskstream.metrics import TicketerMetrics
from riskstream.ports import TicketSystem
from riskstream.services.ticketer import Ticketer, TicketerSystem
from support import incident
from ticket_servers import TicketServer

pytestmark = pytest.mark.integration

KINDS = ("jira", "github", "servicenow")
PREFIX = {"jira": "/rest/api/3", "github": "/repos/", "servicenow": "/api/now/table"}
SHOW = os.environ.get("RISKSTREAM_SHOW_REQUESTS")  # print each server's log (issue #14)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    kind: str
    server: TicketServer
    store: RedisIncidentStore
    clock: Clock
    make: Callable[[], Ticketer]
    ticketer: Ticketer

    def put(
        self, incident_id: str, change: Callable[[IncidentRecord | None], IncidentRecord]
    ) -> None:
        self.store.update(incident_id, change)

    def record(self, incident_id: str) -> IncidentRecord:
        got = self.store.get(incident_id)
        assert got is not None
        return got

    def writes(self) -> list[str]:
        """The writes the server carried out (not those it refused)."""
        return [s.line() for s in self.server.writes(PREFIX[self.kind]) if s.status != 429]


def system_for(kind: str, url: str) -> TicketSystem:
    if kind == "jira":
        return JiraTickets("jira", url, "OPS", "bot@example.com", "jira-token", timeout_s=5)
    if kind == "github":
        return GitHubTickets("github", url, "acme/models", "gh-token", timeout_s=5)
    return ServiceNowTickets("servicenow", url, "rs.integration", "snow-password", timeout_s=5)


@pytest.fixture(params=KINDS)
def rig(
    request: pytest.FixtureRequest, redis_url: str, unique: Callable[[str], str]
) -> Iterator[Rig]:
    kind = request.param
    server = TicketServer()
    store = RedisIncidentStore.from_url(redis_url, namespace=unique("tickets"))
    clock = Clock()
    settings = TicketSettings(console_url="https://rs.example", initial_backoff_s=2)

    def make() -> Ticketer:
        systems = [TicketerSystem(system_for(kind, server.url), ("riskstream",))]
        return Ticketer(settings, systems, store, TicketerMetrics(CollectorRegistry()), clock=clock)

    yield Rig(kind, server, store, clock, make, make())
    if SHOW:
        print(f"\n--- {kind}: every request the server received ---")
        for s in server.seen:
            print(s.shown())
    server.stop()
    store.close()
    assert server.problems == [], server.problems


def open_incident(rig: Rig, incident_id: str, group: str | None = None) -> dict[str, object]:
    data = incident(incident_id, "support-bot")
    rig.put(incident_id, lambda r: record_incident(r, data, 10.0, group))
    return data


def life(rig: Rig) -> None:
    """open → update → contain → approve → resolve, a sync after each step."""
    data = open_incident(rig, "inc-1")
    rig.ticketer.sync()
    updated = {**data, "evidence": {"episode": {"alarms": 2}}}
    rig.put("inc-1", lambda r: record_incident(r, updated, 20.0))
    rig.ticketer.sync()
    rig.put("inc-1", lambda r: note_action(r, 30.0, "riskstream/containment", "human-review",
                                           "applied", "a0:human-review:applied"))  # fmt: skip
    rig.ticketer.sync()
    rig.put("inc-1", lambda r: with_entry(r, 40.0, "approved", "dr.okafor",
                                          "route-to-version approved", "decision:a1"))  # fmt: skip
    rig.ticketer.sync()
    rig.put("inc-1", lambda r: resolve(r, "dr.okafor", 50.0, "rolled back, rates normal"))
    rig.ticketer.sync()


def expected_writes(rig: Rig, comments: int) -> list[str]:
    if rig.kind == "jira":
        return (
            ["POST /rest/api/3/issue"]
            + ["POST /rest/api/3/issue/OPS-1/comment"] * comments
            + ["POST /rest/api/3/issue/OPS-1/transitions"]
        )
    if rig.kind == "github":
        return (
            ["POST /repos/acme/models/issues"]
            + ["POST /repos/acme/models/issues/1/comments"] * comments
            + ["PATCH /repos/acme/models/issues/1"]
        )
    path = f"/api/now/table/incident/{1:032x}?sysparm_fields=sys_id"
    return ["POST /api/now/table/incident?sysparm_fields=sys_id,number"] + [f"PATCH {path}"] * (
        comments + 1
    )


def test_one_incident_life_is_one_ticket_with_a_comment_per_step_then_closed(rig: Rig) -> None:
    life(rig)
    assert rig.writes() == expected_writes(rig, 4)  # updated, action, approved, resolved
    ticket = next(iter(rig.server.tickets[rig.kind].values()))
    texts = [str(c) for c in ticket.comments]
    for step in (
        "updated",
        "action by riskstream/containment",
        "approved by dr.okafor",
        "resolved",
    ):
        assert sum(step in t for t in texts) == 1, (step, texts)
    assert ticket.state in ("done", "closed", "6")
    assert external_id("inc-1") in ticket.labels  # servicenow: its correlation_id
    state = rig.record("inc-1").tickets[rig.kind]
    assert state["key"] == ticket.key and state["closed"] is True
    assert state["url"].startswith(("http://", "https://")) and (
        ticket.id in state["url"] or ticket.key in state["url"]
    )
    if rig.kind == "servicenow":
        create = rig.server.writes("/api/now/table/incident")[0].body
        assert create["urgency"] == "1" and create["correlation_id"] == "riskstream-inc-1"
        close = rig.server.writes()[-1].body
        assert close["state"] == "6" and close["close_code"] and close["close_notes"]


def test_redelivery_and_restart_write_nothing_more(rig: Rig) -> None:
    life(rig)
    before = len(rig.server.seen)
    # the incident redelivered (the same event again) and the ticketer restarted
    latest = {**incident("inc-1", "support-bot"), "evidence": {"episode": {"alarms": 2}}}
    rig.put("inc-1", lambda r: record_incident(r, latest, 60.0))
    restarted = rig.make()
    assert restarted.sync() == 0
    assert rig.server.seen[before:] == []  # in step: not even a read


def test_a_rate_limit_is_waited_out_as_asked_and_nothing_is_doubled(rig: Rig) -> None:
    open_incident(rig, "inc-1")
    rig.server.answer_next.append((429, {"Retry-After": "30"}, b'{"message": "slow down"}'))
    assert rig.ticketer.sync() == 0
    assert rig.record("inc-1").tickets == {}
    seen = len(rig.server.seen)
    rig.clock.now += 29
    rig.ticketer.sync()
    assert len(rig.server.seen) == seen  # still waiting: no request at all
    rig.clock.now += 1
    assert rig.ticketer.sync() == 1
    rig.put("inc-1", lambda r: note_action(r, 30.0, "riskstream/containment", "rollback",
                                           "applied", "a0:rollback:applied"))  # fmt: skip
    rig.server.answer_next.append((429, {"Retry-After": "5"}, b"{}"))
    assert rig.ticketer.sync() == 0
    rig.clock.now += 5
    assert rig.ticketer.sync() == 1
    assert rig.writes() == expected_writes(rig, 1)[:2]  # one create, one comment
    assert len(rig.server.tickets[rig.kind]) == 1


def test_an_outage_loses_nothing(rig: Rig) -> None:
    open_incident(rig, "inc-1")
    rig.server.stop()  # connections refused
    assert rig.ticketer.sync() == 0
    rig.put("inc-1", lambda r: with_entry(r, 40.0, "acknowledged", "sam", "on it", "acknowledged"))
    rig.put("inc-1", lambda r: resolve(r, "sam", 50.0, "false alarm"))
    rig.clock.now += 1  # under the backoff (2 s): not tried
    assert rig.ticketer.sync() == 0
    rig.server.start()  # back, same port
    rig.clock.now += 1
    rig.ticketer.sync()
    assert rig.writes() == expected_writes(rig, 2)  # acknowledged, resolved; then closed


def test_lost_answers_are_looked_up_not_redone(rig: Rig) -> None:
    open_incident(rig, "inc-1")
    rig.server.drop_next = 1  # the create is done, its answer lost
    rig.ticketer.sync()
    assert rig.record("inc-1").tickets == {}
    rig.ticketer = rig.make()  # and the ticketer restarted, forgetting what it sent
    rig.clock.now += 10
    rig.ticketer.sync()  # found by its external id
    assert len(rig.server.tickets[rig.kind]) == 1
    assert rig.record("inc-1").tickets[rig.kind]["key"]
    rig.put("inc-1", lambda r: with_entry(r, 40.0, "acknowledged", "sam", "on it", "acknowledged"))
    rig.server.drop_next = 1  # the comment is posted, its answer lost
    rig.ticketer.sync()
    rig.clock.now += 10
    rig.ticketer.sync()  # reads the comments, finds its marker, does not post again
    ticket = next(iter(rig.server.tickets[rig.kind].values()))
    assert sum("acknowledged by sam" in str(c) for c in ticket.comments) == 1
    assert "acknowledged" in rig.record("inc-1").tickets[rig.kind]["posted"]


def test_a_group_shares_one_ticket_closed_when_all_are_resolved(rig: Rig) -> None:
    open_incident(rig, "inc-1")
    rig.ticketer.sync()
    open_incident(rig, "inc-2", group="inc-1")
    rig.put("inc-1", lambda r: with_entry(r, 15.0, "correlated", "riskstream/detection",
                                          "related incident inc-2", "member:inc-2"))  # fmt: skip
    rig.put("inc-2", lambda r: note_action(r, 30.0, "riskstream/containment", "fallback",
                                           "applied", "a0:fallback:applied"))  # fmt: skip
    rig.ticketer.sync()
    assert len(rig.server.tickets[rig.kind]) == 1
    key = rig.record("inc-1").tickets[rig.kind]["key"]
    assert rig.record("inc-2").tickets[rig.kind]["key"] == key
    rig.put("inc-1", lambda r: resolve(r, "sam", 50.0, ""))
    rig.ticketer.sync()
    ticket = next(iter(rig.server.tickets[rig.kind].values()))
    assert ticket.state not in ("done", "closed", "6")  # inc-2 is still open
    rig.put("inc-2", lambda r: resolve(r, "sam", 60.0, ""))
    rig.ticketer.sync()
    assert ticket.state in ("done", "closed", "6")
    texts = [str(c) for c in ticket.comments]
    assert sum("(incident inc-2 on support-bot)" in t for t in texts) == 2  # action, resolved
