"""riskstream: catch AI failures in live traffic and contain them in seconds."""

from __future__ import annotations

from riskstream.errors import (
    BusError,
    ConfigError,
    ContainmentError,
    FencedError,
    InputError,
    NotFoundError,
    NotPermittedError,
    RiskstreamError,
    SchemaError,
    SnapshotError,
    StateStoreError,
    TicketSystemError,
)

__version__ = "0.1.0.dev0"

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
    "__version__",
]
