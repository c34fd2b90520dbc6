"""The operator surface over HTTP: the JSON API under ``/api/v1`` and the web console."""

from __future__ import annotations

from riskstream.api.app import build_app, serve
from riskstream.api.auth import ROLES, Principal, TokenTable, load_tokens, new_token, token_digest

__all__ = [
    "ROLES",
    "Principal",
    "TokenTable",
    "build_app",
    "load_tokens",
    "new_token",
    "serve",
    "token_digest",
]
