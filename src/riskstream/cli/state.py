"""``riskstream state``: the processors' saved state, for operators.

``state held`` lists quarantined streams; ``state reset --monitor NAME [--stream KEY]``
deletes a monitor's (or one stream's) saved state so it starts afresh.  Both read
the Redis state store of the config's consumer group (``processor.group_id``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from riskstream.adapters.redis.state import RedisStateStore
    from riskstream.config import Config

__all__ = ["register"]


def register(sub: Any) -> None:
    state = sub.add_parser("state", help="the processors' saved detector state")
    actions = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    reset = actions.add_parser(
        "reset",
        help="delete a monitor's (or one stream's) saved state: it starts afresh",
        description="Delete the saved state of a monitor, or of one of its streams, in "
        "every partition, releasing held streams.  Stop the processors first: a running "
        "one is fenced off the partitions reset and stops processing them until restarted.",
    )
    reset.add_argument("--monitor", required=True, help="the monitor's name")
    reset.add_argument(
        "--stream",
        help="only this stream key, as `riskstream state held` shows it: the key fields' "
        "values joined by |, each with \\, | and control characters escaped (default: all "
        "the monitor's streams)",
    )
    held = actions.add_parser("held", help="list quarantined streams and why")
    for p in (reset, held):
        p.add_argument("--config", help="config (YAML); default: the shipped default")
        p.add_argument("--redis-url", help="Redis URL (env RISKSTREAM_REDIS_URL)")
    reset.set_defaults(handler=reset_command)
    held.set_defaults(handler=held_command)


def _store(args: argparse.Namespace) -> tuple[RedisStateStore, Config]:
    from riskstream.adapters.redis.state import RedisStateStore
    from riskstream.bootstrap import redis_url_from_env
    from riskstream.config import load_config

    config = load_config(args.config)
    return RedisStateStore.from_url(args.redis_url or redis_url_from_env()), config


def reset_command(args: argparse.Namespace) -> int:
    from riskstream.errors import InputError
    from riskstream.services.state_admin import reset_state

    store, config = _store(args)
    names = {m.name for m in config.monitors}
    if args.monitor not in names:
        known = ", ".join(sorted(names))
        raise InputError(f"no monitor {args.monitor!r} in {config.source}; known: {known}")
    scope = config.processor.group_id
    try:
        results = reset_state(store, scope, args.monitor, args.stream)
    finally:
        store.close()
    what = f"stream {args.stream!r} of monitor" if args.stream else "monitor"
    for r in results:
        print(f"{r.partition[0]}[{r.partition[1]}]: deleted {r.deleted} state keys")
    total = sum(r.deleted for r in results)
    print(
        f"reset {what} {args.monitor!r} in group {scope!r}: {total} state keys deleted in "
        f"{len(results)} partitions; it starts afresh when the processors start"
    )
    return 0


def held_command(args: argparse.Namespace) -> int:
    from riskstream.services.state_admin import held_streams

    store, config = _store(args)
    try:
        held = held_streams(store, config.processor.group_id)
    finally:
        store.close()
    for (topic, number), monitor, key, raw in held:
        record = orjson.loads(raw)
        shown = key.encode("unicode_escape").decode()
        print(
            f"{topic}[{number}] {monitor} {shown}: {record.get('skipped', 0)} events skipped; "
            f"{record.get('why', '')}"
        )
    if not held:
        print("no held streams")
    return 0
