"""JSON over HTTP(S) to webhook receivers, with the standard library only.

One POST per call, no retries here: the notifier decides about retries, with
the policy in :mod:`riskstream.core.delivery`.  Every failure becomes an
:class:`AttemptResult` instead of an exception, so a receiver's trouble can
never stop the notifier.  Redirects are not followed (a POST redirected is a
config mistake worth seeing), credentials in the URL become basic auth, proxies
from ``HTTPS_PROXY``/``NO_PROXY`` are honoured, and TLS certificates are verified.
The timeout bounds the whole answer, not each read of it, so a receiver that trickles
its answer is cut off like one that says nothing.

URLs can hold secrets (Slack's do), so results name only the host and port.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import socket
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from riskstream import __version__
from riskstream.core.delivery import BODY_EXCERPT, AttemptResult, classify_status

__all__ = ["HttpWebhook", "deadline_handlers", "parse_retry_after"]


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each given only what is left of the whole POST's time: a
    socket timeout alone bounds one read, so a receiver trickling its answer a byte
    at a time (within it each time) held the notifier as long as it liked."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        # The socket's own raw file: it holds the socket open until closed, as urllib
        # closes the socket itself once the answer's headers are read.
        self._raw = sock.makefile("rb", buffering=0)
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive in time")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``http.client.HTTPResponse`` asks of a socket: ``makefile``, here on a
    reader that keeps to the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _response_class(deadline: float) -> Any:
    class _Response(http.client.HTTPResponse):
        def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(_DeadlineSocket(sock, deadline), *args, **kwargs)  # type: ignore[arg-type]

    return _Response


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else 60.0
        self.response_class = _response_class(time.monotonic() + timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else 60.0
        self.response_class = _response_class(time.monotonic() + timeout)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


def deadline_handlers() -> list[urllib.request.BaseHandler]:
    """urllib handlers under which a request's ``timeout`` bounds its whole answer."""
    return [_HTTPHandler(), _HTTPSHandler()]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx surfaces as an HTTPError, classified permanent


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> parse_retry_after("7", 0.0), parse_retry_after("soon", 0.0), parse_retry_after("\xb2", 0.0)
    (7.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():  # str.isdigit is Unicode's: '²' (a Latin-1 byte) is a digit too
        return float(value) if value.isascii() else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def _where(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _basic_auth(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``https://user:password@host/path`` as basic auth, which urllib does not do itself."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, headers
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    host = parts.netloc.rpartition("@")[2]
    auth = "Basic " + base64.b64encode(credentials.encode()).decode()
    return urlunsplit(parts._replace(netloc=host)), {**headers, "Authorization": auth}


class HttpWebhook:
    """The :class:`riskstream.ports.Webhook` over urllib."""

    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirect(), *deadline_handlers())
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"riskstream/{__version__}",
        }

    def post(self, url: str, body: bytes, timeout: float) -> AttemptResult:
        target, headers = _basic_auth(url, self._headers)
        request = urllib.request.Request(target, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return classify_status(response.status, response.read(BODY_EXCERPT))
        except urllib.error.HTTPError as exc:
            text = exc.read(BODY_EXCERPT) if exc.fp is not None else b""
            retry_after = parse_retry_after(exc.headers.get("Retry-After"), time.time())
            return classify_status(exc.code, text, retry_after)
        except urllib.error.URLError as exc:
            return AttemptResult("retryable", f"cannot reach {_where(url)}: {exc.reason}")
        except TimeoutError:
            return AttemptResult("retryable", f"no answer from {_where(url)} within {timeout} s")
        except (http.client.HTTPException, OSError) as exc:
            return AttemptResult("retryable", f"connection to {_where(url)} failed: {exc!r}")
        except ValueError as exc:  # a URL urllib cannot use at all
            return AttemptResult("permanent", f"unusable URL for {_where(url)}: {exc}")
