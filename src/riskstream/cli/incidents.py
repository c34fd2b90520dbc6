"""``riskstream incidents list|show|ack|resolve``: the incident queue from a terminal.

Every command goes through the operator service, the same path as the HTTP API,
so what a person does here lands on the incident's timeline and in the audit
trail exactly as it would from the console.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from riskstream.cli.common import (
    actor,
    connection_args,
    next_page_command,
    operations,
    page_args,
    print_json,
    print_json_lines,
    say_next_page,
    short_time,
    table,
)
from riskstream.core.incident_records import SEVERITY_RANK, IncidentFilter, IncidentRecord, headline
from riskstream.core.reports.facts import (
    evidence_summary,
    reach_summary,
    reporting_deadline,
    suspect_summary,
    ticket_links,
    time_left,
)
from riskstream.core.timeutil import parse_time

__all__ = ["record_data", "register", "show_text"]

STATUSES = ("open", "contained", "resolved", "unresolved")
LIST_LIMIT = 50


def register(sub: Any) -> None:
    incidents = sub.add_parser("incidents", help="list, show, acknowledge or resolve incidents")
    incidents.set_defaults(handler=incidents_command)
    i_sub = incidents.add_subparsers(dest="incidents_command", required=True, metavar="ACTION")

    listing = i_sub.add_parser("list", help="the latest incidents, most recently detected first")
    listing.add_argument("--status", choices=STATUSES, help="only these (unresolved: not resolved)")
    listing.add_argument("--severity", choices=list(SEVERITY_RANK), help="at least this severe")
    listing.add_argument("--subject", help="only this model or sensor")
    listing.add_argument("--type", help="only this incident type (recall-drop, fairness…)")
    listing.add_argument("--monitor", help="only those raised by this monitor")
    page_args(listing, LIST_LIMIT)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    connection_args(listing)

    show = i_sub.add_parser("show", help="one incident: evidence, suspects, reach, timeline")
    show.add_argument("incident_id")
    show.add_argument("--json", action="store_true", help="the record as one JSON object")
    connection_args(show)

    for verb, what in (("ack", "say you have it (stops re-paging)"), ("resolve", "close it")):
        p = i_sub.add_parser(verb, help=what)
        p.add_argument("incident_id")
        p.add_argument("--by", required=True, help="your name: recorded on the timeline")
        p.add_argument("--note", default="", help="why, for the record")
        connection_args(p)


def incidents_command(args: argparse.Namespace) -> int:
    command = args.incidents_command
    if command == "list":
        return _list(args)
    if command == "show":
        record = operations(args).incident(args.incident_id)
        if args.json:
            print_json(record_data(record))
        else:
            print(show_text(record, time.time()))
        return 0
    by = actor(args.by)
    if command == "ack":
        record = operations(args).acknowledge(args.incident_id, by, args.note)
        print(_outcome(record.incident_id, "acknowledged", record.acknowledged_by, by))
        return 0
    record = operations(args, publishes=True).resolve(args.incident_id, by, args.note)
    print(_outcome(record.incident_id, "resolved", record.resolved_by, by))
    return 0


def _list(args: argparse.Namespace) -> int:
    from riskstream.services.operations import filtered_window

    where = IncidentFilter(
        status=args.status, min_severity=args.severity, subject=args.subject,
        type=args.type, monitor=args.monitor,
    )  # fmt: skip
    limit = args.limit
    page = operations(args).incident_page(where, limit=limit, after=args.after)
    records = page.items
    if args.json:
        print_json_lines(record_data(r) for r in records)
    elif records:
        rows = [
            [r.incident_id, r.status, r.severity, short_time(r.detected_at), r.subject,
             r.acknowledged_by, headline(r.incident)]
            for r in records
        ]  # fmt: skip
        print(table(["ID", "STATUS", "SEVERITY", "DETECTED", "SUBJECT", "ACK", "WHAT"], rows))
    elif page.next is None:
        print("no incidents match" + ("" if where == IncidentFilter() else " these filters"))
    else:  # an empty filtered page that did not reach the oldest incident
        seen = f"{filtered_window(limit)} incidents"
        seen = f"latest {seen}" if args.after is None else f"{seen} after {args.after}"
        print(f"none of the {seen} match these filters")
    command = ["incidents", "list"]
    if page.next is None or len(records) >= limit:
        say_next_page(args, page.next, command, _list_options(args))
    else:  # a filtered page looks through a window of incidents, not the whole list
        print(
            f"(older incidents were not looked through yet; look on with: "
            f"{next_page_command(args, command, _list_options(args), page.next)})",
            file=sys.stderr,
        )
    return 0


def _list_options(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The filters of ``incidents list`` as given, for the command of its next page."""
    return [
        ("--status", args.status), ("--severity", args.severity), ("--subject", args.subject),
        ("--type", args.type), ("--monitor", args.monitor),
    ]  # fmt: skip


