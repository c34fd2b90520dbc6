"""Who is calling the API, and what their role lets them do.

Tokens are bearer secrets handed to people; the tokens file keeps only each
token's sha256, so a leaked file (or a backup of it) lets nobody in.  Roles are
ordered, each including the one below: a viewer reads; an operator also
acknowledges, resolves and overrides flags; an approver also approves and
rejects held actions (human oversight: EU AI Act Article 14).

The file is YAML with line numbers in its errors, like the monitor config::

    users:
      - {name: dr.okafor, role: approver, sha256: 4f0c...}
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from riskstream.config.nodes import Problem, YamlNode, string
from riskstream.errors import ConfigError

__all__ = [
    "ROLES",
    "FailedLogins",
    "Principal",
    "TokenTable",
    "load_tokens",
    "new_token",
    "token_digest",
]

ROLES = ("viewer", "operator", "approver")
"""Lowest first; each role may do everything the ones before it may."""

TOKEN_PREFIX = "rs_"
# checked with fullmatch: with match, ``$`` also matched before a last newline ("ana\n")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RESERVED = "riskstream"  # system actors in the audit trail are riskstream/...


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person: the name that goes into the audit trail, and a role."""

    name: str
    role: str

    def may(self, needed: str) -> bool:
        """Whether this role includes ``needed``.

        >>> ana = Principal("ana", "operator")
        >>> ana.may("viewer"), ana.may("operator"), ana.may("approver")
        (True, True, False)
        """
        return ROLES.index(self.role) >= ROLES.index(needed)


def token_digest(token: str) -> str:
    """The hex sha256 the tokens file stores instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits), recognisable by its prefix in a secret scanner."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_user(name: str, role: str) -> None:
    """Refuse names that cannot be told apart in an audit trail, and unknown roles."""
    if name.lower() == _RESERVED or name.lower().startswith(_RESERVED + "/"):
        raise ConfigError(f"user name {name!r} is reserved for riskstream's own processes")
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"user name {name!r}: use 1-128 letters, digits and . _ @ + - "
            "(starting with a letter or digit)"
        )
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: use one of {', '.join(ROLES)}")


class TokenTable:
    """Token digests to people; looked up by digest, so the token is never compared."""

    def __init__(self, users: Mapping[str, Principal], source: str = "<tokens>") -> None:
        self._by_digest = dict(users)
        self.source = source

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, token: str) -> Principal | None:
        """Who holds ``token``; None for no one.  aiohttp hands header bytes that are no
        UTF-8 over as surrogates, which encode to no digest: no one's token either (it
        raised, a 500).

        >>> TokenTable({}).authenticate("rs_\\udcff") is None
        True
        """
        try:
            digest = token_digest(token)
        except UnicodeEncodeError:
            return None
        return self._by_digest.get(digest)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<tokens>") -> TokenTable:
        try:
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else source
            raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
        if root is None:
            raise ConfigError(f"{source}: the tokens file is empty; add users with api-token")
        try:
            return cls(_users(YamlNode(root, "$")), source)
        except Problem as p:
            raise ConfigError(f"{source}:{p.node.line}: {p.node.path}: {p.message}") from None


def _users(root: YamlNode) -> dict[str, Principal]:
    users: dict[str, Principal] = {}
    names: set[str] = set()
    top = root.known(("users",))
    if "users" not in top:
        raise Problem(root, "expected a 'users:' list")
    for node in top["users"].seq():
        fields = node.known(("name", "role", "sha256"))
        for required in ("name", "role", "sha256"):
            if required not in fields:
                raise Problem(node, f"missing {required!r} (each user needs name, role, sha256)")
        name, role, digest = (string(fields[k]) for k in ("name", "role", "sha256"))
        try:
            check_user(name, role)
        except ConfigError as exc:
            raise Problem(node, str(exc)) from None
        if not _DIGEST.fullmatch(digest):
            raise Problem(
                fields["sha256"],
                "expected the token's sha256 as 64 lower-case hex digits (never the token "
                "itself): `riskstream api-token` prints it",
            )
        if name in names:
            raise Problem(node, f"user {name!r} is listed twice; give each person one entry")
        if digest in users:
            raise Problem(node, "this sha256 is already another user's: issue a new token")
        names.add(name)
        users[digest] = Principal(name, role)
    return users


class FailedLogins:
    """Token checks per client, refused for a while after repeated failures.

    A token is 256 random bits, so guessing one is hopeless; what this stops is a
    client hammering the API with tokens (a leaked list, a misconfigured script)
    and filling the log.  After ``failures`` bad tokens from one client within
    ``window_s`` seconds, that client's requests with a bad token are refused with
    429 for ``lockout_s`` seconds (no longer counted); a good token still
    passes, since behind a proxy all users are one client, and clears its count.
    At most ``clients`` clients are remembered (the oldest forgotten first), so a
    flood of addresses cannot grow memory without bound.

    >>> now = [0.0]
    >>> limiter = FailedLogins(failures=3, window_s=60, lockout_s=30, clock=lambda: now[0])
    >>> for _ in range(3):
    ...     limiter.failed("10.0.0.7")
    >>> limiter.retry_after("10.0.0.7"), limiter.retry_after("10.0.0.8")
    (30.0, 0.0)
    >>> now[0] = 31.0
    >>> limiter.retry_after("10.0.0.7")
    0.0
    """

    def __init__(
        self,
        failures: int = 10,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures, self._window, self._lockout = failures, window_s, lockout_s
        self._clients, self._clock = clients, clock
        self._seen: OrderedDict[str, list[float]] = OrderedDict()  # client -> failure times
        self._locked: dict[str, float] = {}  # client -> locked until

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> None:
        now = self._clock()
        times = [t for t in self._seen.pop(client, []) if t > now - self._window]
        times.append(now)
        if len(times) >= self._failures:
            self._locked[client] = now + self._lockout
            times = []
        self._seen[client] = times
        while len(self._seen) > self._clients:
            self._seen.popitem(last=False)
        if len(self._locked) > self._clients:
            for old in [c for c, until in self._locked.items() if until <= now]:
                del self._locked[old]

    def succeeded(self, client: str) -> None:
        self._seen.pop(client, None)


def load_tokens(path: str | Path) -> TokenTable:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tokens file: {exc.strerror}") from exc
    return TokenTable.from_yaml(text, str(path))
