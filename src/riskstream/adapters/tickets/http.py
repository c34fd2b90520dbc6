"""JSON over HTTP for the ticket systems, with the standard library only.

Each call is one request; every failure becomes a
:class:`~riskstream.errors.TicketSystemError` saying whether asking again may
help (408/425/429/5xx, a refused connection, a timeout) and how long the system
asked us to wait (``Retry-After``; GitHub's secondary limits answer 403 with it,
or with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``).  A timeout or a
dropped connection after a write was sent is *ambiguous*: the write may have
happened, so the ticketer looks before it writes again.

Credentials never appear in messages: they name the system and the host only.
"""

from __future__ import annotations

import base64
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from riskstream import __version__
from riskstream.adapters.webhooks import deadline_handlers, parse_retry_after
from riskstream.core.delivery import BODY_EXCERPT, RETRYABLE_STATUSES
from riskstream.errors import TicketSystemError

__all__ = ["MAX_ANSWER_BYTES", "JsonHttp", "basic_auth"]

MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""The longest answer read: a ticket or a search page is kilobytes; a system that
sends more (or without end) is refused rather than held in memory."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def basic_auth(user: str, secret: str) -> str:
    """An ``Authorization`` header value for HTTP basic auth.

    >>> basic_auth("a@b.c", "t")
    'Basic YUBiLmM6dA=='
    """
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


class JsonHttp:
    """Requests to one ticket system's API root, JSON in and out."""

    def __init__(
        self, name: str, base_url: str, headers: Mapping[str, str], timeout_s: float
    ) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._where = f"{parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"riskstream/{__version__}",
            **headers,
        }
        self._timeout = timeout_s
        # The timeout bounds the whole answer, not each read (a trickle would hold it).
        self._opener = urllib.request.build_opener(_NoRedirect(), *deadline_handlers())

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer (``None`` for an empty one) of ``method path``."""
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else orjson.dumps(body)
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        what = f"{self.name}: {method} {self._where}{path}"
        write = method != "GET"
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise self._refused(what, exc, write) from exc
        except urllib.error.URLError as exc:
            ambiguous = write and isinstance(exc.reason, TimeoutError)
            raise TicketSystemError(
                f"{what}: cannot reach it: {exc.reason}", retryable=True, ambiguous=ambiguous
            ) from exc
        except TimeoutError as exc:
            raise TicketSystemError(
                f"{what}: no answer within {self._timeout} s", retryable=True, ambiguous=write
            ) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise TicketSystemError(
                f"{what}: the connection failed: {exc!r}", retryable=True, ambiguous=write
            ) from exc
        if len(raw) > MAX_ANSWER_BYTES:
            raise TicketSystemError(
                f"{what}: the answer is over {MAX_ANSWER_BYTES:,} bytes, not read further "
                "(a ticket API answers in kilobytes: check the system's url in the config)",
                retryable=True,
                ambiguous=write,
            )
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TicketSystemError(
                f"{what}: the answer is not JSON: {raw[:200]!r}", retryable=False
            ) from exc

    def _refused(self, what: str, exc: urllib.error.HTTPError, write: bool) -> TicketSystemError:
        text = (exc.read(BODY_EXCERPT) if exc.fp is not None else b"").decode(errors="replace")
        status = exc.code
        now = time.time()
        retry_after = parse_retry_after(exc.headers.get("Retry-After"), now)
        if retry_after is None and exc.headers.get("x-ratelimit-remaining") == "0":
            reset = exc.headers.get("x-ratelimit-reset", "")
            retry_after = (
                max(float(reset) - now, 1.0) if reset.isascii() and reset.isdigit() else 60.0
            )
        retryable = status in RETRYABLE_STATUSES or status >= 500 or retry_after is not None
        advice = (
            "will try again"
            if retryable
            else "check the system's url, project/repo and credentials in the config"
        )
        return TicketSystemError(
            f"{what}: HTTP {status}: {text.strip()[:300]} ({advice})",
            retryable=retryable,
            status=status,
            retry_after_s=retry_after,
            ambiguous=write and status >= 500,  # a 5xx may come after the write was done
        )
