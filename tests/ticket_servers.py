"""A real local HTTP server speaking the subset of Jira Cloud REST v3, GitHub Issues REST
and ServiceNow's Table API that the ticketer uses, and checking what it receives.

It keeps tickets in memory, logs every request (method, path, query, JSON body), and
answers as the real APIs document: status codes, shapes, auth.  A request it does
not understand, or with a wrong shape, is answered 400 and counted in ``problems``,
so a test fails on it.  Faults are injected per request: ``answer_next`` (e.g. a 429
with ``Retry-After``), ``drop_next`` (handle the next write, then hang up without an
answer: the client cannot know it happened), and :meth:`stop` / :meth:`start` for an
outage (connections refused).  :meth:`close_as_person` closes a ticket in the system's
own way, as a person would in its UI (not through the API under test), recording who.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

JIRA_AUTH = "Basic " + base64.b64encode(b"bot@example.com:jira-token").decode()
GITHUB_AUTH = "Bearer gh-token"
SNOW_AUTH = "Basic " + base64.b64encode(b"rs.integration:snow-password").decode()
# Who the API users are, as each system names them (the ticketer's own account).
BOT = {"jira": "riskstream bot", "github": "riskstream-bot", "servicenow": "rs.integration"}
CLOSED_AT = "2026-12-02T10:00:00.000+0000"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None = None  # None: no answer sent (dropped)

    def line(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + q if q else ''}"

    def shown(self) -> str:
        """The request, its answer's status, and the body it carried (cut short)."""
        body = "" if self.body is None else " " + orjson.dumps(self.body).decode()[:160]
        return f"{self.status or 'no answer'} {self.line()}{body}"


@dataclass
class Ticket:
    key: str
    id: str
    labels: list[str]
    fields: dict[str, Any]
    comments: list[Any] = field(default_factory=list)
    state: str = "open"
    closed_by: str | None = None
    closed_at: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # jira changelog, oldest first


