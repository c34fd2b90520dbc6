"""River's modules, imported when a River detector is first built or restored.

``river.drift`` and ``river.stats`` import scipy: about 1.5 s of CPU at every start of
every process and CLI command, which the learned kinds of the shipped default config
never need.  Each accessor imports once; Python caches the module after that.
"""

from __future__ import annotations

from typing import Any


def drift() -> Any:
    from river import drift as river_drift

    return river_drift


def binary() -> Any:
    from river.drift import binary as river_binary

    return river_binary


def stats() -> Any:
    from river import stats as river_stats

    return river_stats


def rust_drift() -> Any:
    from river._river_rust import drift as river_rust_drift

    return river_rust_drift


def hddm_w_sample_info() -> Any:
    from river.drift.binary.hddm_w import SampleInfo

    return SampleInfo
