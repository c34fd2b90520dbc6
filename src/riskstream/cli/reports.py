"""``riskstream report``: a regulator's draft or a post-mortem skeleton from an incident.

The renderers are pure (:mod:`riskstream.core.reports`); this reads the record
and the model's current flag through the operator service, and writes the text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from riskstream.cli.common import connection_args, operations
from riskstream.config import load_config
from riskstream.core.reports import FORMATS, KINDS
from riskstream.errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="an EU AI Act Article 73 draft or a post-mortem skeleton of an incident"
    )
    p.add_argument("incident_id")
    p.add_argument(
        "--kind", choices=list(KINDS), required=True,
        help="art73: serious-incident report for the authority; postmortem: blameless skeleton",
    )  # fmt: skip
    p.add_argument("--format", choices=FORMATS, default="md", help="md (default) or json")
    p.add_argument("--output", help="write to this file (default: stdout)")
    connection_args(p)
    p.set_defaults(handler=report)


def report(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    ops = operations(args, config=config)
    text = ops.report(args.incident_id, args.kind, args.format, config.reporting)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {args.output}: {exc.strerror}") from exc
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
