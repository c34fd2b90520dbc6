"""JSON over HTTP(S) to webhook receivers, with the standard library only.

One POST per call, no retries here: the notifier decides about retries, with
the policy in :mod:`riskstream.core.delivery`.  Every failure becomes an
:class:`AttemptResult` instead of an exception, so a receiver's trouble can
never stop the notifier.  Redirects are not followed (a POST redirected is a
config mistake worth seeing), credentials in the URL become basic auth, proxies
from ``HTTPS_PROXY``/``NO_PROXY`` are honoured, and TLS certificates are verified.

URLs can hold secrets (Slack's do), so results name only the host and port.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from riskstream import __version__
from riskstream.core.delivery import BODY_EXCERPT, AttemptResult, classify_status

__all__ = ["HttpWebhook", "parse_retry_after"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx surfaces as an HTTPError, classified permanent


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> parse_retry_after("7", 0.0), parse_retry_after("soon", 0.0)
    (7.0, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
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
        self._opener = urllib.request.build_opener(_NoRedirect())
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
