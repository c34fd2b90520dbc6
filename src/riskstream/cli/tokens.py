"""``riskstream api-token``: a token for one person of the operator API."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    token = sub.add_parser(
        "api-token", help="make an API token for a person: prints it once, and its file entry"
    )
    token.add_argument("--user", required=True, help="who it is for (recorded on every write)")
    token.add_argument(
        "--role", required=True, choices=["viewer", "operator", "approver"], help="what they may do"
    )
    token.set_defaults(handler=api_token)


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
