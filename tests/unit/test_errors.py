"""The error tree drawn in ``riskstream.errors`` and how the API answers each branch."""

from __future__ import annotations

import pytest

from riskstream.api.errors import from_exception
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
)


def test_a_corrupt_snapshot_is_a_state_error_not_a_config_error() -> None:
    assert issubclass(SnapshotError, StateStoreError)
    assert not issubclass(SnapshotError, ConfigError)


def test_bus_errors_keep_librdkafkas_code() -> None:
    assert BusError("broker down", code="_TRANSPORT").code == "_TRANSPORT"
    assert BusError("no broker").code is None


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InputError("mode 'x': use one of ..."), 400),
        (ConfigError("bad setting"), 400),
        (NotFoundError("no incident 'x'"), 404),
        (NotPermittedError("not your own request"), 403),
        (ContainmentError("already decided"), 409),
        (SnapshotError("adwin: snapshot field 'window' ..."), 503),
        (FencedError("stale owner"), 503),
        (BusError("broker down", code="_TRANSPORT"), 503),
    ],
)
def test_the_api_answers_each_branch_of_the_tree(exc: RiskstreamError, status: int) -> None:
    answer = from_exception(exc)
    assert answer is not None and answer.status == status


def test_every_error_has_one_root() -> None:
    for cls in (ConfigError, InputError, SchemaError, BusError, StateStoreError, ContainmentError):
        assert issubclass(cls, RiskstreamError)
