"""Checks that need no server: ``riskstream schemas validate`` and ``riskstream config check``.

Both answer "will this work?" before anything is deployed, so a bad file is
found on a laptop, with its line number, instead of on the dead-letter topic.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from riskstream.config import Config
from riskstream.errors import ConfigError
from riskstream.schema_files import SCHEMA_NAMES, check_text

__all__ = ["config_summary", "register_config", "register_schemas"]


def register_schemas(sub: Any) -> None:
    schemas = sub.add_parser("schemas", help="check event files against the contracts")
    schemas.set_defaults(handler=schemas_command)
    s_sub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    validate = s_sub.add_parser(
        "validate", help="check a JSON or JSON-lines file of events; exit 1 if any is bad"
    )
    validate.add_argument("file", help="one JSON event, a JSON list, or JSON lines")
    validate.add_argument(
        "--schema", choices=SCHEMA_NAMES, help="check every event against this one "
        "(default: guessed from each event's keys)",
    )  # fmt: skip


def register_config(sub: Any) -> None:
    cfg = sub.add_parser("config", help="check a config file")
    cfg.add_argument("action", choices=["check"])
    cfg.add_argument("file", nargs="?", help="the file (default: the shipped default)")
    cfg.set_defaults(handler=config_command)


def config_command(args: argparse.Namespace) -> int:
    from riskstream.config import load_config

    config = load_config(args.file)
    print(config_summary(config))
    for r in config.notifications.receivers:
        print(f"  notifies {r.name}: {r.kind}, min severity {r.min_severity}")
    return 0


def schemas_command(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.file}: cannot read: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{args.file}: line {line}: not UTF-8 ({exc.reason} at byte {exc.start}); events "
            "are JSON in UTF-8: convert the file (iconv -t UTF-8) or fix that line"
        ) from exc
    results = check_text(text, args.schema)
    bad = [r for r in results if not r.ok]
    for r in bad:
        print(f"{args.file}: {r.where}: {r.schema or '?'}: {r.problem}")
    if not results:
        print(f"{args.file}: no events")
        return 1
    print(f"{len(results)} events checked, {len(bad)} bad" + ("" if bad else ": all valid"))
    return 1 if bad else 0


def config_summary(config: Config) -> str:
    """What the file will do, in a few lines: enough to spot a wrong topic or a lost model."""
    policy = config.containment
    t = config.topics
    lines = [
        f"{config.source}: ok, {len(config.monitors)} monitors, {len(policy.playbooks)} "
        f"playbooks, {len(policy.models)} models",
        f"  topics    in: {t.inference}, {t.sensor}, {t.label}, {t.change}; "
        f"out: {t.incidents}, {t.routing_changes}, {t.dead_letter}",
    ]
    for m in config.monitors:
        lines.append(f"  monitor   {m.name}: reads {m.reads}, key {'+'.join(m.key)}, {m.detector}")
    for p in policy.playbooks:
        steps = ", ".join(
            a.kind + (" (approval)" if a.approval.required else "") for a in p.actions
        )
        lines.append(f"  playbook  {p.name}: {steps}")
    reporting = config.reporting
    for model_id, model in sorted(policy.models.items()):
        name = reporting.system(model_id).name
        lines.append(
            f"  model     {model_id}: risk class {model.risk_class}" + (f", {name}" if name else "")
        )
    if reporting.provider.name:
        lines.append(f"  provider  {reporting.provider.name}")
    if reporting.raci:
        lines.append(f"  raci      for {', '.join(pattern for pattern, _ in reporting.raci)}")
    return "\n".join(lines)
