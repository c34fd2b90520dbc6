"""What the operator commands share: connection flags, the service, tables and JSON lines.

People read a table at 3 a.m.; scripts read ``--json``.  Both come from here so
every command prints the same way: one aligned table, or one JSON object per line
for a list and one object for a single thing.
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from riskstream.config import Config
from riskstream.core.timeutil import format_time

if TYPE_CHECKING:  # imported when used: every command, `run processor` too, loads this module
    from riskstream.services.operations import OperatorService

__all__ = [
    "actor",
    "connection_args",
    "fraction",
    "next_page_command",
    "operations",
    "page_args",
    "print_json",
    "print_json_lines",
    "say_next_page",
    "short_time",
    "table",
]

MAX_CELL = 60


def connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config (YAML); default: the shipped default")
    p.add_argument("--redis-url", help="Redis URL (env RISKSTREAM_REDIS_URL)")
    p.add_argument("--namespace", default="default", help="flag namespace (default: default)")
    p.add_argument(
        "--bootstrap",
        help="Kafka bootstrap servers (env RISKSTREAM_KAFKA_BOOTSTRAP); "
        "needed only by acts that publish: resolve, approve, reject, flags set",
    )


def operations(
    args: argparse.Namespace, publishes: bool = False, config: Config | None = None
) -> OperatorService:
    """The operator service for a command; Kafka only when the act publishes."""
    from prometheus_client import CollectorRegistry

    from riskstream.bootstrap import kafka_operations, redis_operations
    from riskstream.config import load_config

    config = config or load_config(args.config)
    if publishes:
        return kafka_operations(
            config, args.bootstrap, args.redis_url, CollectorRegistry(), args.namespace
        )
    return redis_operations(config, args.redis_url, args.namespace)


def fraction(text: str) -> float:
    """An argparse type: a share of traffic, 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0 or math.copysign(1.0, value) < 0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def actor(by: str) -> str:
    """``--by NAME`` as recorded: the name given (checked: not empty, not reserved,
    printable) with the operating-system user who ran the command beside it, since
    anyone with the Redis credentials can type any name.

    >>> actor("dr.lee").startswith("dr.lee (os user ")
    True
    """
    from riskstream.services.operations import check_actor

    if not by.strip():
        return by  # the service says what is missing
    check_actor(by.strip())
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        who = f"uid {os.getuid()}"
    return f"{by.strip()} (os user {who})"


def _page_size(text: str) -> int:
    """``--limit``: a whole number of at least 1 (argparse says which option when not)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a page holds at least 1, got {value}")
    return value


def page_args(p: argparse.ArgumentParser, default: int = 50) -> None:
    """``--limit`` and ``--after`` of a list command (and ``--json``, which every list
    has, is expected): what :func:`next_page_command` repeats."""
    p.add_argument(
        "--limit", type=_page_size, default=default, help=f"at most this many (default {default})"
    )
    p.add_argument("--after", help="the last ID of the previous page: list the ones after it")
    p.set_defaults(limit_default=default)


def next_page_command(
    args: argparse.Namespace,
    command: Sequence[str],
    options: Iterable[tuple[str, str | None]],
    after: str,
) -> str:
    """The command that shows the page after ``after``: ``riskstream`` ``command`` with
    the same ``options`` (those not None), ``--limit`` unless the default, ``--config``,
    ``--namespace`` unless the default and ``--json`` as given (not ``--redis-url``,
    whose URL may hold a password; it is usually in the environment).

    >>> args = argparse.Namespace(limit=2, limit_default=50, config=None,
    ...                           namespace="ward's", json=False)
    >>> print(next_page_command(args, ["flags", "get"], [], "m-2"))
    riskstream flags get --limit 2 --namespace 'ward'"'"'s' --after m-2
    """
    given = [
        *options,
        ("--limit", None if args.limit == args.limit_default else str(args.limit)),
        ("--config", args.config),
        ("--namespace", None if args.namespace == "default" else args.namespace),
    ]
    argv = ["riskstream", *command]
    for option, value in given:
        if value is not None:
            argv += [option, value]
    return shlex.join([*argv, *(["--json"] if args.json else []), "--after", after])


def say_next_page(
    args: argparse.Namespace,
    following: str | None,
    command: Sequence[str],
    options: Iterable[tuple[str, str | None]] = (),
) -> None:
    """Say on stderr the command that shows the next page, when the page's ``next``
    (``following``) says there is one; nothing on the last page, full or not."""
    if following is not None:
        print(f"(more: {next_page_command(args, command, options, following)})", file=sys.stderr)


def short_time(epoch: float | None) -> str:
    """``2026-12-06 07:36Z``: minutes are what a person compares in a table.

    >>> short_time(1796542560.693), short_time(None)
    ('2026-12-06 07:36Z', '-')
    """
    if epoch is None:
        return "-"
    return format_time(epoch)[:16].replace("T", " ") + "Z"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_cell: int = MAX_CELL) -> str:
    """Left-aligned columns, two spaces apart; cells past ``max_cell`` cut with an ellipsis.

    >>> print(table(["id", "what"], [["a1", "drift"], ["b", None]]))
    id  what
    a1  drift
    b   -
    """
    cells = [[_cell(v, max_cell) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: Any, max_cell: int) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= max_cell else text[: max_cell - 1] + "…"


def print_json_lines(items: Iterable[Mapping[str, Any]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for item in items:
        out.write(orjson.dumps(item).decode() + "\n")


def print_json(item: Mapping[str, Any], out: TextIO | None = None) -> None:
    (out or sys.stdout).write(orjson.dumps(item, option=orjson.OPT_INDENT_2).decode() + "\n")
