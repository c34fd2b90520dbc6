"""The ticketer against real HTTP servers (Jira, GitHub, ServiceNow subsets) over
incident records in a real Redis: one incident's life, redelivery and restart,
a rate limit, an outage and lost answers — nothing lost, nothing doubled.  And a
ticket closed by a person: with ``tickets.resolve_on_close`` its group is resolved
once, through the operator service on a real Kafka; without it, nothing is."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
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
from riskstream.errors import BusError
from riskstream.metrics import TicketerMetrics
from riskstream.ports import TicketSystem
from riskstream.services.operations import OperatorService
from riskstream.services.ticketer import Ticketer, TicketerSystem
from support import create_topics, incident, make_setup
from ticket_servers import BOT, TicketServer

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
    namespace: str = "default"

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
    namespace = unique("tickets")
    store = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    clock = Clock()
    settings = TicketSettings(console_url="https://rs.example", initial_backoff_s=2)

    def make() -> Ticketer:
        systems = [TicketerSystem(system_for(kind, server.url), ("riskstream",))]
        return Ticketer(settings, systems, store, TicketerMetrics(CollectorRegistry()), clock=clock)

    yield Rig(kind, server, store, clock, make, make(), namespace)
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


# -- a ticket closed by a person (tickets.resolve_on_close) --------------------------

WHO = {"jira": "Ana Lima", "github": "ana-lima", "servicenow": "ana.lima"}


@dataclass
class Closing:
    """A rig whose ticketer resolves through the operator service on Kafka and Redis."""

    rig: Rig
    ops: OperatorService
    topic: str
    bootstrap: str

    def resolved_events(self) -> list[str]:
        """The incident ids of every resolved event on the incidents topic: all of it, up
        to its end offset (every resolve flushed before it returned, so none is on its way)."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "reader"})
        try:
            _, end = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=30)
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            events = []
            while len(events) < end:
                msg = consumer.poll(30)
                assert msg is not None, f"{self.topic}: {len(events)} of {end} events read"
                assert msg.error() is None, msg.error()
                events.append(orjson.loads(msg.value()))
        finally:
            consumer.close()
        return sorted(e["incident_id"] for e in events if e.get("status") == "resolved")

    def resolutions_audited(self) -> list[tuple[str, str, str]]:
        """(incident, actor, note) of each resolution in the audit trail."""
        return [
            (str(e.after["incident_id"]), e.actor, str(e.after["note"]))
            for e in self.ops.audit()
            if e.after.get("event") == "incident.resolved"
        ]

    def state_reads(self) -> list[str]:
        """The requests that read a ticket's state (what resolve_on_close asks)."""
        return [
            s.line() for s in self.rig.server.seen
            if s.method == "GET" and (
                s.query.get("expand") == "changelog"
                or s.query.get("sysparm_display_value") == "all"
                or re.fullmatch(r"/repos/[\w.-]+/[\w.-]+/issues/\d+", s.path)
            )
        ]  # fmt: skip


