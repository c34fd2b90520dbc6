"""Jira Cloud (REST API v3): an issue per incident group, comments, a transition to done.

Calls used (Atlassian's Jira Cloud platform REST API v3):

- ``GET /rest/api/3/search/jql`` — the issue labelled with the group's external id;
- ``POST /rest/api/3/issue`` — ``fields``: project key, issue type, summary, labels,
  and the description in the Atlassian Document Format (ADF), as v3 requires;
- ``GET`` / ``POST /rest/api/3/issue/{key}/comment`` — comments (ADF bodies);
- ``GET`` / ``POST /rest/api/3/issue/{key}/transitions`` — the first transition whose
  target status is in the ``done`` category (or named ``done_status``);
- ``GET /rest/api/3/issue/{key}?fields=status&expand=changelog`` — whether the issue is
  in a ``done`` status, and who moved it there: the latest status change in the
  changelog (``resolve_on_close``).

Auth is basic with the account's e-mail and an API token.  JQL search is
eventually consistent: a ticket created a moment ago may not be found yet, so the
ticketer stores the key it got back at once and searches only for a group it has
no key for (a crash between the create and that store).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from riskstream.adapters.tickets.http import JsonHttp, basic_auth
from riskstream.core.tickets import TicketClosure, TicketDraft, TicketRef
from riskstream.errors import TicketSystemError

__all__ = ["JiraTickets", "adf", "adf_text"]

SUMMARY_MAX = 255


def adf(text: str) -> dict[str, Any]:
    """Plain text as an ADF document, one paragraph per line.

    >>> adf("a\\n\\nb")["content"][1]
    {'type': 'paragraph', 'content': []}
    """
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
            for line in text.split("\n")
        ],
    }


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if node.get("type") == "text":
            yield str(node.get("text", ""))
        for child in node.get("content") or ():
            yield from _texts(child)
        if node.get("type") == "paragraph":
            yield "\n"


def adf_text(doc: Any) -> str:
    """The text of an ADF document, a line per paragraph.

    >>> adf_text(adf("one\\ntwo"))
    'one\\ntwo\\n'
    """
    return "".join(_texts(doc))


class JiraTickets:
    """The :class:`riskstream.ports.TicketSystem` for a Jira Cloud site and project."""

    def __init__(
        self,
        name: str,
        site: str,
        project: str,
        user: str,
        token: str,
        issue_type: str = "Task",
        done_status: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._site = site.rstrip("/")
        self._project = project
        self._issue_type = issue_type
        self._done = done_status
        self._http = JsonHttp(
            name, self._site, {"Authorization": basic_auth(user, token)}, timeout_s
        )

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(key, f"{self._site}/browse/{key}", key)

    def find(self, external_id: str) -> TicketRef | None:
        jql = f'project = "{self._project}" AND labels = "{external_id}" ORDER BY created ASC'
        found = self._http.request(
            "GET",
            "/rest/api/3/search/jql",
            query={"jql": jql, "fields": "summary", "maxResults": "1"},
        )
        issues = (found or {}).get("issues") or []
        return self._ref(str(issues[0]["key"])) if issues else None

    def create(self, draft: TicketDraft) -> TicketRef:
        fields = {
            "project": {"key": self._project},
            "issuetype": {"name": self._issue_type},
            "summary": draft.title[:SUMMARY_MAX],
            "description": adf(draft.body),
            "labels": list(draft.labels),
        }
        made = self._http.request("POST", "/rest/api/3/issue", {"fields": fields})
        return self._ref(str(made["key"]))

    def comment_texts(self, ticket: TicketRef) -> list[str]:
        texts: list[str] = []
        start = 0
        while True:
            page = self._http.request(
                "GET",
                f"/rest/api/3/issue/{quote(ticket.id)}/comment",
                query={"startAt": str(start), "maxResults": "100"},
            )
            comments = (page or {}).get("comments") or []
            texts.extend(adf_text(c.get("body")) for c in comments)
            start += len(comments)
            if not comments or start >= int((page or {}).get("total", 0)):
                return texts

    def comment(self, ticket: TicketRef, text: str) -> None:
        self._http.request(
            "POST", f"/rest/api/3/issue/{quote(ticket.id)}/comment", {"body": adf(text)}
        )

    def close(self, ticket: TicketRef, text: str) -> None:
        path = f"/rest/api/3/issue/{quote(ticket.id)}/transitions"
        transitions = (self._http.request("GET", path) or {}).get("transitions") or []
        for t in transitions:
            to = t.get("to") or {}
            if (self._done and to.get("name") == self._done) or (
                not self._done and (to.get("statusCategory") or {}).get("key") == "done"
            ):
                self._http.request("POST", path, {"transition": {"id": str(t["id"])}})
                return
        issue = self._http.request(
            "GET", f"/rest/api/3/issue/{quote(ticket.id)}", query={"fields": "status"}
        )
        status = ((issue or {}).get("fields") or {}).get("status") or {}
        if (status.get("statusCategory") or {}).get("key") == "done":
            return  # a person closed it already
        raise TicketSystemError(
            f"{self.name}: issue {ticket.key} has no transition to "
            f"{self._done or 'a done status'} from {status.get('name')!r}; "
            "set done_status to a status its workflow reaches, or close it by hand",
            retryable=False,
        )

    def closure(self, ticket: TicketRef) -> TicketClosure | None:
        issue = self._http.request(
            "GET",
            f"/rest/api/3/issue/{quote(ticket.id)}",
            query={"fields": "status", "expand": "changelog"},
        )
        status = ((issue or {}).get("fields") or {}).get("status") or {}
        if (status.get("statusCategory") or {}).get("key") != "done":
            return None
        histories = ((issue or {}).get("changelog") or {}).get("histories") or []
        moves = [
            h for h in histories
            if any(i.get("fieldId", i.get("field")) == "status" for i in h.get("items") or ())
        ]  # fmt: skip
        last = max(moves, key=_when, default=None)
        author = (last or {}).get("author") or {}
        who = author.get("displayName") or author.get("accountId")
        return TicketClosure(
            str(status.get("name") or "done"),
            str(who) if who else None,
            str(last["created"]) if last and last.get("created") else None,
        )


def _when(history: Mapping[str, Any]) -> datetime:
    """When a changelog entry was made (Jira writes ``2026-12-02T10:00:00.000+0000``)."""
    try:
        return datetime.strptime(str(history.get("created")), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
