"""GitHub Issues (REST API): an issue per incident group, comments, closed when resolved.

Calls used (GitHub REST API, ``X-GitHub-Api-Version: 2022-11-28``):

- ``GET /repos/{owner}/{repo}/issues?labels=…&state=all`` — the issue labelled with
  the group's external id (listing is consistent, unlike the search API);
- ``POST /repos/{owner}/{repo}/issues`` — ``title``, ``body``, ``labels`` (missing
  labels are created by GitHub);
- ``GET`` / ``POST /repos/{owner}/{repo}/issues/{number}/comments``;
- ``PATCH /repos/{owner}/{repo}/issues/{number}`` — ``state: closed``,
  ``state_reason: completed``;
- ``GET /repos/{owner}/{repo}/issues/{number}`` — ``state``, ``state_reason``,
  ``closed_by`` and ``closed_at``: whether a person closed it (``resolve_on_close``).

Auth is a bearer token (a fine-grained token with Issues: read and write).
"""

from __future__ import annotations

from riskstream.adapters.tickets.http import JsonHttp
from riskstream.core.tickets import TicketClosure, TicketDraft, TicketRef

__all__ = ["GitHubTickets"]

LABEL_MAX = 50  # GitHub refuses longer label names


class GitHubTickets:
    """The :class:`riskstream.ports.TicketSystem` for one GitHub repository."""

    def __init__(
        self, name: str, api_url: str, repo: str, token: str, timeout_s: float = 10.0
    ) -> None:
        self.name = name
        self._repo = f"/repos/{repo}"
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self._http = JsonHttp(name, api_url, headers, timeout_s)

    @staticmethod
    def _ref(issue: dict[str, object]) -> TicketRef:
        number = str(issue["number"])
        return TicketRef(f"#{number}", str(issue.get("html_url", "")), number)

    def find(self, external_id: str) -> TicketRef | None:
        found = self._http.request(
            "GET",
            f"{self._repo}/issues",
            query={"labels": external_id[:LABEL_MAX], "state": "all", "per_page": "1"},
        )
        issues = [i for i in found or [] if "pull_request" not in i]
        return self._ref(issues[0]) if issues else None

    def create(self, draft: TicketDraft) -> TicketRef:
        labels = [label[:LABEL_MAX] for label in draft.labels]
        made = self._http.request(
            "POST",
            f"{self._repo}/issues",
            {"title": draft.title, "body": draft.body, "labels": labels},
        )
        return self._ref(made)

    def comment_texts(self, ticket: TicketRef) -> list[str]:
        texts: list[str] = []
        page = 1
        while True:
            got = self._http.request(
                "GET",
                f"{self._repo}/issues/{ticket.id}/comments",
                query={"per_page": "100", "page": str(page)},
            )
            texts.extend(str(c.get("body") or "") for c in got or [])
            if len(got or []) < 100:
                return texts
            page += 1

    def comment(self, ticket: TicketRef, text: str) -> None:
        self._http.request("POST", f"{self._repo}/issues/{ticket.id}/comments", {"body": text})

    def close(self, ticket: TicketRef, text: str) -> None:
        self._http.request(
            "PATCH",
            f"{self._repo}/issues/{ticket.id}",
            {"state": "closed", "state_reason": "completed"},
        )

    def closure(self, ticket: TicketRef) -> TicketClosure | None:
        issue = self._http.request("GET", f"{self._repo}/issues/{ticket.id}") or {}
        if issue.get("state") != "closed":
            return None
        reason = issue.get("state_reason")
        closer = issue.get("closed_by") or {}
        return TicketClosure(
            f"closed: {reason}" if reason else "closed",
            str(closer.get("login")) if closer.get("login") else None,
            str(issue["closed_at"]) if issue.get("closed_at") else None,
        )