class TicketServer:
    """The three APIs on one loopback port, each under its own path prefix."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.problems: list[str] = []
        self.tickets: dict[str, dict[str, Ticket]] = {"jira": {}, "github": {}, "servicenow": {}}
        self.answer_next: list[tuple[int, dict[str, str], bytes]] = []
        self.drop_next = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                outer._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close_as_person(self, kind: str, who: str, state: str | None = None) -> Ticket:
        """Close the only ticket of ``kind`` as ``who`` would in the system's UI: Jira
        moves it to Done (a changelog entry by them), GitHub sets ``state: closed`` and
        ``closed_by``, ServiceNow sets ``state`` (default 7, Closed) and ``closed_by``."""
        with self._lock:
            (t,) = self.tickets[kind].values()
            self._close(kind, t, who, state)
            return t

    def _close(self, kind: str, t: Ticket, who: str, state: str | None = None) -> None:
        n = len(t.history) + 1
        t.closed_by, t.closed_at = who, CLOSED_AT.replace("10:00", f"10:{n:02d}")
        if kind == "jira":
            t.history.append({
                "id": str(n), "author": {"accountId": f"acc-{who}", "displayName": who},
                "created": t.closed_at,
                "items": [{"field": "status", "fieldId": "status", "fromString": t.state,
                           "toString": "Done"}],
            })  # fmt: skip
            t.state = "done"
        else:
            t.state = state or {"github": "closed", "servicenow": "7"}[kind]

    def writes(self, prefix: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method != "GET" and s.path.startswith(prefix)]

    # -- dispatch ------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = orjson.loads(raw) if raw else None
        with self._lock:
            seen = Seen(h.command, parts.path, query, body)
            self.seen.append(seen)
            injected = self.answer_next.pop(0) if self.answer_next else None
            if injected is None:
                try:
                    status, answer = self._route(h, parts.path, query, body)
                except _Bad as bad:
                    self.problems.append(f"{h.command} {parts.path}: {bad}")
                    status, answer = 400, {"errorMessages": [str(bad)]}
            drop = self.drop_next > 0 and injected is None and h.command != "GET"
            if drop:
                self.drop_next -= 1
            else:
                seen.status = injected[0] if injected is not None else status
        if drop:  # done, but the client never hears of it
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if injected is not None:
            status, headers, data = injected
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        data = b"" if answer is None else orjson.dumps(answer)
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(
        self, h: BaseHTTPRequestHandler, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        auth = h.headers.get("Authorization")
        if path.startswith("/rest/api/3/"):
            if auth != JIRA_AUTH:
                return 401, {"errorMessages": ["not authenticated"]}
            return self._jira(h.command, path[len("/rest/api/3") :], query, body)
        if path.startswith("/repos/"):
            if auth != GITHUB_AUTH or h.headers.get("X-GitHub-Api-Version") != "2022-11-28":
                return 401, {"message": "Bad credentials"}
            return self._github(h.command, path, query, body)
        if path.startswith("/api/now/table/incident"):
            if auth != SNOW_AUTH:
                return 401, {"error": {"message": "User Not Authenticated"}}
            return self._servicenow(h.command, path[len("/api/now/table/incident") :], query, body)
        raise _Bad("no such API")

    # -- Jira Cloud REST v3 ------------------------------------------------------------

    def _jira(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        issues = self.tickets["jira"]
        if method == "GET" and path == "/search/jql":
            m = re.fullmatch(r'project = "(\w+)" AND labels = "([^"]+)" ORDER BY created ASC',
                             query.get("jql", ""))  # fmt: skip
            if not m:
                raise _Bad(f"unexpected jql {query.get('jql')!r}")
            found = [t for t in issues.values() if m[2] in t.labels]
            return 200, {"issues": [{"id": t.id, "key": t.key} for t in found][:1]}
        if method == "POST" and path == "/issue":
            f = (body or {}).get("fields") or {}
            if not (f.get("project", {}).get("key") and f.get("issuetype", {}).get("name")
                    and f.get("summary") and f.get("description", {}).get("type") == "doc"
                    and isinstance(f.get("labels"), list)):  # fmt: skip
                raise _Bad(f"create needs project, issuetype, summary, ADF description: {f}")
            if any(" " in label for label in f["labels"]):
                raise _Bad("labels cannot contain spaces")
            n = len(issues) + 1
            key = f"{f['project']['key']}-{n}"
            issues[key] = Ticket(key, str(10000 + n), list(f["labels"]), f)
            return 201, {
                "id": str(10000 + n),
                "key": key,
                "self": f"{self.url}/rest/api/3/issue/{key}",
            }
        m = re.fullmatch(r"/issue/([A-Z]+-\d+)(/comment|/transitions)?", path)
        if not m or m[1] not in issues:
            return 404, {
                "errorMessages": ["Issue does not exist or you do not have permission to see it."]
            }
        t = issues[m[1]]
        if m[2] == "/comment" and method == "GET":
            listed = [{"id": str(i), "body": c} for i, c in enumerate(t.comments)]
            return 200, {"startAt": 0, "maxResults": 100, "total": len(listed), "comments": listed}
        if m[2] == "/comment" and method == "POST":
            if (body or {}).get("body", {}).get("type") != "doc":
                raise _Bad("a v3 comment body is an ADF document")
            t.comments.append(body["body"])
            return 201, {"id": str(len(t.comments)), "body": body["body"]}
        if m[2] == "/transitions" and method == "GET":
            doing = {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}
            done = {"name": "Done", "statusCategory": {"key": "done"}}
            return 200, {"transitions": [
                {"id": "21", "name": "Start work", "to": doing},
                {"id": "31", "name": "Finish", "to": done},
            ]}  # fmt: skip
        if m[2] == "/transitions" and method == "POST":
            if (body or {}).get("transition", {}).get("id") != "31":
                raise _Bad(f"unexpected transition {body}")
            self._close("jira", t, BOT["jira"])
            return 204, None
        if m[2] is None and method == "GET":
            if query.get("fields") != "status":
                raise _Bad(f"read only the status (fields=status), not {query.get('fields')!r}")
            category = "done" if t.state == "done" else "new"
            issue: dict[str, Any] = {
                "key": t.key,
                "fields": {"status": {"name": t.state.title() if t.state == "done" else "To Do",
                                      "statusCategory": {"key": category}}},
            }  # fmt: skip
            if query.get("expand") == "changelog":  # newest first, as Jira Cloud answers
                histories = list(reversed(t.history))
                issue["changelog"] = {"startAt": 0, "maxResults": len(histories),
                                      "total": len(histories), "histories": histories}  # fmt: skip
            return 200, issue
        raise _Bad("unexpected jira call")

    # -- GitHub Issues REST -----------------------------------------------------------

    def _github(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        issues = self.tickets["github"]
        m = re.fullmatch(r"/repos/([\w.-]+/[\w.-]+)/issues(?:/(\d+))?(/comments)?", path)
        if not m:
            raise _Bad("unexpected github path")
        repo, number, comments = m[1], m[2], m[3]

        def view(t: Ticket) -> dict[str, Any]:
            closed = t.state == "closed"
            return {"number": int(t.id), "html_url": f"https://github.com/{repo}/issues/{t.id}",
                    "state": t.state, "labels": [{"name": n} for n in t.labels],
                    "state_reason": "completed" if closed else None,
                    "closed_at": t.closed_at if closed else None,
                    "closed_by": {"login": t.closed_by, "type": "User"} if closed else None,
                    }  # fmt: skip

        if number is None and method == "GET":
            if query.get("state") != "all":
                raise _Bad("look in closed issues too (state=all)")
            wanted = set(query.get("labels", "").split(","))
            found = [view(t) for t in issues.values() if wanted <= set(t.labels)]
            return 200, found[: int(query.get("per_page", 30))]
        if number is None and method == "POST":
            if not (body or {}).get("title") or not isinstance(body.get("labels"), list):
                raise _Bad("create needs title and labels")
            if any(len(label) > 50 for label in body["labels"]):
                raise _Bad("label longer than 50 characters")
            n = str(len(issues) + 1)
            issues[n] = Ticket(f"#{n}", n, list(body["labels"]), body)
            return 201, view(issues[n])
        if number not in issues:
            return 404, {"message": "Not Found"}
        t = issues[number]
        if comments and method == "GET":
            page, per = int(query.get("page", 1)), int(query.get("per_page", 30))
            got = t.comments[(page - 1) * per : page * per]
            return 200, [{"id": i, "body": c} for i, c in enumerate(got)]
        if comments and method == "POST":
            if not isinstance((body or {}).get("body"), str):
                raise _Bad("a comment needs body")
            t.comments.append(body["body"])
            return 201, {"id": len(t.comments), "body": body["body"]}
        if not comments and method == "PATCH":
            if body != {"state": "closed", "state_reason": "completed"}:
                raise _Bad(f"unexpected update {body}")
            self._close("github", t, BOT["github"])
            return 200, view(t)
        if not comments and method == "GET":
            return 200, view(t)
        raise _Bad("unexpected github call")

    # -- ServiceNow Table API (incident) -----------------------------------------------

    def _servicenow(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        rows = self.tickets["servicenow"]
        if path == "" and method == "GET":
            m = re.fullmatch(
                r"correlation_id=([^^]+)\^ORDERBYsys_created_on", query.get("sysparm_query", "")
            )
            if not m:
                raise _Bad(f"unexpected sysparm_query {query.get('sysparm_query')!r}")
            found = [{"sys_id": t.id, "number": t.key} for t in rows.values() if t.labels == [m[1]]]
            return 200, {"result": found[: int(query.get("sysparm_limit", 10000))]}
        if path == "" and method == "POST":
            b = body or {}
            if not (b.get("short_description") and b.get("correlation_id") and b.get("urgency")):
                raise _Bad(f"create needs short_description, correlation_id, urgency: {b}")
            n = len(rows) + 1
            sys_id = f"{n:032x}"
            rows[sys_id] = Ticket(f"INC{n:07d}", sys_id, [b["correlation_id"]], b, state="1")
            return 201, {"result": {"sys_id": sys_id, "number": f"INC{n:07d}"}}
        sys_id = unquote(path.lstrip("/"))
        if sys_id not in rows:
            return 404, {"error": {"message": "No Record found"}}
        t = rows[sys_id]
        if method == "GET" and query.get("sysparm_display_value") == "all":
            names = {"1": "New", "2": "In Progress", "6": "Resolved", "7": "Closed"}
            closer = {"value": f"id-{t.closed_by}", "display_value": t.closed_by} if (
                t.closed_by) else {"value": "", "display_value": ""}  # fmt: skip
            closed = t.state == "7"
            row = {
                "state": {"value": t.state, "display_value": names.get(t.state, t.state)},
                "resolved_by": closer,
                "resolved_at": {"value": t.closed_at or "", "display_value": t.closed_at or ""},
                "closed_by": closer if closed else {"value": "", "display_value": ""},
                "closed_at": {"value": t.closed_at if closed else "",
                              "display_value": t.closed_at if closed else ""},
                "sys_updated_by": {"value": "admin", "display_value": "admin"},
            }  # fmt: skip
            wanted = query.get("sysparm_fields", "").split(",")
            return 200, {"result": {k: v for k, v in row.items() if k in wanted}}
        if method == "GET" and query.get("sysparm_fields") == "state":  # raw values
            return 200, {"result": {"state": t.state}}
        if method == "GET":
            if query.get("sysparm_display_value") != "true":
                raise _Bad("journal fields read as text need sysparm_display_value=true")
            journal = "\n\n".join(f"2026-12-02 10:00:00 - rs.integration (Work notes)\n{n}"
                                  for n in reversed(t.comments))  # fmt: skip
            return 200, {"result": {"work_notes": journal}}
        if method == "PATCH":
            b = body or {}
            if "work_notes" in b:
                t.comments.append(b["work_notes"])
            if "state" in b:
                if b["state"] == "6" and not (b.get("close_code") and b.get("close_notes")):
                    return 403, {
                        "error": {
                            "message": "Data Policy Exception: close_code, close_notes mandatory"
                        }
                    }
                self._close("servicenow", t, BOT["servicenow"], b["state"])
            return 200, {"result": {"sys_id": sys_id}}
        raise _Bad("unexpected servicenow call")


class _Bad(Exception):
    pass
