"""The containment commands: approvals, routing flags and the audit trail.

(The containment worker itself is ``riskstream run containment``, in :mod:`.run`.)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from riskstream.cli.common import (
    actor,
    connection_args,
    fraction,
    operations,
    page_args,
    print_json_lines,
    say_next_page,
    short_time,
    table,
)
from riskstream.cli.flags_export import add_export_parser, export_command
from riskstream.core.routing import MODES, RoutingFlag
from riskstream.errors import InputError

__all__ = ["register"]


def register(sub: Any) -> None:
    actions = sub.add_parser("actions", help="list, approve or reject containment actions")
    actions.set_defaults(handler=actions_command)
    a_sub = actions.add_subparsers(dest="action_command", required=True, metavar="ACTION")
    a_list = a_sub.add_parser("list", help="actions waiting for approval (or --status)")
    connection_args(a_list)
    a_list.add_argument(
        "--status", default="pending", help="pending|approved|rejected|expired|applied|all"
    )
    a_list.add_argument("--incident", help="only this incident's actions")
    a_list.add_argument("--json", action="store_true", help="one JSON object per line")
    page_args(a_list)
    a_members = a_sub.add_parser("members", help="the incidents a grouped (storm) action holds")
    a_members.add_argument("action_id")
    a_members.add_argument("--json", action="store_true", help="one JSON object per line")
    page_args(a_members, 100)
    connection_args(a_members)
    for verb in ("approve", "reject"):
        p = a_sub.add_parser(
            verb, help=f"{verb} a pending action (carried out at once if approved)"
        )
        p.add_argument("action_id")
        p.add_argument("--by", required=True, help="your name: recorded with the decision")
        p.add_argument("--note", default="", help="why, for the record")
        connection_args(p)

    flags = sub.add_parser("flags", help="show or set routing flags")
    flags.set_defaults(handler=flags_command)
    f_sub = flags.add_subparsers(dest="flags_command", required=True, metavar="ACTION")
    f_get = f_sub.add_parser(
        "get", help="one model's flag, or all (a page at a time: --limit, --after)"
    )
    f_get.add_argument(
        "model_id", nargs="?", help="this model's flag only (without --limit, --after)"
    )
    f_get.add_argument("--json", action="store_true", help="one JSON object per line")
    page_args(f_get, 100)
    connection_args(f_get)
    f_set = f_sub.add_parser("set", help="set a model's flag by hand (audited, published)")
    f_set.add_argument("model_id")
    f_set.add_argument("--by", required=True, help="your name: recorded in the audit trail")
    f_set.add_argument("--reason", required=True, help="why, for the audit trail")
    f_set.add_argument("--version", help="the version to serve")
    f_set.add_argument("--mode", choices=MODES, help="how to serve it")
    f_set.add_argument("--traffic", type=fraction, help="share of traffic the mode applies to")
    connection_args(f_set)
    add_export_parser(f_sub)

    audit = sub.add_parser("audit", help="the routing audit trail")
    audit.set_defaults(handler=audit_command)
    au_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = au_sub.add_parser("verify", help="recompute the hash chain; exit 1 if tampered")
    connection_args(verify)


def actions_command(args: argparse.Namespace) -> int:
    if args.action_command == "members":
        return _members(args)
    if args.action_command == "list":
        return _list(args)
    decided = operations(args, publishes=True).decide(
        args.action_id, args.action_command == "approve", actor(args.by), args.note
    )
    print(f"{decided.action_id}: {decided.status} by {decided.decided_by}")
    return 0


def _list(args: argparse.Namespace) -> int:
    page = operations(args).action_page(
        None if args.status == "all" else args.status, args.incident, args.limit,
        args.after,
    )  # fmt: skip
    if args.json:
        print_json_lines(p.to_data() for p in page.items)
    elif page.items:
        rows = [
            [p.action_id, p.status, p.action["kind"], p.model_id, p.incident_id,
             short_time(p.requested_at),
             "never" if p.expires_at is None else short_time(p.expires_at), p.note]
            for p in page.items
        ]  # fmt: skip
        headers = ["ID", "STATUS", "ACTION", "MODEL", "INCIDENT", "REQUESTED", "EXPIRES", "NOTE"]
        print(table(headers, rows))
    else:
        print(f"no {args.status} actions")
    options = [
        ("--status", None if args.status == "pending" else args.status),
        ("--incident", args.incident),
    ]
    say_next_page(args, page.next, ["actions", "list"], options)
    return 0


def _members(args: argparse.Namespace) -> int:
    page = operations(args).member_page(args.action_id, args.limit, args.after)
    if args.json:
        print_json_lines(m.to_data() for m in page.items)
    else:
        rows = [[m.incident_id, m.model_id, short_time(m.at), m.labels.get("summary")]
                for m in page.items]  # fmt: skip
        print(table(["INCIDENT", "MODEL", "JOINED", "SUMMARY"], rows) if rows else "no members")
    say_next_page(args, page.next, ["actions", "members", args.action_id])
    return 0


def flags_command(args: argparse.Namespace) -> int:
    if args.flags_command == "export":
        return export_command(args)
    if args.flags_command == "get" and args.model_id is not None:
        _refuse_paging(args)
    ops = operations(args, publishes=args.flags_command == "set")
    if args.flags_command == "set":
        # The CLI holds the deployment's Redis credentials, so it may do what an
        # approver may (its user is recorded beside --by); the API checks roles.
        flag = ops.set_flag(
            args.model_id, actor(args.by), args.reason,
            version=args.version, mode=args.mode, traffic_fraction=args.traffic, approver=True,
        )  # fmt: skip
        print(f"{flag.model_id}: set to {_flag_text(flag)}")
        return 0
    following = None
    if args.model_id is None:
        page = ops.flag_page(args.limit, args.after)
        found, following = {f.model_id: f for f in page.items}, page.next
    else:
        found = ops.flags()
        found = {args.model_id: found[args.model_id]} if args.model_id in found else {}
        if not found:
            print(
                f"{args.model_id}: no flag (the serving layer uses its default)",
                file=sys.stderr if args.json else sys.stdout,
            )
    if args.json:
        print_json_lines(flag.to_data() for _, flag in sorted(found.items()))
    elif found:
        rows = [
            [m, f.active_version, f.mode, f"{f.traffic_fraction:.0%}", f.revision, f.actor,
             short_time(f.updated_at), f.reason]
            for m, f in sorted(found.items())
        ]  # fmt: skip
        headers = ["MODEL", "VERSION", "MODE", "TRAFFIC", "REV", "BY", "UPDATED", "REASON"]
        print(table(headers, rows))
    elif args.model_id is None:
        print("no flags yet: every model is served as its default")
    say_next_page(args, following, ["flags", "get"])
    return 0


def _refuse_paging(args: argparse.Namespace) -> None:
    """``flags get MODEL`` shows one flag: ``--limit`` and ``--after``, which page the
    list of all flags, are refused there rather than ignored (before connecting)."""
    given = [
        option
        for option, value in (
            ("--limit", args.limit != args.limit_default),
            ("--after", args.after),
        )
        if value
    ]
    if given:
        named = " and ".join(given)
        raise InputError(
            f"{named} {'page' if len(given) > 1 else 'pages'} the list of all flags "
            f"(`riskstream flags get`); `flags get {args.model_id}` shows one flag: "
            f"leave {named} out"
        )


def _flag_text(flag: RoutingFlag) -> str:
    return (
        f"{flag.active_version} mode={flag.mode} traffic={flag.traffic_fraction:.0%} "
        f"rev={flag.revision} by {flag.actor}"
    )


def audit_command(args: argparse.Namespace) -> int:
    report = operations(args).verify_audit()
    if report.ok:
        print(f"audit trail intact: {report.length} entries, hash chain verified")
        return 0
    print(f"audit trail TAMPERED: {report.problem}", file=sys.stderr)
    return 1
