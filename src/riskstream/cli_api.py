"""The API commands: ``riskstream run api`` and ``riskstream api-token``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from riskstream.config.environment import API_TOKENS_ENV as TOKENS_ENV

__all__ = ["COMMANDS", "add_parsers", "add_run_args", "run_api"]


def add_run_args(run: argparse.ArgumentParser) -> None:
    """The ``run api`` options, on the shared ``run`` parser."""
    run.add_argument("--host", default="127.0.0.1", help="api: address to listen on")
    run.add_argument("--port", type=int, default=8080, help="api: port (default 8080; 0: any)")
    run.add_argument("--tokens", help=f"api: the tokens file (YAML; env {TOKENS_ENV})")


def add_parsers(sub: Any) -> None:
    token = sub.add_parser(
        "api-token", help="make an API token for a person: prints it once, and its file entry"
    )
    token.add_argument("--user", required=True, help="who it is for (recorded on every write)")
    token.add_argument(
        "--role", required=True, choices=["viewer", "operator", "approver"], help="what they may do"
    )


def run_api(args: argparse.Namespace) -> int:
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
            f"no tokens file: pass --tokens FILE or set {TOKENS_ENV}; "
            "add people to it with `riskstream api-token --user NAME --role ROLE`"
        )
    tokens = load_tokens(path)
    if not len(tokens):
        raise ConfigError(f"{path}: lists no users, so nobody could use the API")
    config = load_config(args.config)
    registry = CollectorRegistry()
    ops = kafka_operations(config, args.bootstrap, args.redis_url, registry, args.namespace)
    app = build_app(ops, config, tokens, ApiMetrics(registry))
    serve_metrics(registry, args.metrics_port)
    logging.getLogger("riskstream").info(
        "api: %d users from %s, namespace %r, metrics on :%s",
        len(tokens), path, args.namespace, args.metrics_port,
    )  # fmt: skip
    asyncio.run(serve(app, args.host, args.port))
    return 0


def api_token(args: argparse.Namespace) -> int:
    from riskstream.api.auth import check_user, new_token, token_digest

    check_user(args.user, args.role)
    token = new_token()
    print(f"token for {args.user} ({args.role}), shown only this once; hand it over privately:")
    print(f"  {token}")
    print("add this line under `users:` in the API's tokens file (it holds only the sha256):")
    name = json.dumps(args.user)  # quoted: a name like "null" stays a string in YAML
    print(f"  - {{name: {name}, role: {args.role}, sha256: {token_digest(token)}}}")
    return 0


COMMANDS = {"api-token": api_token}
