"""The ``riskstream`` command line: one sub-command per job."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from riskstream import (
    __version__,
    cli_api,
    cli_containment,
    cli_incidents,
    cli_notifier,
    cli_reports,
    cli_simulate,
    cli_tools,
)
from riskstream.errors import RiskstreamError

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskstream",
        description="Catch AI failures in live traffic and contain them in seconds.",
    )
    parser.add_argument("--version", action="version", version=f"riskstream {__version__}")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING (default: INFO for `run`, WARNING otherwise)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the embedded pipeline on synthetic data (no servers)")
    demo.add_argument("--seed", type=int, default=7, help="random seed for the data (default 7)")
    demo.add_argument(
        "--scenario",
        action="append",
        choices=["chatbot", "manufacturing", "medical"],
        help="run only this situation (repeatable); default: all three",
    )
    demo.add_argument(
        "--json", action="store_true", help="one machine-readable summary per situation"
    )

    run = sub.add_parser("run", help="run a long-lived process")
    run.add_argument(
        "process", choices=["processor", "containment", "notifier", "api"], help="which process"
    )
    _config_arg(run)
    run.add_argument("--bootstrap", help="Kafka bootstrap servers (env RISKSTREAM_KAFKA_BOOTSTRAP)")
    run.add_argument("--redis-url", help="Redis URL (env RISKSTREAM_REDIS_URL)")
    run.add_argument(
        "--metrics-port", type=int, default=9400, help="Prometheus /metrics port (0: off)"
    )
    run.add_argument("--namespace", default="default", help="containment: flag namespace")
    run.add_argument(
        "--replication-factor",
        type=int,
        default=1,
        help="containment: replication of faust's own topics (default 1)",
    )
    run.add_argument(
        "--app-id",
        default="riskstream-containment",
        help="containment: the faust app id, which is also its consumer group",
    )
    run.add_argument(
        "--commit-every",
        type=int,
        default=1,
        help="containment: commit offsets after this many incidents (default 1)",
    )
    run.add_argument(
        "--commit-interval",
        type=float,
        default=2.8,
        help="containment: ...or after this many seconds (default 2.8)",
    )
    run.add_argument(
        "--max-poll-interval-ms",
        type=int,
        default=30_000,
        help="a member silent this long loses its partitions (default 30000)",
    )
    cli_api.add_run_args(run)

    rep = sub.add_parser("replay", help="back-test monitors on a file of recorded events")
    _config_arg(rep)
    rep.add_argument("--input", required=True, help="JSON lines of {topic, key, value} records")
    rep.add_argument("--output", help="incidents as JSON lines (default: stdout)")
    rep.add_argument("--topic", help="the input holds bare events of this topic")

    cli_containment.add_parsers(sub)
    cli_incidents.add_parsers(sub)
    cli_reports.add_parsers(sub)
    cli_tools.add_parsers(sub)
    cli_api.add_parsers(sub)
    cli_simulate.add_parser(sub)

    cfg = sub.add_parser("config", help="check a config file")
    cfg.add_argument("action", choices=["check"])
    cfg.add_argument("file", nargs="?", help="the file (default: the shipped default)")
    return parser


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="monitor config (YAML); default: the shipped default")


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=(args.log_level or ("INFO" if args.command == "run" else "WARNING")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    try:
        return int(_COMMANDS[args.command](args))
    except RiskstreamError as exc:
        print(f"riskstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _demo(args: argparse.Namespace) -> int:
    import io

    import orjson

    from riskstream.demo import run_demo

    out = io.StringIO() if args.json else sys.stdout
    print(
        "riskstream demo: three situations on the embedded pipeline (no servers)", file=sys.stderr
    )
    results = run_demo(args.scenario, seed=args.seed, out=out, progress=sys.stderr)
    if args.json:
        for result in results:
            sys.stdout.write(orjson.dumps(result.summary()).decode() + "\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.process == "containment":
        return cli_containment.run_containment(args)
    if args.process == "notifier":
        return cli_notifier.run_notifier(args)
    if args.process == "api":
        return cli_api.run_api(args)
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_processor
    from riskstream.config import load_config
    from riskstream.metrics import serve_metrics

    config = load_config(args.config)
    registry = CollectorRegistry()
    processor = kafka_processor(
        config, args.bootstrap, args.redis_url, registry, args.max_poll_interval_ms
    )
    serve_metrics(registry, args.metrics_port)
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processor.start()
    logging.getLogger("riskstream").info(
        "processor running: %d monitors, metrics on :%s", len(config.monitors), args.metrics_port
    )
    processor.run(lambda: stopping)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from riskstream.config import load_config
    from riskstream.replay import replay

    config = load_config(args.config)
    with ExitStack() as stack:
        try:
            source = stack.enter_context(Path(args.input).open("rb"))
        except OSError as exc:
            raise RiskstreamError(f"--input {args.input}: {exc.strerror}") from exc
        out: IO[bytes] = (
            stack.enter_context(Path(args.output).open("wb")) if args.output else sys.stdout.buffer
        )
        replay(config, source, out, topic=args.topic)
    return 0


def _config(args: argparse.Namespace) -> int:
    from riskstream.config import load_config

    config = load_config(args.file)
    print(cli_tools.config_summary(config))
    for r in config.notifications.receivers:
        print(f"  notifies {r.name}: {r.kind}, min severity {r.min_severity}")
    return 0


_COMMANDS = {
    "demo": _demo,
    "run": _run,
    "replay": _replay,
    "config": _config,
    **cli_containment.COMMANDS,
    **cli_incidents.COMMANDS,
    **cli_reports.COMMANDS,
    **cli_tools.COMMANDS,
    **cli_api.COMMANDS,
    "simulate": cli_simulate.run,
}


if __name__ == "__main__":
    sys.exit(main())
