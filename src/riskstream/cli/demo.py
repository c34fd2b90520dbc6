"""Commands that need no server: ``riskstream demo`` and ``riskstream replay``.

Both run the embedded pipeline (the same core, wired to the in-memory adapters),
so a newcomer sees incidents and containment with nothing installed, and an
operator can back-test a config on recorded events before deploying it.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from riskstream.errors import RiskstreamError

__all__ = ["register_demo", "register_replay"]


def register_demo(sub: Any) -> None:
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
    demo.set_defaults(handler=demo_command)


def register_replay(sub: Any) -> None:
    rep = sub.add_parser("replay", help="back-test monitors on a file of recorded events")
    rep.add_argument("--config", help="monitor config (YAML); default: the shipped default")
    rep.add_argument("--input", required=True, help="JSON lines of {topic, key, value} records")
    rep.add_argument("--output", help="incidents as JSON lines (default: stdout)")
    rep.add_argument("--topic", help="the input holds bare events of this topic")
    rep.add_argument(
        "--now",
        help="judge event times as if the wall clock read this RFC 3339 time (default: the "
        "wall clock); for recordings or simulations dated past today",
    )
    rep.set_defaults(handler=replay_command)


def demo_command(args: argparse.Namespace) -> int:
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


def replay_command(args: argparse.Namespace) -> int:
    from riskstream.config import load_config
    from riskstream.core.timeutil import parse_time
    from riskstream.replay import replay

    config = load_config(args.config)
    now = None
    if args.now:
        try:
            now = parse_time(args.now)
        except ValueError as exc:
            raise RiskstreamError(f"--now {args.now!r}: not an RFC 3339 time: {exc}") from exc
    with ExitStack() as stack:
        try:
            source = stack.enter_context(Path(args.input).open("rb"))
        except OSError as exc:
            raise RiskstreamError(f"--input {args.input}: {exc.strerror}") from exc
        out: IO[bytes] = (
            stack.enter_context(Path(args.output).open("wb")) if args.output else sys.stdout.buffer
        )
        replay(config, source, out, topic=args.topic, now=now)
    return 0
