"""``riskstream flags export --format flagd``: the routing flags as a flagd file.

Reads through a :class:`~riskstream.router.Router` (the serving layer's own view,
kept fresh from Redis pub/sub), so the file says what Python services see.  With
``--watch`` it rewrites the file (in one rename) whenever a flag changes, and
keeps the last good file while Redis is unreachable.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

from riskstream.errors import ConfigError, StateStoreError

__all__ = ["add_export_parser", "export_command"]

log = logging.getLogger("riskstream")


def add_export_parser(f_sub: Any) -> None:
    p = f_sub.add_parser(
        "export", help="the flags as a flagd flag definition file (--watch keeps it in step)"
    )
    p.add_argument("--format", choices=["flagd"], default="flagd", help="file format (flagd)")
    p.add_argument("--output", help="the file to write (default: stdout; --watch needs one)")
    p.add_argument("--watch", action="store_true", help="rewrite the file on every change")
    p.add_argument(
        "--interval", type=float, default=0.5, help="--watch: how often to look (s, default 0.5)"
    )
    p.add_argument("--redis-url", help="Redis URL (env RISKSTREAM_REDIS_URL)")
    p.add_argument("--namespace", default="default", help="flag namespace (default: default)")


def export_command(args: argparse.Namespace) -> int:
    from riskstream.bootstrap import redis_url_from_env
    from riskstream.flagd import flagd_document, write_atomically
    from riskstream.router import Router

    if args.watch and not args.output:
        raise ConfigError("flags export --watch needs --output FILE (the file flagd watches)")
    url = args.redis_url or redis_url_from_env()
    with Router(url, namespace=args.namespace, start_timeout_s=5.0) as router:
        if router.stale:
            raise StateStoreError(
                f"cannot read the routing flags from Redis ({router!r}); "
                "check --redis-url and that Redis is up"
            )
        if not args.watch:
            doc = flagd_document(router.flags(), args.namespace)
            if args.output:
                write_atomically(Path(args.output), doc)
                print(f"{args.output}: {len(doc['flags'])} flags", file=sys.stderr)
            else:
                sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
            return 0
        return _watch(router, Path(args.output), args.namespace, args.interval)


def _watch(router: Any, path: Path, namespace: str, interval: float) -> int:
    from riskstream.flagd import flagd_document, write_atomically

    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    was_stale = False
    log.info("keeping %s in step with namespace %r (Ctrl-C to stop)", path, namespace)
    while not stopping.is_set():
        stale = router.stale
        if stale and not was_stale:
            log.warning("Redis unreachable: %s keeps the last known flags", path)
        was_stale = stale
        if not stale and write_atomically(path, flagd_document(router.flags(), namespace)):
            log.info("%s: rewritten (%d models)", path, len(router.flags()))
        stopping.wait(interval)
    return 0
