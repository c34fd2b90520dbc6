"""`riskstream run api` on a real broker and Redis, beside the real containment worker."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson

from api_support import (
    Answer,
    ApiProcess,
    clinical_situation,
    free_port,
    matches_past_a_window,
    redis_acl_user,
    wait_for,
    write_tokens,
)
from support import read_topic

TOKENS = {
    "val": ("viewer", "rs_integration_viewer_token_0001"),
    "ana": ("operator", "rs_integration_operator_token_0002"),
    "dr.okafor": ("approver", "rs_integration_approver_token_0003"),
}
VIEWER, OPERATOR, APPROVER = (TOKENS[n][1] for n in ("val", "ana", "dr.okafor"))
PASSWORD = "s3cret-redis-pass-9f2"


def _ok(answer: Answer) -> object:
    assert answer.status == 200, (answer.status, answer.text)
    return answer.body


def test_roles_filters_errors_and_every_write_named_on_real_kafka_and_redis(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    tokens = write_tokens(tmp_path / "tokens.yaml", TOKENS)
    metrics_port = free_port()
    answers: list[Answer] = []
    with (
        clinical_situation(tmp_path, unique("api"), kafka_bootstrap, redis_url) as world,
        redis_acl_user(redis_url, unique("api-user"), PASSWORD) as secret_url,
    ):
        api = ApiProcess(
            world.setup, kafka_bootstrap, secret_url, tokens, tmp_path / "api.log",
            world.namespace, metrics_port,
        )  # fmt: skip
        try:

            def call(
                method: str, path: str, token: str | None = None, body: object = None
            ) -> Answer:
                answers.append(api.call(method, f"/api/v1{path}", token, body))
                return answers[-1]

            assert _ok(call("GET", "/health")) == {
                "status": "ok", "redis": "ok", "version": "0.1.0.dev0"
            }  # fmt: skip

            # who may do what
            assert call("GET", "/incidents").status == 401
            assert call("GET", "/incidents", "rs_forged").status == 401
            refused = call("POST", f"/incidents/{world.incident_id}/acknowledge", VIEWER)
            assert (refused.status, refused.body["error"]) == (403, "forbidden")
            refused = call("POST", f"/actions/{world.action_id}/approve", OPERATOR)
            assert refused.status == 403 and "approver role" in refused.body["message"]

            # filters, on the records the worker wrote
            listed = _ok(call("GET", "/incidents?min_severity=critical&status=contained", VIEWER))
            assert [i["incident_id"] for i in listed["incidents"]] == [world.incident_id]
            none = {"incidents": [], "next": None}
            assert _ok(call("GET", "/incidents?acknowledged=true", VIEWER)) == none
            assert _ok(call("GET", "/incidents?subject=chatbot", VIEWER)) == none
            bad = call("GET", "/incidents?min_severity=urgent", VIEWER)
            assert bad.status == 400 and "use one of info, warning, critical" in bad.body["message"]
            assert call("GET", "/incidents/no-such-incident", VIEWER).status == 404

            detail = _ok(call("GET", f"/incidents/{world.incident_id}", VIEWER))
            assert detail["incident"]["evidence"]["onset_sample"] == 3801
            assert {"onset", "detected", "action"} <= {e["kind"] for e in detail["timeline"]}
            assert [a["status"] for a in detail["actions"]] == ["pending"]

            # acknowledge, approve, override, resolve: each under the caller's name
            blank = call("POST", f"/incidents/{world.incident_id}/acknowledge", OPERATOR,
                         {"note": " \n "})  # fmt: skip
            assert blank.status == 400 and "note ' \\n ' is only spaces" in blank.body["message"]
            acked = _ok(call("POST", f"/incidents/{world.incident_id}/acknowledge", OPERATOR,
                             {"note": "paged the clinical lead"}))  # fmt: skip
            assert acked["acknowledged_by"] == "ana"
            listed = _ok(call("GET", "/incidents?acknowledged=true", VIEWER))
            assert [i["incident_id"] for i in listed["incidents"]] == [world.incident_id]
            decided = _ok(call("POST", f"/actions/{world.action_id}/approve", APPROVER,
                               {"note": "recall drop confirmed"}))  # fmt: skip
            assert (decided["status"], decided["decided_by"]) == ("applied", "dr.okafor")
            flag = _ok(call("GET", "/flags/diagnosis", VIEWER))
            assert (flag["active_version"], flag["actor"]) == ("dx-2.0", "dr.okafor")
            again = call("POST", f"/actions/{world.action_id}/reject", APPROVER)
            assert again.status == 409 and "already applied" in again.body["message"]

            assert call("PUT", "/flags/diagnosis", OPERATOR, {"mode": "normal"}).status == 400
            shadow = {"mode": "shadow", "traffic_fraction": 0.1, "reason": "compare offline"}
            # an approver approved this flag: only an approver may change it (issue 12, item 9)
            refused = call("PUT", "/flags/diagnosis", OPERATOR, shadow)
            assert (refused.status, refused.body["error"]) == (403, "not_permitted")
            assert "with the approval of dr.okafor" in refused.body["message"]
            flag = _ok(call("PUT", "/flags/diagnosis", APPROVER, shadow))
            assert (flag["mode"], flag["actor"]) == ("shadow", "dr.okafor")

            resolved = _ok(call("POST", f"/incidents/{world.incident_id}/resolve", OPERATOR,
                                {"note": "model retrained"}))  # fmt: skip
            assert (resolved["status"], resolved["resolved_by"]) == ("resolved", "ana")

            audit = _ok(call("GET", "/audit?limit=1000", VIEWER))["entries"]
            named = {(e["actor"], e["after"].get("event") or e["after"].get("mode")) for e in audit}
            assert {("ana", "incident.acknowledged"), ("dr.okafor", "action.approved"),
                    ("dr.okafor", "normal"), ("dr.okafor", "shadow"),
                    ("ana", "incident.resolved")} <= named  # fmt: skip
            assert _ok(call("GET", "/audit/verify", VIEWER))["ok"] is True
            monitors = _ok(call("GET", "/monitors", VIEWER))["monitors"]
            assert {m["name"] for m in monitors} == {"value-drift", "value-adwin"}

            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                metrics = r.read().decode()
            assert (
                'riskstream_api_requests_total{method="POST",'
                'route="/api/v1/actions/{action_id}/approve",status="200"} 1.0'
            ) in metrics
        finally:
            api.stop()
        log = api.log()

    published = [
        orjson.loads(m.value())
        for m in read_topic(kafka_bootstrap, world.setup.topics["incidents"])
    ]
    assert published[-1]["status"] == "resolved"  # subscribers hear of it
    assert "dr.okafor POST /api/v1/actions/" in log  # the access log names people...
    for secret in (PASSWORD, VIEWER, OPERATOR, APPROVER):  # ...never their secrets
        assert secret not in log
        assert not [a.text for a in answers if secret in a.text]


def test_a_redis_that_refuses_the_password_is_reported_without_showing_it(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    from support import make_setup

    setup = make_setup(tmp_path, unique("api-down"))
    tokens = write_tokens(tmp_path / "tokens.yaml", TOKENS)
    with redis_acl_user(redis_url, unique("api-user"), PASSWORD) as secret_url:
        wrong = secret_url.replace(PASSWORD, "not-the-password-7c1")
        api = ApiProcess(setup, kafka_bootstrap, wrong, tokens, tmp_path / "api.log", "ns")
        try:
            health = api.call("GET", "/api/v1/health")
            assert (health.status, health.body["redis"]) == (503, "not answering")
            listed = api.call("GET", "/api/v1/incidents", VIEWER)
            assert (listed.status, listed.body["error"]) == (503, "unavailable")
            assert "Check the Redis username and password" in listed.body["message"]
            answers = [health, listed]
        finally:
            api.stop()
    for secret in ("not-the-password-7c1", PASSWORD, VIEWER):
        assert secret not in api.log()
        assert not [a.text for a in answers if secret in a.text]
    wait_for("a clean exit", lambda: api.process.returncode is not None)
    assert api.process.returncode == 0


def test_the_log_cannot_be_forged_and_token_guessing_is_slowed(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Issue 12, items 14 and 16, on the API process as deployed."""
    from support import make_setup

    setup = make_setup(tmp_path, unique("api-hygiene"))
    tokens = write_tokens(tmp_path / "tokens.yaml", TOKENS)
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", "ns")
    fake = "2026-12-02 10:00:00,000 INFO riskstream.api: dr.okafor POST /api/v1/actions/a1/approve"
    try:
        forged = api.call("GET", "/api/v1/x%0A" + fake.replace(" ", "%20") + "%0D%0A")
        assert forged.status == 404
        answers = [api.call("GET", "/api/v1/me", "rs_a_guess") for _ in range(10)]
        assert {a.status for a in answers} == {401}
        refused = api.call("GET", "/api/v1/me", "rs_a_guess")
        assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
        assert api.call("GET", "/api/v1/me", VIEWER).status == 200  # a good one still passes
    finally:
        api.stop()
    log = api.log()
    assert not [line for line in log.splitlines() if line.startswith(fake[:20])]
    assert "/api/v1/x\\n2026-12-02 10:00:00,000 INFO riskstream.api" in log


