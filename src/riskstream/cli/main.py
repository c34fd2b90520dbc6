"""The ``riskstream`` command line: the parser, and ``main`` that runs a command.

Every command family registers itself the same way: a ``register(sub)`` function
that adds its parsers and sets ``handler`` on each, so ``main`` only parses and
calls ``args.handler(args)``.  Errors riskstream raises on purpose are printed for
a person (``riskstream: error: ...``) with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from riskstream import __version__
from riskstream.cli.containment import register as register_containment
from riskstream.cli.demo import register_demo, register_replay
from riskstream.cli.incidents import register as register_incidents
from riskstream.cli.reports import register as register_reports
from riskstream.cli.run import move_process_first
from riskstream.cli.run import register as register_run
from riskstream.cli.simulate import register as register_simulate
from riskstream.cli.state import register as register_state
from riskstream.cli.tokens import register as register_tokens
from riskstream.cli.tools import register_config, register_schemas
from riskstream.errors import RiskstreamError
from riskstream.logs import EscapingWriter, escape_logs, printable

__all__ = ["build_parser", "main"]

#: Commands whose output is for a person (unless --json, or a JSON report): what they
#: print is escaped, so values from events or operators cannot drive the terminal.
_HUMAN = frozenset(("incidents", "actions", "flags", "audit", "report", "config", "schemas"))

#: The command families, in the order ``riskstream --help`` lists their commands.
_REGISTER = (
    register_demo,
    register_run,
    register_replay,
    register_containment,
    register_incidents,
    register_reports,
    register_schemas,
    register_tokens,
    register_simulate,
    register_config,
    register_state,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskstream",
        description="Catch AI failures in live traffic and contain them in seconds.",
    )
    parser.add_argument("--version", action="version", version=f"riskstream {__version__}")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING (default: INFO for `run`, WARNING otherwise)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTER:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = move_process_first(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=(args.log_level or ("INFO" if args.command == "run" else "WARNING")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    escape_logs()
    stdout, stderr = sys.stdout, sys.stderr
    if args.command != "run":
        sys.stderr = EscapingWriter(stderr)
    json_out = getattr(args, "json", False) or getattr(args, "format", None) == "json"
    if args.command in _HUMAN and not json_out:
        sys.stdout = EscapingWriter(stdout)
    try:
        return int(args.handler(args))
    except RiskstreamError as exc:
        print(f"riskstream: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout, sys.stderr = stdout, stderr


if __name__ == "__main__":
    sys.exit(main())
