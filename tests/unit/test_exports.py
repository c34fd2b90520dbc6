"""The public surface: each package's ``__all__`` is exactly what we mean to export.

A name added to or dropped from a public package should be a decision, seen in
review as a change to this file, not a side effect of a refactoring.
"""

from __future__ import annotations

import importlib

import pytest

import riskstream

ERRORS = [
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

PUBLIC = {
    "riskstream": [*ERRORS, "__version__"],  # the error tree is re-exported at the top
    "riskstream.errors": ERRORS,
    "riskstream.config": [
        "DEFAULT_CONFIG",
        "EVENT_KINDS",
        "Config",
        "ProcessorSettings",
        "Topics",
        "load_config",
    ],
    "riskstream.core.detectors": [
        "ADWIN",
        "DDM",
        "DETECTOR_KINDS",
        "PACKED_KINDS",
        "EDDM",
        "HDDMA",
        "HDDMW",
        "KSWIN",
        "Alarm",
        "Detector",
        "OutOfRange",
        "PageHinkley",
        "Stuck",
        "Threshold",
        "WindowStats",
        "make_detector",
        "restore_detector",
    ],
    "riskstream.router": ["REQUIRED_ACL", "Decision", "FlagCache", "Router", "flag_keys"],
    "riskstream.cli": ["build_parser", "main"],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_exactly_the_public_surface(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    assert len(set(module.__all__)) == len(module.__all__), "a name listed twice"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is listed but missing"


def test_every_error_shares_the_root() -> None:
    for name in PUBLIC["riskstream.errors"]:
        assert issubclass(getattr(riskstream, name), riskstream.RiskstreamError), name
