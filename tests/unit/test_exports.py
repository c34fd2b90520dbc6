from __future__ import annotations

import riskstream


def test_public_names_are_exported_and_exist() -> None:
    for name in riskstream.__all__:
        assert hasattr(riskstream, name), name
    assert issubclass(riskstream.ConfigError, riskstream.RiskstreamError)