@pytest.fixture
def closing(
    rig: Rig, kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> Closing:
    from riskstream.bootstrap import kafka_operations

    setup = make_setup(tmp_path, unique("tickets"))
    topic = setup.topics["incidents"]
    create_topics(kafka_bootstrap, [topic], partitions=1)
    ops = kafka_operations(
        setup.config, kafka_bootstrap, redis_url, CollectorRegistry(), rig.namespace
    )
    return Closing(rig, ops, topic, kafka_bootstrap)


def make_ticketer(
    c: Closing, resolve_on_close: bool, resolve: Callable[[str, str, str], object] | None = None
) -> Ticketer:
    settings = TicketSettings(
        console_url="https://rs.example", initial_backoff_s=2, resolve_on_close=resolve_on_close
    )
    systems = [TicketerSystem(system_for(c.rig.kind, c.rig.server.url), ("riskstream",))]
    metrics = TicketerMetrics(CollectorRegistry())
    return Ticketer(
        settings, systems, c.rig.store, metrics, clock=c.rig.clock, resolve=resolve or c.ops.resolve
    )


def open_group(rig: Rig) -> None:
    open_incident(rig, "inc-1")
    open_incident(rig, "inc-2", group="inc-1")
    rig.put("inc-2", lambda r: note_action(r, 30.0, "riskstream/containment", "fallback",
                                           "applied", "a0:fallback:applied"))  # fmt: skip


def test_configured_a_ticket_a_person_closes_resolves_its_group_exactly_once(
    closing: Closing,
) -> None:
    rig = closing.rig
    ticketer = make_ticketer(closing, resolve_on_close=True)
    open_group(rig)
    ticketer.sync()  # the ticket is made
    assert [rig.record(i).status for i in ("inc-1", "inc-2")] == ["open", "contained"]
    ticket = rig.server.close_as_person(rig.kind, WHO[rig.kind])
    key = ticket.key
    ticketer.sync()
    assert closing.state_reads() == []  # read every close_check_interval_s (60 s)
    # The bus fails once, after the first incident: the close is noted, the rest waits.
    real = closing.ops.resolve
    calls: list[str] = []

    def flaky(incident_id: str, by: str, note: str) -> object:
        calls.append(incident_id)
        if incident_id == "inc-2" and calls.count("inc-2") == 1:
            raise BusError("the broker is away")
        return real(incident_id, by, note)

    ticketer = make_ticketer(closing, resolve_on_close=True, resolve=flaky)
    rig.clock.now += 60
    ticketer.sync()
    assert (rig.record("inc-1").status, rig.record("inc-2").status) == ("resolved", "contained")
    ticketer = make_ticketer(closing, resolve_on_close=True)  # restarted
    ticketer.sync()  # finishes from the note on the record, without reading the ticket again
    assert len(closing.state_reads()) == 1
    actor = f"{WHO[rig.kind]} ({rig.kind} {key})"
    for incident_id in ("inc-1", "inc-2"):
        record = rig.record(incident_id)
        assert (record.status, record.resolved_by) == ("resolved", actor)
        (entry,) = [e for e in record.timeline if e.kind == "resolved"]
        assert f"{rig.kind} ticket {key}" in entry.detail and WHO[rig.kind] in entry.detail
    # Redelivered incidents and more scans, restarted again: nothing more.
    rig.put("inc-1", lambda r: record_incident(r, incident("inc-1", "support-bot"), 60.0))
    for _ in range(2):
        rig.clock.now += 60
        ticketer = make_ticketer(closing, resolve_on_close=True)
        ticketer.sync()
    assert len(closing.state_reads()) == 1  # a noted close is final: never read again
    assert closing.resolved_events() == ["inc-1", "inc-2"]  # one each on Kafka
    audited = closing.resolutions_audited()
    assert [(i, a) for i, a, _ in audited] == [("inc-1", actor), ("inc-2", actor)]
    assert all(f"ticket {key}" in note for _, _, note in audited)
    # riskstream does not close the ticket again; the resolutions are noted on it.
    closes = {"jira": "/transitions", "github": "PATCH /repos/", "servicenow": '"state"'}
    assert not [w for w in rig.server.writes() if closes[rig.kind] in w.shown()]
    assert ticket.closed_by == WHO[rig.kind]
    assert sum("resolved by" in str(c) for c in ticket.comments) == 2
    state = rig.record("inc-1").tickets[rig.kind]
    assert state["closed"] is True and state["person_closed"]["resolves"] == ["inc-1", "inc-2"]


def test_not_configured_a_ticket_a_person_closes_resolves_nothing(closing: Closing) -> None:
    rig = closing.rig
    ticketer = make_ticketer(closing, resolve_on_close=False)  # the default
    open_group(rig)
    ticketer.sync()
    rig.server.close_as_person(rig.kind, WHO[rig.kind])
    for _ in range(3):
        rig.clock.now += 60
        ticketer.sync()
    assert [rig.record(i).status for i in ("inc-1", "inc-2")] == ["open", "contained"]
    assert closing.state_reads() == []
    assert closing.resolved_events() == []
    assert closing.resolutions_audited() == []


def test_configured_a_ticket_riskstream_closed_resolves_nothing_again(closing: Closing) -> None:
    rig = closing.rig
    ticketer = make_ticketer(closing, resolve_on_close=True)
    open_incident(rig, "inc-1")
    ticketer.sync()
    rig.clock.now += 60
    ticketer.sync()  # its state read: open
    closing.ops.resolve("inc-1", "sam", "rolled back")  # an operator resolves it
    ticketer.sync()  # so riskstream closes the ticket
    ticket = next(iter(rig.server.tickets[rig.kind].values()))
    assert ticket.closed_by == BOT[rig.kind]
    for _ in range(2):
        rig.clock.now += 60
        ticketer = make_ticketer(closing, resolve_on_close=True)
        assert ticketer.sync() == 0
    assert len(closing.state_reads()) == 1  # once, while it was open
    assert closing.resolved_events() == ["inc-1"]
    assert [(i, a) for i, a, _ in closing.resolutions_audited()] == [("inc-1", "sam")]


@pytest.mark.parametrize("rig", ["servicenow"], indirect=True)
def test_servicenow_a_ticket_a_person_closed_is_not_moved_back_to_resolved(rig: Rig) -> None:
    """riskstream's close wrote state 6 over a person's Closed (7)."""
    open_incident(rig, "inc-1")
    rig.ticketer.sync()  # the ticket is made
    ticket = rig.server.close_as_person("servicenow", WHO["servicenow"])  # Closed, 7
    rig.put("inc-1", lambda r: resolve(r, "sam", 50.0, "rolled back"))
    rig.ticketer.sync()
    assert (ticket.state, ticket.closed_by) == ("7", WHO["servicenow"])
    assert not [w for w in rig.server.writes() if '"state"' in w.shown()]
    assert rig.record("inc-1").tickets["servicenow"]["closed"] is True


def test_an_answer_of_another_shape_makes_its_group_wait_not_the_ticketer_stop(rig: Rig) -> None:
    """A JSON list where the API returns an object (a proxy's page, another version)
    raised AttributeError out of sync(): `riskstream run ticketer` stopped."""
    open_incident(rig, "inc-1")
    rig.server.answer_next.append((200, {"Content-Type": "application/json"}, b"[1, 2]"))
    assert rig.ticketer.sync() == 0  # no exception: the group backs off
    assert rig.server.tickets[rig.kind] == {}
    rig.clock.now += 60  # past the group's backoff
    assert rig.ticketer.sync() >= 1
    assert len(rig.server.tickets[rig.kind]) == 1


@pytest.mark.parametrize("answer", ["endless", "trickle"])
def test_an_answer_without_end_is_refused_within_the_timeout(answer: str) -> None:
    """A ticket system (or whatever its url reaches) answering with a body that never
    ends was read into memory without bound; one trickling its answer a byte at a time
    held the ticketer for as long as it kept going. Both are refused now, retryably."""
    import socket
    import threading
    import time

    from riskstream.adapters.tickets.http import MAX_ANSWER_BYTES, JsonHttp
    from riskstream.errors import TicketSystemError

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            try:
                if answer == "endless":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
                    chunk = b"[" * 65536
                    while not stop.is_set():
                        conn.sendall(chunk)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                    while not stop.is_set():
                        conn.sendall(b" ")
                        stop.wait(0.1)
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    http = JsonHttp("jira", f"http://127.0.0.1:{server.getsockname()[1]}", {}, timeout_s=3)
    start = time.monotonic()
    try:
        with pytest.raises(TicketSystemError) as caught:
            http.request("GET", "/rest/api/3/search")
    finally:
        stop.set()
        thread.join(5)
        server.close()
    took = time.monotonic() - start
    assert took < 5, f"{answer}: the request took {took:.1f} s with a 3 s timeout"
    assert caught.value.retryable
    expected = f"over {MAX_ANSWER_BYTES:,} bytes" if answer == "endless" else "within 3 s"
    assert expected in str(caught.value)


def test_a_rate_limit_wait_past_an_hour_is_cut_to_one(rig: Rig) -> None:
    """A Retry-After of 400 digits (infinity) or of years stopped every ticket of that
    system until the ticketer restarted; an hour is the longest wait now."""
    open_incident(rig, "inc-1")
    rig.server.answer_next.append((429, {"Retry-After": "9" * 400}, b"{}"))
    assert rig.ticketer.sync() == 0
    rig.clock.now += 3599
    seen = len(rig.server.seen)
    rig.ticketer.sync()
    assert len(rig.server.seen) == seen  # still waiting: no request at all
    rig.clock.now += 1
    assert rig.ticketer.sync() == 1
    assert len(rig.server.tickets[rig.kind]) == 1
