"""ServiceNow (Table API, ``incident`` table): a record per incident group, work notes,
resolved when the group is.

Calls used (ServiceNow Table API):

- ``GET /api/now/table/incident?sysparm_query=correlation_id=…`` — the record
  carrying the group's external id in ``correlation_id``;
- ``POST /api/now/table/incident`` — ``short_description``, ``description``,
  ``correlation_id``, ``correlation_display``, ``urgency`` and ``impact`` from the
  severity (critical 1, warning 2, info 3);
- ``GET /api/now/table/incident/{sys_id}?sysparm_fields=work_notes&sysparm_display_value=true``
  — the work notes journal as text, to find markers in;
- ``PATCH /api/now/table/incident/{sys_id}`` — ``work_notes`` (a journal entry per
  write), and to resolve: ``state`` 6 with ``close_code`` and ``close_notes``, after
  ``GET …/{sys_id}?sysparm_fields=state`` says a person has not resolved or closed it;
- ``GET /api/now/table/incident/{sys_id}`` with ``sysparm_fields=state,resolved_by,…``
  and ``sysparm_display_value=all`` (each field's value and display value): whether a
  person resolved (6) or closed (7) it, and who (``resolve_on_close``).

Auth is basic with an integration user's name and password.
"""

from __future__ import annotations

from urllib.parse import quote

from riskstream.adapters.tickets.http import JsonHttp, basic_auth
from riskstream.core.tickets import TicketClosure, TicketDraft, TicketRef

__all__ = ["ServiceNowTickets"]

SHORT_DESCRIPTION_MAX = 160
RESOLVED = "6"
CLOSED = "7"
_CLOSURE_FIELDS = "state,resolved_by,resolved_at,closed_by,closed_at,sys_updated_by"
_URGENCY = {"critical": "1", "warning": "2", "info": "3"}


class ServiceNowTickets:
    """The :class:`riskstream.ports.TicketSystem` for a ServiceNow instance's incidents."""

    def __init__(
        self,
        name: str,
        instance_url: str,
        user: str,
        password: str,
        close_code: str = "Solution provided",
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._instance = instance_url.rstrip("/")
        self._close_code = close_code
        headers = {"Authorization": basic_auth(user, password)}
        self._http = JsonHttp(name, self._instance, headers, timeout_s)

    def _ref(self, row: dict[str, object]) -> TicketRef:
        sys_id = str(row["sys_id"])
        link = f"{self._instance}/nav_to.do?uri={quote(f'incident.do?sys_id={sys_id}', safe='')}"
        return TicketRef(str(row.get("number") or sys_id), link, sys_id)

    def find(self, external_id: str) -> TicketRef | None:
        found = self._http.request(
            "GET",
            "/api/now/table/incident",
            query={
                "sysparm_query": f"correlation_id={external_id}^ORDERBYsys_created_on",
                "sysparm_fields": "sys_id,number",
                "sysparm_limit": "1",
            },
        )
        rows = (found or {}).get("result") or []
        return self._ref(rows[0]) if rows else None

    def create(self, draft: TicketDraft) -> TicketRef:
        level = _URGENCY.get(draft.severity, "3")
        made = self._http.request(
            "POST",
            "/api/now/table/incident",
            {
                "short_description": draft.title[:SHORT_DESCRIPTION_MAX],
                "description": draft.body,
                "correlation_id": draft.external_id,
                "correlation_display": "riskstream",
                "urgency": level,
                "impact": level,
            },
            query={"sysparm_fields": "sys_id,number"},
        )
        return self._ref(made["result"])

    def comment_texts(self, ticket: TicketRef) -> list[str]:
        got = self._http.request(
            "GET",
            f"/api/now/table/incident/{ticket.id}",
            query={"sysparm_fields": "work_notes", "sysparm_display_value": "true"},
        )
        return [str(((got or {}).get("result") or {}).get("work_notes") or "")]

    def comment(self, ticket: TicketRef, text: str) -> None:
        self._http.request(
            "PATCH",
            f"/api/now/table/incident/{ticket.id}",
            {"work_notes": text},
            query={"sysparm_fields": "sys_id"},
        )

    def close(self, ticket: TicketRef, text: str) -> None:
        # A person may have resolved (6) or closed (7) it already: writing state 6 then
        # moved a Closed ticket back to Resolved and overwrote their close notes.
        got = self._http.request(
            "GET", f"/api/now/table/incident/{ticket.id}", query={"sysparm_fields": "state"}
        )
        if str(((got or {}).get("result") or {}).get("state") or "") in (RESOLVED, CLOSED):
            return
        self._http.request(
            "PATCH",
            f"/api/now/table/incident/{ticket.id}",
            {"state": RESOLVED, "close_code": self._close_code, "close_notes": text},
            query={"sysparm_fields": "sys_id"},
        )

    def closure(self, ticket: TicketRef) -> TicketClosure | None:
        got = self._http.request(
            "GET",
            f"/api/now/table/incident/{ticket.id}",
            query={"sysparm_fields": _CLOSURE_FIELDS, "sysparm_display_value": "all"},
        )
        row = (got or {}).get("result") or {}

        def field(name: str, which: str = "display_value") -> str:
            value = row.get(name)
            return str((value.get(which) if isinstance(value, dict) else value) or "")

        state = field("state", "value")
        if state not in (RESOLVED, CLOSED):
            return None
        closed = state == CLOSED
        by = (field("closed_by") if closed else "") or field("resolved_by")
        at = (field("closed_at") if closed else "") or field("resolved_at")
        return TicketClosure(
            field("state") or state, by or field("sys_updated_by") or None, at or None
        )
