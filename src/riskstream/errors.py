"""One root exception for everything riskstream raises on purpose.

Callers catch ``RiskstreamError`` to handle any of our failures; the subclasses say
which part of the system is at fault, so an operator knows where to look::

    RiskstreamError
    ├── ConfigError            a config file, option or setting is wrong or missing
    │                          (a bad monitor, no Kafka bootstrap, no Redis URL)
    ├── InputError             what an operator asked for is wrong (HTTP 400)
    │   └── NotFoundError      no incident, action or flag with that id (HTTP 404)
    ├── SchemaError            an event does not match its contract in ``schemas/``
    ├── BusError               Kafka (or the in-memory bus) failed; ``code`` keeps
    │                          librdkafka's error name where there is one
    ├── StateStoreError        Redis (or the in-memory store) failed or refused a write
    │   ├── FencedError        a stale owner tried to write state it no longer owns
    │   └── SnapshotError      saved state is corrupt, foreign or of an unknown version
    ├── ContainmentError       a containment action could not be applied (HTTP 409)
    │   └── NotPermittedError  a rule forbids this person this act (HTTP 403)
    └── TicketSystemError      Jira, GitHub or ServiceNow refused or did not answer;
                               ``retryable``, ``retry_after_s`` and ``status`` say more

Adapters translate third-party errors into these at the boundary with
``raise ... from exc``, so the cause stays attached, and word the message for the
person who has to act on it.  The HTTP API maps the tree to status codes in
:mod:`riskstream.api.errors`; the CLI prints the message and exits with 2.
"""

from __future__ import annotations

__all__ = [
    "BusError",
    "ConfigError",
    "ContainmentError",
    "FencedError",
    "InputError",
    "NotFoundError",
    "NotPermittedError",
    "RiskstreamError",
    "SchemaError",
    "SnapshotError",
    "StateStoreError",
    "TicketSystemError",
]


class RiskstreamError(Exception):
    """Base class of every error riskstream raises deliberately."""


class ConfigError(RiskstreamError):
    """A configuration file, option or setting is wrong or missing; the message
    names where and why (``file:line`` for the YAML config)."""


class InputError(RiskstreamError):
    """Something an operator asked for is wrong: an unknown status, an empty version.

    Kept apart from :class:`ConfigError` because the fix is in the request, not in
    the deployment: the API answers it with 400, a config error is the server's.
    """


class NotFoundError(InputError):
    """An incident, action or flag asked for by id does not exist."""


class SchemaError(RiskstreamError):
    """An event does not match its contract in ``schemas/``."""


class BusError(RiskstreamError):
    """The message bus (Kafka or the in-memory bus) failed.

    ``code`` is librdkafka's name for the error (``_TRANSPORT``,
    ``TOPIC_AUTHORIZATION_FAILED``, ...) when Kafka gave one, so a caller can
    decide on it without parsing the message; ``None`` otherwise.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StateStoreError(RiskstreamError):
    """The state store (Redis or in-memory) failed or refused a write."""


class FencedError(StateStoreError):
    """A write came from an owner whose claim on the partition was superseded."""


class SnapshotError(StateStoreError):
    """Saved state cannot be restored: corrupt, of another kind, or of an unknown version.

    A state error, not a config error: the settings may be fine, it is what was
    stored that is wrong (written by another version, or damaged in the store).
    """


class ContainmentError(RiskstreamError):
    """A containment action could not be applied."""


class NotPermittedError(ContainmentError):
    """A rule forbids this person this act, e.g. approving what they requested."""


class TicketSystemError(RiskstreamError):
    """A ticket system (Jira, GitHub Issues, ServiceNow) refused a request or did not answer.

    ``retryable`` says whether asking again later may work (a rate limit, a 5xx, a
    refused connection) and ``retry_after_s`` how long the system asked us to wait.
    ``ambiguous`` is set when the request may have been carried out although no
    answer came back (a timeout after sending): the caller must look before it
    repeats a write.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.ambiguous = ambiguous
