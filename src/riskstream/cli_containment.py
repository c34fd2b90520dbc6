"""The containment commands: the worker, approvals, flags and the audit trail."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

import orjson

from riskstream.core.timeutil import format_time

__all__ = ["COMMANDS", "add_parsers"]


def _connection_args(p: argparse.ArgumentParser, kafka: bool = True) -> None:
    p.add_argument("--config", help="config (YAML); default: the shipped default")
    p.add_argument("--redis-url", help="Redis URL (env RISKSTREAM_REDIS_URL)")
    p.add_argument("--namespace", default="default", help="flag namespace (default: default)")
    if kafka:
        p.add_argument(
            "--bootstrap", help="Kafka bootstrap servers (env RISKSTREAM_KAFKA_BOOTSTRAP)"
        )


def add_parsers(sub: Any) -> None:
    actions = sub.add_parser("actions", help="list, approve or reject containment actions")
    a_sub = actions.add_subparsers(dest="action_command", required=True, metavar="ACTION")
    a_list = a_sub.add_parser("list", help="actions waiting for approval (or --status)")
    _connection_args(a_list, kafka=False)
    a_list.add_argument(
        "--status", default="pending", help="pending|approved|rejected|expired|applied|all"
    )
    a_list.add_argument("--json", action="store_true", help="one JSON object per line")
    for verb in ("approve", "reject"):
        p = a_sub.add_parser(
            verb, help=f"{verb} a pending action (carried out at once if approved)"
        )
        p.add_argument("action_id")
        p.add_argument("--by", required=True, help="your name: recorded with the decision")
        p.add_argument("--note", default="", help="why, for the record")
        _connection_args(p)

    flags = sub.add_parser("flags", help="show routing flags")
    f_sub = flags.add_subparsers(dest="flags_command", required=True, metavar="ACTION")
    f_get = f_sub.add_parser("get", help="one model's flag, or all")
    f_get.add_argument("model_id", nargs="?")
    f_get.add_argument("--json", action="store_true")
    _connection_args(f_get, kafka=False)

    audit = sub.add_parser("audit", help="the routing audit trail")
    au_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = au_sub.add_parser("verify", help="recompute the hash chain; exit 1 if tampered")
    _connection_args(verify, kafka=False)


def run_containment(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from riskstream.adapters.faust_app import build_app
    from riskstream.adapters.kafka_bus import KafkaSettings
    from riskstream.bootstrap import kafka_containment
    from riskstream.config import load_config
    from riskstream.metrics import serve_metrics

    config = load_config(args.config)
    registry = CollectorRegistry()
    service = kafka_containment(config, args.bootstrap, args.redis_url, registry, args.namespace)
    serve_metrics(registry, args.metrics_port)
    bootstrap = KafkaSettings.from_env(args.bootstrap).bootstrap
    app = build_app(
        config, bootstrap, service,
        app_id=args.app_id, replication_factor=args.replication_factor,
        commit_every=args.commit_every, commit_interval_s=args.commit_interval,
    )  # fmt: skip
    from faust.worker import Worker

    logging.getLogger("riskstream").info(
        "containment worker: %d playbooks, metrics on :%s",
        len(config.containment.playbooks), args.metrics_port,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    Worker(app, loglevel=args.log_level or "info", quiet=True).execute_from_commandline()  # exits


def _stores(args: argparse.Namespace) -> tuple[Any, Any]:
    from riskstream.adapters.redis_flags import RedisApprovalStore, RedisFlagStore
    from riskstream.bootstrap import redis_url_from_env

    url = args.redis_url or redis_url_from_env()
    return (
        RedisFlagStore.from_url(url, namespace=args.namespace),
        RedisApprovalStore.from_url(url, namespace=args.namespace),
    )


def actions(args: argparse.Namespace) -> int:
    if args.action_command == "list":
        _, approvals = _stores(args)
        status = None if args.status == "all" else args.status
        items = approvals.list(status)
        if args.json:
            for p in items:
                sys.stdout.write(orjson.dumps(p.to_data()).decode() + "\n")
            return 0
        if not items:
            print(f"no {args.status} actions")
        for p in items:
            due = "never" if p.expires_at is None else format_time(p.expires_at)
            print(
                f"{p.action_id}  {p.status:<8} {p.action['kind']:<16} {p.model_id:<24} "
                f"incident {p.incident_id}  requested {format_time(p.requested_at)}  "
                f"expires {due}" + (f"\n    note: {p.note}" if p.note else "")
            )
        return 0
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_containment
    from riskstream.config import load_config

    service = kafka_containment(
        load_config(args.config),
        args.bootstrap,
        args.redis_url,
        CollectorRegistry(),
        args.namespace,
    )
    status = "approved" if args.action_command == "approve" else "rejected"
    decided = service.decide(args.action_id, status, args.by, args.note)
    print(f"{decided.action_id}: {decided.status} by {decided.decided_by}")
    return 0


def flags(args: argparse.Namespace) -> int:
    store, _ = _stores(args)
    found = store.all() if args.model_id is None else {args.model_id: store.get(args.model_id)}
    for model_id, flag in sorted(found.items()):
        if flag is None:
            print(f"{model_id}: no flag (the serving layer uses its default)")
        elif args.json:
            print(orjson.dumps(flag.to_data()).decode())
        else:
            print(
                f"{model_id}: {flag.active_version} mode={flag.mode} "
                f"traffic={flag.traffic_fraction:.0%} rev={flag.revision} "
                f"by {flag.actor} at {format_time(flag.updated_at)}\n    {flag.reason}"
            )
    return 0


def audit(args: argparse.Namespace) -> int:
    store, _ = _stores(args)
    report = store.verify_audit()
    if report.ok:
        print(f"audit trail intact: {report.length} entries, hash chain verified")
        return 0
    print(f"audit trail TAMPERED: {report.problem}", file=sys.stderr)
    return 1


COMMANDS = {"actions": actions, "flags": flags, "audit": audit}
