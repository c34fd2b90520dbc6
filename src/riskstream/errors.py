"""One root exception for everything riskstream raises on purpose.

Callers catch ``RiskstreamError`` to handle any of our failures; the subclasses say
which part of the system is at fault, so an operator knows where to look.  Adapters
translate third-party errors into these with ``raise ... from exc`` and keep the
original error code in the message.
"""

from __future__ import annotations

__all__ = [
    "BusError",
    "ConfigError",
    "ContainmentError",
    "FencedError",
    "NotFoundError",
    "NotPermittedError",
    "RiskstreamError",
    "SchemaError",
    "StateStoreError",
]


class RiskstreamError(Exception):
    """Base class of every error riskstream raises deliberately."""


class ConfigError(RiskstreamError):
    """A configuration file or option is wrong; the message names where and why."""


class SchemaError(RiskstreamError):
    """An event does not match its contract in ``schemas/``."""


class BusError(RiskstreamError):
    """The message bus (Kafka or the in-memory bus) failed."""


class StateStoreError(RiskstreamError):
    """The state store (Redis or in-memory) failed or refused a write."""


class FencedError(StateStoreError):
    """A write came from an owner whose claim on the partition was superseded."""


class ContainmentError(RiskstreamError):
    """A containment action could not be applied."""


class NotPermittedError(ContainmentError):
    """A rule forbids this person this act, e.g. approving what they requested."""


class NotFoundError(RiskstreamError):
    """An incident, action or flag asked for by id does not exist."""
