"""``riskstream run PROCESS``: the four long-lived processes, each with its own options.

Each process has its own sub-parser listing only what it uses, and each option an
environment variable can set says which one.  Options of another process are
still accepted (hidden, and ignored with a warning), and options may come before
the process name, so deployment scripts written for the single ``run`` parser of
earlier versions keep working.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from riskstream.config.environment import API_TOKENS_ENV, KAFKA_BOOTSTRAP_ENV, REDIS_URL_ENV

__all__ = ["PROCESSES", "move_process_first", "register", "warn_ignored"]

log = logging.getLogger("riskstream")

Option = tuple[str, dict[str, Any]]


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free one, or off where so said)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return int(text)


_CONFIG: Option = ("--config", {"help": "monitor config (YAML); default: the shipped default"})
_BOOTSTRAP: Option = (
    "--bootstrap",
    {"help": f"Kafka bootstrap servers (env {KAFKA_BOOTSTRAP_ENV})"},
)
_REDIS_URL: Option = ("--redis-url", {"help": f"Redis URL (env {REDIS_URL_ENV})"})
_METRICS_PORT: Option = (
    "--metrics-port",
    {"type": port, "default": 9400, "help": "Prometheus /metrics port (0: off)"},
)
_MAX_POLL: Option = (
    "--max-poll-interval-ms",
    {
        "type": int,
        "default": 30_000,
        "help": "a member silent this long loses its partitions (default 30000)",
    },
)
_NAMESPACE: Option = ("--namespace", {"default": "default", "help": "flag namespace"})
_CONTAINMENT: tuple[Option, ...] = (
    (
        "--replication-factor",
        {"type": int, "default": 1, "help": "replication of faust's own topics (default 1)"},
    ),
    (
        "--app-id",
        {
            "default": "riskstream-containment",
            "help": "the faust app id, which is also its consumer group",
        },
    ),
    (
        "--commit-every",
        {"type": int, "default": 1, "help": "commit offsets after this many incidents (default 1)"},
    ),
    (
        "--commit-interval",
        {"type": float, "default": 2.8, "help": "...or after this many seconds (default 2.8)"},
    ),
)
_API: tuple[Option, ...] = (
    ("--host", {"default": "127.0.0.1", "help": "address to listen on"}),
    ("--port", {"type": port, "default": 8080, "help": "port (default 8080; 0: any)"}),
    ("--tokens", {"help": f"the tokens file (YAML; env {API_TOKENS_ENV})"}),
)

_COMMON = (_CONFIG, _BOOTSTRAP)
_OPTIONS: dict[str, tuple[Option, ...]] = {
    "processor": (*_COMMON, _REDIS_URL, _METRICS_PORT, _MAX_POLL),
    "containment": (*_COMMON, _REDIS_URL, _METRICS_PORT, _NAMESPACE, *_CONTAINMENT),
    "notifier": (*_COMMON, _REDIS_URL, _METRICS_PORT, _MAX_POLL, _NAMESPACE),
    "api": (*_COMMON, _REDIS_URL, _METRICS_PORT, _NAMESPACE, *_API),
    "ticketer": (*_COMMON, _REDIS_URL, _METRICS_PORT, _NAMESPACE),
}
_HELP = {
    "processor": "detection: Kafka in, incidents out",
    "containment": "playbooks: incidents in, routing flags out (the faust worker)",
    "notifier": "webhooks: incidents in, pages and messages out",
    "api": "operator API under /api/v1 and the web console",
    "ticketer": "tickets: one per incident group in Jira, GitHub Issues or ServiceNow",
}
#: Every option any process takes, by its flag: what older scripts may pass to any of them.
_ALL_OPTIONS: dict[str, Option] = {o[0]: o for opts in _OPTIONS.values() for o in opts}


def register(sub: Any) -> None:
    """Add ``run`` and one sub-parser per process to the sub-commands ``sub``."""
    run = sub.add_parser("run", help="run a long-lived process")
    processes = run.add_subparsers(dest="process", required=True, metavar="PROCESS")
    for name, handler in PROCESSES.items():
        p = processes.add_parser(name, help=_HELP[name], description=f"{name}: {_HELP[name]}")
        own = _OPTIONS[name]
        for flag, kwargs in own:
            p.add_argument(flag, **kwargs)
        for flag, _kwargs in _ALL_OPTIONS.values():
            if all(flag != o[0] for o in own):  # accepted for old scripts, not listed
                p.add_argument(flag, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.set_defaults(handler=_with_warning(name, handler))


def move_process_first(argv: Sequence[str]) -> list[str]:
    """``run --config F processor`` -> ``run processor --config F``.

    The single ``run`` parser of earlier versions took its options before or after
    the process name; the sub-parsers need the name first.
    """
    args = list(argv)
    command = 0
    while command < len(args) and args[command].startswith("-"):  # riskstream's own options
        command += 1 if "=" in args[command] or args[command] != "--log-level" else 2
    if command >= len(args) or args[command] != "run":
        return args
    at = command + 1
    i = at
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-h", "--help"):
        i += 1 if "=" in args[i] else 2  # every run option takes a value
    if i < len(args) and i != at and args[i] in PROCESSES:
        args.insert(at, args.pop(i))
    return args


def warn_ignored(process: str, args: argparse.Namespace) -> None:
    """Say which given options belong to another process (they change nothing here)."""
    own = {o[0] for o in _OPTIONS[process]}
    for flag in _ALL_OPTIONS:
        dest = flag.lstrip("-").replace("-", "_")
        if flag not in own and dest in vars(args):
            print(
                f"riskstream: warning: {flag} does not apply to `run {process}`; ignored",
                file=sys.stderr,
            )


def _with_warning(
    process: str, handler: Callable[[argparse.Namespace], int]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        warn_ignored(process, args)
        return handler(args)

    return run


def run_processor(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_processor
    from riskstream.config import load_config
    from riskstream.metrics import serve_metrics

    config = load_config(args.config)
    registry = CollectorRegistry()
    processor = kafka_processor(
        config, args.bootstrap, args.redis_url, registry, args.max_poll_interval_ms
    )
    serve_metrics(registry, args.metrics_port, health=processor.health)
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tune_gc()
    processor.start()
    log.info(
        "processor running: %d monitors, metrics on :%s", len(config.monitors), args.metrics_port
    )
    processor.run(lambda: stopping)
    return 0


#: The collector's generation-0 threshold in the processor (CPython's default: 700).
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the processor's hot path.

    Nearly everything the processor allocates per event (the decoded dict, a record)
    is freed by reference counting at once; what lives long (modules, the config,
    detector state) is never cyclic garbage.  With CPython's defaults the collector
    still ran some 2,300 times per million events and its full collections walked
    every object loaded at start: 1.56 s per million events, 0.18 s with this (wall
    time in the collector, bench/end_to_end.py on a busy machine).  So what exists
    after start-up is frozen (``gc.freeze``: never scanned again) and young
    collections run 30x less often; cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run_containment(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from riskstream.adapters.faust_app import build_app
    from riskstream.bootstrap import kafka_backfill, kafka_worker
    from riskstream.config import load_config
    from riskstream.config.environment import KafkaSettings
    from riskstream.metrics import either, serve_metrics

    config = load_config(args.config)
    registry = CollectorRegistry()
    service, guard, metrics = kafka_worker(
        config, args.bootstrap, args.redis_url, registry, args.namespace
    )
    serve_metrics(registry, args.metrics_port, health=either(metrics.store, metrics.bus))
    bootstrap = KafkaSettings.from_env(args.bootstrap).bootstrap
    app = build_app(
        config, bootstrap, service, health=metrics.store, bus=metrics.bus, guard=guard,
        app_id=args.app_id, replication_factor=args.replication_factor,
        commit_every=args.commit_every, commit_interval_s=args.commit_interval,
        backfill=kafka_backfill(config, args.bootstrap, args.redis_url, args.namespace),
    )  # fmt: skip
    from faust.worker import Worker

    log.info(
        "containment worker: %d playbooks, metrics on :%s",
        len(config.containment.playbooks), args.metrics_port,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    Worker(app, loglevel=args.log_level or "info", quiet=True).execute_from_commandline()  # exits


def run_notifier(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_notifier
    from riskstream.config import load_config
    from riskstream.metrics import serve_metrics

    config = load_config(args.config)
    settings = config.notifications
    if not settings.receivers:
        log.error(
            "notifier: nothing to do: %s has no notifications.receivers; add at least one "
            "(alertmanager, pagerduty or slack; see the README's Notifications section)",
            config.source,
        )
        return 2
    registry = CollectorRegistry()
    stopping = threading.Event()  # its wait() is the notifier's sleep: a stop cuts a backoff short
    redis_url = args.redis_url or os.environ.get(REDIS_URL_ENV) or None
    notifier = kafka_notifier(
        config, args.bootstrap, registry, args.max_poll_interval_ms, stopping.wait,
        redis_url, args.namespace,
    )  # fmt: skip
    if redis_url is None:
        log.warning(
            'notifier: no Redis URL (--redis-url or %s): a "resolved" on the incidents '
            "topic is sent as it stands, so whoever can write the topic can close pages; "
            "give it the containment worker's Redis to send only confirmed resolutions",
            REDIS_URL_ENV,
        )
    serve_metrics(registry, args.metrics_port)

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    notifier.start()
    log.info(
        "notifier running: receivers %s, dead letters to %s, metrics on :%s",
        ", ".join(f"{r.name} ({r.kind})" for r in settings.receivers),
        settings.dead_letter_topic, args.metrics_port,
    )  # fmt: skip
    notifier.run(stopping.is_set)
    log.info("notifier stopped; delivered notifications are committed")
    return 0


def run_ticketer(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import redis_ticketer
    from riskstream.config import load_config
    from riskstream.metrics import serve_metrics

    config = load_config(args.config)
    registry = CollectorRegistry()
    stopping = threading.Event()
    ticketer = redis_ticketer(
        config, args.redis_url, registry, args.namespace, stopping.wait, args.bootstrap
    )
    serve_metrics(registry, args.metrics_port)

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "ticketer running: %s, every %.1f s, namespace %r, metrics on :%s%s",
        ", ".join(f"{s.name} ({s.kind})" for s in config.tickets.systems),
        config.tickets.interval_s, args.namespace, args.metrics_port,
        "; a ticket closed by a person resolves its group" if ticketer.resolves_on_close else "",
    )  # fmt: skip
    ticketer.run(stopping.is_set)
    log.info("ticketer stopped")
    return 0


def run_api(args: argparse.Namespace) -> int:
    import asyncio

    from prometheus_client import CollectorRegistry

    from riskstream.api import build_app, load_tokens, serve
    from riskstream.bootstrap import kafka_operations
    from riskstream.config import load_config
    from riskstream.config.environment import api_tokens_path
    from riskstream.errors import ConfigError
    from riskstream.metrics import ApiMetrics, serve_metrics

    path = api_tokens_path(args.tokens)
    if not path:
        raise ConfigError(
            f"no tokens file: pass --tokens FILE or set {API_TOKENS_ENV}; "
            "add people to it with `riskstream api-token --user NAME --role ROLE`"
        )
    tokens = load_tokens(path)
    if not len(tokens):
        raise ConfigError(f"{path}: lists no users, so nobody could use the API")
    config = load_config(args.config)
    registry = CollectorRegistry()
    ops = kafka_operations(config, args.bootstrap, args.redis_url, registry, args.namespace)
    from riskstream.adapters.redis.epoch import RedisFlagEpoch
    from riskstream.bootstrap import redis_url_from_env

    probe = RedisFlagEpoch.from_url(
        args.redis_url or redis_url_from_env(), namespace=args.namespace
    )
    app = build_app(ops, config, tokens, ApiMetrics(registry), write_probe=probe.probe_write)
    serve_metrics(registry, args.metrics_port)
    log.info(
        "api: %d users from %s, namespace %r, metrics on :%s",
        len(tokens), path, args.namespace, args.metrics_port,
    )  # fmt: skip
    asyncio.run(serve(app, args.host, args.port))
    return 0


#: The processes ``run`` starts, by name, in the order ``--help`` lists them.
PROCESSES: dict[str, Callable[[argparse.Namespace], int]] = {
    "processor": run_processor,
    "containment": run_containment,
    "notifier": run_notifier,
    "api": run_api,
    "ticketer": run_ticketer,
}