def _outcome(incident_id: str, done: str, by: str | None, asked_by: str) -> str:
    if by is not None and by != asked_by.strip():
        return f"{incident_id}: already {done} by {by}; nothing changed"
    return f"{incident_id}: {done} by {by}"


def record_data(record: IncidentRecord) -> dict[str, Any]:
    """The stored record plus its headline: what ``--json`` prints for scripts."""
    return {**record.to_data(), "headline": headline(record.incident)}


def show_text(record: IncidentRecord, now: float) -> str:
    """Everything a person needs to decide what to do, on one screen."""
    inc = record.incident
    lines = [f"{record.incident_id}  {record.status.upper()}", headline(inc), ""]

    def row(label: str, text: str) -> None:
        lines.append(f"{label:<13} {text}")

    row("subject", f"{record.subject} (monitor {inc.get('monitor')}, "
                   f"stream {inc.get('stream_key')})")  # fmt: skip
    row("onset", f"{_time_of(inc, 'onset_at')} (estimated)")
    row("detected", _time_of(inc, "detected_at"))
    if record.acknowledged_by:
        row("acknowledged", f"{short_time(record.acknowledged_at)} by {record.acknowledged_by}")
    if record.resolved_by:
        row("resolved", f"{short_time(record.resolved_at)} by {record.resolved_by}")
    row("evidence", evidence_summary(inc))
    suspects = inc.get("suspected_changes") or []
    for n, change in enumerate(suspects[:5], 1):
        row("suspect" if n == 1 else "", f"{n}. {suspect_summary(change)}")
    if not suspects:
        row("suspects", "no change events on it (or upstream) near the onset")
    row("reach", reach_summary(inc.get("blast_radius") or {}))
    if inc.get("parent_id"):
        row("caused by", f"incident {inc['parent_id']}")
    if inc.get("children"):
        row("children", ", ".join(inc["children"]))
    deadline = reporting_deadline(inc, now)
    if deadline is not None:
        due = short_time(parse_time(deadline["report_deadline"]))
        when = time_left(deadline)
        row(
            "regulatory",
            f"potential serious incident ({deadline['framework']} Article "
            f"{deadline['article']}): report due {due}, {when}",
        )
    for ticket in ticket_links(record):
        row("ticket", f"{ticket['system']} {ticket['key']} {ticket['url']}")
    lines += ["", "timeline"]
    lines += [
        "  " + line
        for line in table(
            ["WHEN", "WHAT", "WHO", "DETAIL"],
            ([short_time(e.at), e.kind, e.actor, e.detail] for e in record.timeline),
            max_cell=200,
        ).splitlines()
    ]
    later = [f"riskstream report {record.incident_id} --kind postmortem"]
    if deadline is not None:
        later.insert(0, f"riskstream report {record.incident_id} --kind art73")
    if record.acknowledged_by is None:
        later.insert(0, f"riskstream incidents ack {record.incident_id} --by NAME")
    lines += ["", "next: " + "\n      ".join(later)]
    return "\n".join(lines)


def _time_of(incident: Mapping[str, Any], key: str) -> str:
    value = incident.get(key)
    return short_time(parse_time(str(value))) if value else "-"
