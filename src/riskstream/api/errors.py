"""Errors as the API's callers see them: a status, a code, and what to do.

Every refusal is ``{"error": code, "message": text}``; the text comes from the
core (which already says what was wrong and what to do) or from the request
checks here.  Anything unexpected becomes a 500 with no detail: the traceback
goes to the API's log, never to the client.
"""

from __future__ import annotations

from riskstream.errors import (
    BusError,
    ConfigError,
    ContainmentError,
    InputError,
    NotFoundError,
    NotPermittedError,
    StateStoreError,
)

__all__ = ["ApiError", "from_exception"]


class ApiError(Exception):
    """A refusal decided at the HTTP edge: bad parameters, no token, role too low."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after  # seconds, for a 429's Retry-After header


def from_exception(exc: Exception) -> ApiError | None:
    """The HTTP form of one of our errors; ``None`` for anything unexpected."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotFoundError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, InputError | ConfigError):  # ConfigError: a setting in the request
        return ApiError(400, "bad_request", str(exc))
    if isinstance(exc, NotPermittedError):
        return ApiError(403, "not_permitted", str(exc))
    if isinstance(exc, ContainmentError):  # already decided, no flag to change, ...
        return ApiError(409, "conflict", str(exc))
    # SnapshotError is a StateStoreError: stored state is bad, not the request.
    if isinstance(exc, StateStoreError | BusError):  # the adapters' messages say what to check
        return ApiError(503, "unavailable", str(exc))
    return None