def test_a_filtered_list_reaches_matches_older_than_its_window_in_real_redis(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """A filtered page looks through SCANNED incidents after its cursor.  With none of
    them matching it said ``next: null``, and the three older matches were never
    listed.  Now each page says where to look on, until the oldest was looked at."""
    from riskstream.services.operations import SCANNED
    from support import make_setup

    namespace = unique("api-window")
    older, newer = matches_past_a_window(redis_url, namespace)
    setup = make_setup(tmp_path, unique("api-window"))
    tokens = write_tokens(tmp_path / "tokens.yaml", TOKENS)
    api = ApiProcess(setup, kafka_bootstrap, redis_url, tokens, tmp_path / "api.log", namespace)
    pages: list[tuple[list[str], str | None]] = []
    try:
        after: str | None = ""
        while after is not None:
            query = "subject=ward-7&limit=2" + (f"&after={after}" if after else "")
            body = _ok(api.call("GET", f"/api/v1/incidents?{query}", VIEWER))
            assert isinstance(body, dict)
            after = body["next"]
            pages.append(([i["incident_id"] for i in body["incidents"]], after))
    finally:
        api.stop()
    assert pages == [
        ([], newer[-SCANNED]),  # no match among the SCANNED newest: look on after them
        ([older[2], older[1]], older[1]),  # a full page
        ([older[0]], None),  # the oldest was looked at: the list ends
    ]
