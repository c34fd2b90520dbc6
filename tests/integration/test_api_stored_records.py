"""The API over incident records in Redis that are not what riskstream writes.

Something other than riskstream (a script, a half-done migration, a person with
redis-cli) can leave a record of the wrong shape in the incidents hash.  Reading that
record must say which record and which field is wrong and what to do (503, as for any
stored state that is bad), never answer 500; and the incident list must skip it, with
a log line, rather than fail for everyone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis

from api_support import ApiProcess, write_tokens
from riskstream.adapters.redis.flags import RedisApprovalStore, RedisFlagStore
from riskstream.adapters.redis.incidents import RedisIncidentStore
from riskstream.adapters.redis.keys import flag_keys
from riskstream.core.approvals import Member, PendingAction
from riskstream.core.incident_records import record_incident
from support import START, create_topics, make_setup
from support import incident as an_incident

VIEWER, OPERATOR = "rs_stored_viewer_token_0001", "rs_stored_operator_token_0002"
APPROVER = "rs_stored_approver_token_0003"


_CHANGES: list[tuple[str, tuple[str, ...], Any]] = [  # name, the field changed, to what
    ("no-incident-id", ("incident", "incident_id"), ...),
    ("acknowledged-at-text", ("acknowledged_at",), "yesterday"),
    ("resolved-at-text", ("resolved_at",), "x"),
    ("timeline-at-text", ("timeline", 0, "at"), "x"),
    ("ticket-not-object", ("tickets",), {"jira": 5}),
    ("story-a-list", ("story",), [1]),
    ("story-members-number", ("story",), {"root": "x", "members": 5}),
    ("story-member-fields", ("story",), {"root": "x", "members": [{"x": 1}]}),
    ("detected-at-text", ("incident", "detected_at"), "not a time"),
    ("evidence-text", ("incident", "evidence"), "x"),
    ("evidence-before-number", ("incident", "evidence", "before"), 5),
    ("regulatory-deadline-text", ("incident", "regulatory"), {"report_deadline": "x"}),
    ("suspects-numbers", ("incident", "suspected_changes"), [5]),
    ("reach-number", ("incident", "blast_radius"), 5),
]


# records that read, whose incident data breaks the incident schema where only the
# reports look: listed and shown, but no report is made of them
REPORT_ONLY = {"evidence-before-number", "regulatory-deadline-text"}


def _bad_records(good: dict[str, Any]) -> dict[str, bytes]:
    """Record id suffix -> stored bytes, each wrong in one way."""
    bad = {
        "not-json": b"{not json",
        "a-list": b"[1, 2]",
        "another-id": orjson.dumps(good),  # the record of "good", under another id
    }
    for name, path, value in _CHANGES:
        data = copy.deepcopy(good)
        data["incident"]["incident_id"] = f"bad-{name}"
        where = data
        for key in path[:-1]:
            where = where[key]
        if value is ...:
            del where[path[-1]]
        else:
            where[path[-1]] = value
        bad[name] = orjson.dumps(data)
    return bad


def test_records_not_written_by_riskstream_get_a_clear_error_and_are_left_out_of_lists(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("stored")
    tokens = write_tokens(
        tmp_path / "tokens.yaml", {"val": ("viewer", VIEWER), "ana": ("operator", OPERATOR)}
    )
    setup = make_setup(tmp_path, unique("api"))
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    store = RedisIncidentStore.from_url(redis_url, namespace=namespace)
    incident = an_incident(
        "good", "chatbot",
        evidence={"detector": "adwin", "before": {"mean": 0.01}, "after": {"mean": 0.04}},
        regulatory={"framework": "EU AI Act", "article": "73",
                    "potential_serious_incident": True},
    )  # fmt: skip
    good = store.update("good", lambda r: record_incident(r, incident, START + 3700))
    assert good is not None
    keys = flag_keys(namespace)
    client = redis.Redis.from_url(redis_url)
    bad = _bad_records(good.to_data())
    for name, raw in bad.items():
        client.hset(keys.incidents, f"bad-{name}", raw)
        client.zadd(keys.incidents_by_time, {f"bad-{name}": START + 3600})
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", namespace)
    try:
        listed = api.call("GET", "/api/v1/incidents", VIEWER)
        assert listed.status == 200, listed.text
        shown = {i["incident_id"] for i in listed.body["incidents"]}
        assert shown == {"good", *(f"bad-{name}" for name in REPORT_ONLY)}
        assert "bad-acknowledged-at-text" in api.log()  # the skipped record is named
        # A page of one reads past the bad records to the next good one: a page that
        # came short there said `next: null`, and the list ended at the first bad one.
        paged = _walk(api, "/api/v1/incidents?", "incidents", "incident_id")
        assert paged == [i["incident_id"] for i in listed.body["incidents"]]
        again = api.call("GET", "/api/v1/incidents", VIEWER)
        assert {i["incident_id"] for i in again.body["incidents"]} == shown
        said = [line for line in api.log().splitlines()
                if "left out" in line and "bad-acknowledged-at-text" in line]  # fmt: skip
        assert len(said) == 1, said  # once, not at every list

        reads = [("GET", ""), ("GET", "/report"), ("GET", "/report?format=json"),
                 ("GET", "/report?kind=postmortem"),
                 ("GET", "/report?kind=postmortem&format=json")]  # fmt: skip
        wrong = []
        for name in bad:
            for method, suffix in [*reads, ("POST", "/acknowledge")]:
                if name in REPORT_ONLY and "/report" not in suffix:
                    continue
                token = OPERATOR if method == "POST" else VIEWER
                got = api.call(method, f"/api/v1/incidents/bad-{name}{suffix}", token, {})
                message = (got.body or {}).get("message", "")
                if got.status != 503 or f"bad-{name}" not in message:
                    wrong.append((name, suffix, got.status, got.text[:200]))
        assert not wrong, wrong
        got = api.call("GET", "/api/v1/incidents/bad-acknowledged-at-text", VIEWER)
        assert "acknowledged_at" in got.body["message"], got.text
        assert "delete" in got.body["message"], got.text  # what to do
        for kind in ("art73", "postmortem"):
            ok = api.call("GET", f"/api/v1/incidents/good/report?kind={kind}", VIEWER)
            assert ok.status == 200, ok.text
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
        client.close()
        store.close()


def test_actions_not_written_by_riskstream_get_a_clear_error_and_are_left_out_of_lists(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("stored-actions")
    tokens = write_tokens(
        tmp_path / "tokens.yaml",
        {"val": ("viewer", VIEWER), "dr.okafor": ("approver", APPROVER)},
    )
    setup = make_setup(tmp_path, unique("api"))
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    action = {"kind": "route-to-version", "version": "v1"}
    for action_id in ("a-good", "a-bad-time", "a-bad-action", "a-bad-members"):
        pending = PendingAction(action_id, f"inc-{action_id}", "bot", action,
                                "riskstream/containment", START, None, group="m")  # fmt: skip
        assert approvals.add(pending)
    for n, incident_id in enumerate(("inc-a", "inc-x", "inc-b")):
        assert approvals.join("a-bad-members", Member(incident_id, "bot", 0, START + n))
    keys = flag_keys(namespace)
    client = redis.Redis.from_url(redis_url)
    stored = orjson.loads(client.hget(keys.pending, "a-bad-time"))
    client.hset(keys.pending, "a-bad-time", orjson.dumps({**stored, "requested_at": "noon"}))
    stored = orjson.loads(client.hget(keys.pending, "a-bad-action"))
    client.hset(keys.pending, "a-bad-action", orjson.dumps({**stored, "action": 5}))
    client.hset(f"{keys.members}:a-bad-members", "inc-x", b"{not json")
    client.hset(keys.action_incidents, "inc-a-bad-list", b"{not json")
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", namespace)
    try:
        listed = api.call("GET", "/api/v1/actions?status=all", VIEWER)
        assert listed.status == 200, listed.text
        shown = [a["action_id"] for a in listed.body["actions"]]
        assert sorted(shown) == ["a-bad-members", "a-good"]
        assert "a-bad-time" in api.log()  # the skipped action is named
        # Pages of one read past the bad actions (a-bad-action comes first, a-bad-time
        # just before a-good): a page that came short there said `next: null`, and the
        # list ended with a-bad-members, a-good out of reach.
        assert _walk(api, "/api/v1/actions?status=all&", "actions", "action_id") == shown
        # One unreadable member record failed the whole list of members (503), hiding
        # the others of the storm: it is left out now, and the log says which and how
        # to repair it, once.
        for _ in range(2):
            got = api.call("GET", "/api/v1/actions/a-bad-members/members", VIEWER)
            assert got.status == 200, got.text
            assert [m["incident_id"] for m in got.body["members"]] == ["inc-a", "inc-b"]
        members_key = f"{keys.members}:a-bad-members"
        said = [line for line in api.log().splitlines() if "field 'inc-x'" in line]
        assert len(said) == 1, said
        assert members_key in said[0] and f"redis-cli HDEL '{members_key}' 'inc-x'" in said[0]
        assert _walk(api, "/api/v1/actions/a-bad-members/members?", "members", "incident_id") == [
            "inc-a", "inc-b"
        ]  # fmt: skip
        # Approving it would carry it out for the members it can read and mark it
        # applied: refused, naming the record, with nothing recorded.
        got = api.call("POST", "/api/v1/actions/a-bad-members/approve", APPROVER, {})
        assert got.status == 503, got.text
        assert "inc-x" in got.body["message"] and "HDEL" in got.body["message"], got.text
        stored = approvals.get("a-bad-members")
        assert stored is not None and stored.status == "pending", stored
        for path, names in [
            ("/actions/a-bad-time", ("a-bad-time", "requested_at")),
            ("/actions/a-bad-action", ("a-bad-action", "action")),
            ("/actions?incident_id=inc-a-bad-list", ("inc-a-bad-list",)),
        ]:
            got = api.call("GET", f"/api/v1{path}", VIEWER)
            assert got.status == 503, (path, got.status, got.text)
            assert all(name in got.body["message"] for name in names), (path, got.text)
            assert "delete" in got.body["message"], (path, got.text)
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
        client.close()
        approvals.close()


def _walk(api: ApiProcess, path: str, key: str, name: str) -> list[str]:
    """The ``name`` of every item of the list at ``path`` (a query started, ending in
    ? or &), a page of one at a time, following ``next`` until it is null."""
    paged: list[str] = []
    after = None
    while True:
        page = api.call("GET", path + "limit=1" + (f"&after={after}" if after else ""), VIEWER)
        assert page.status == 200, page.text
        paged += [item[name] for item in page.body[key]]
        if (after := page.body["next"]) is None:
            return paged


def test_an_action_whose_record_could_not_be_carried_out_is_refused_before_it_is_approved(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """An action stored without ``labels.subject`` used to be approved (the decision
    recorded, on the timeline and in the audit trail) and then fail with a 500, nothing
    applied: an approval on record that never happened.  Now nothing is recorded, the
    answer names the field, and rejecting it still works."""
    namespace = unique("stored-approve")
    tokens = write_tokens(tmp_path / "tokens.yaml", {"dr.okafor": ("approver", APPROVER)})
    setup = make_setup(tmp_path, unique("api"))
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    approvals = RedisApprovalStore.from_url(redis_url, namespace=namespace)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    action = {"kind": "route-to-version", "version": "v3"}
    for action_id, labels in [
        ("a-no-subject", {"incident_id": "inc-1", "type": "safety"}),
        ("a-bad-onset", {"incident_id": "inc-1", "subject": "bot", "onset_at": "noon"}),
    ]:
        held = PendingAction(action_id, "inc-1", "bot", action, "riskstream/containment",
                             START, None, labels=labels)  # fmt: skip
        assert approvals.add(held)
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", namespace)
    try:
        for action_id, field in [("a-no-subject", "labels.subject"),
                                 ("a-bad-onset", "labels.onset_at")]:  # fmt: skip
            got = api.call("POST", f"/api/v1/actions/{action_id}/approve", APPROVER, {})
            assert got.status == 503, got.text
            message = got.body["message"]
            assert f"'{field}'" in message and "Nothing was recorded" in message, message
            stored = approvals.get(action_id)
            assert stored is not None and stored.status == "pending", stored
        assert flags.audit() == [] and flags.all() == {}  # no decision, no flag
        got = api.call("POST", "/api/v1/actions/a-no-subject/reject", APPROVER, {"note": "bad"})
        assert (got.status, got.body["status"]) == (200, "rejected"), got.text
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
        approvals.close()
        flags.close()


def test_an_audit_entry_of_the_wrong_types_is_named_not_a_500(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    namespace = unique("stored-audit")
    tokens = write_tokens(tmp_path / "tokens.yaml", {"val": ("viewer", VIEWER)})
    setup = make_setup(tmp_path, unique("api"))
    create_topics(kafka_bootstrap, setup.topics.values(), partitions=1)
    flags = RedisFlagStore.from_url(redis_url, namespace=namespace)
    assert flags.record_event("c1", "bot", "ana", START, {"event": "note"})
    keys = flag_keys(namespace)
    client = redis.Redis.from_url(redis_url)
    ((_, fields),) = client.xrange(keys.audit, "-", "+")
    entry = orjson.loads(fields[b"entry"])
    client.xadd(keys.audit, {b"entry": orjson.dumps({**entry, "seq": 2, "at": "noon"})}, id="2-0")
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", namespace)
    try:
        got = api.call("GET", "/api/v1/audit", VIEWER)
        assert got.status == 503, got.text
        assert "'2-0'" in got.body["message"] and "'at'" in got.body["message"], got.text
        verified = api.call("GET", "/api/v1/audit/verify", VIEWER)
        assert (verified.status, verified.body["ok"]) == (200, False), verified.text
        assert api.process.poll() is None and "Traceback" not in api.log()
    finally:
        api.stop()
        client.close()
        flags.close()
