"""Commands that need no server: ``riskstream demo`` and ``riskstream replay``.

Both run the embedded pipeline (the same core, wired to the in-memory adapters),
so a newcomer sees incidents and containment with nothing installed, and an
operator can back-test a config on recorded events before deploying it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
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
    with _logs_to_file() as logged:
        results = run_demo(args.scenario, seed=args.seed, out=out, progress=sys.stderr)
    if args.json:
        for result in results:
            sys.stdout.write(orjson.dumps(result.summary()).decode() + "\n")
    if logged.counts:
        told = ", ".join(f"{n} {level.lower()}" for level, n in sorted(logged.counts.items()))
        print(f"riskstream demo: log records of the run ({told}) are in {logged.path}",
              file=sys.stderr)  # fmt: skip
    return 0


@dataclass(slots=True)
class _Logged:
    path: str
    counts: Counter[str] = field(default_factory=Counter)


@contextmanager
def _logs_to_file() -> Iterator[_Logged]:
    """Send log records to a file while the demo runs, counted by level.

    The services log what an operator should see (``notify trust-and-safety``); in the
    demo the timelines already tell it, and a log line between them breaks the story.
    The file is removed again if nothing was logged.
    """
    fd, path = tempfile.mkstemp(prefix="riskstream-demo-", suffix=".log")
    os.close(fd)
    logged = _Logged(path)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def count(record: logging.LogRecord) -> bool:
        logged.counts[record.levelname] += 1
        return True

    handler.addFilter(count)
    root = logging.getLogger()
    saved, root.handlers = root.handlers, [handler]
    try:
        yield logged
    finally:
        root.handlers = saved
        handler.close()
        if not logged.counts:
            os.unlink(path)


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
