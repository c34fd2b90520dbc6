"""The pure helpers of bench/detector_quality.py: streams, failures and the statistics.

The benchmark itself is a measurement, not a test; these check that what it feeds and
how it counts are what its setup text says.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "detector_quality.py"


@pytest.fixture(scope="module")
def dq() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_detector_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_poisson_upper_bound(dq: ModuleType) -> None:
    assert dq.poisson_upper(0) == pytest.approx(-math.log(0.05), abs=1e-6)
    assert dq.poisson_upper(3) == pytest.approx(7.7537, abs=1e-3)


def test_percentile(dq: ModuleType) -> None:
    assert dq.percentile([4, 1, 3, 2], 0.5) == 2.5
    assert dq.percentile([5], 0.9) == 5
    assert math.isnan(dq.percentile([], 0.5))


def test_times_keep_order_and_span(dq: ModuleType) -> None:
    rng = np.random.default_rng(1)
    regular = dq._times(rng, 10_000, 10.0)
    irregular = dq._times(rng, 10_000, 10.0, irregular=True)
    for ts in (regular, irregular):
        assert np.all(np.diff(ts) >= 0)
        assert np.allclose(ts * 1000, np.round(ts * 1000))  # whole milliseconds
    # jitter does not accumulate; an irregular stream covers the same span
    assert abs(regular[-1] - regular[0] - 9_999 * 10.0) < 1.0
    assert abs(irregular[-1] - regular[-1]) < 200.0
    assert abs(len(irregular) - 10_000) < 500


def test_families_draw_what_they_say(dq: ModuleType) -> None:
    rng = np.random.default_rng(2)
    ar = dq.sensor_base(dq.FAMILY["ar1-0.9"], rng, 50_000)
    lag1 = np.corrcoef(ar.noise[:-1], ar.noise[1:])[0, 1]
    assert lag1 == pytest.approx(0.9, abs=0.02)
    assert np.std(ar.noise) == pytest.approx(ar.sigma, rel=0.1)
    t3 = dq.sensor_base(dq.FAMILY["t3"], rng, 200_000)
    assert np.std(t3.noise) == pytest.approx(t3.sigma, rel=0.2)
    counts = dq.sensor_base(dq.FAMILY["poisson-1"], rng, 50_000).values()
    assert np.all(counts == np.round(counts)) and counts.mean() == pytest.approx(1.0, rel=0.05)
    zi = dq.sensor_base(dq.FAMILY["zero-inflated"], rng, 50_000).values()
    assert 0.9 < np.mean(zi == 0) < 0.99


def test_mixed_cadence_partition(dq: ModuleType) -> None:
    streams = dq.sensor_partition(dq.FAMILY["mixed-cadence"], np.random.default_rng(3), 6, 600)
    gaps = sorted(float(np.median(np.diff(s.ts))) for s in streams)
    assert gaps == pytest.approx([10, 600, 600, 3600, 3600, 3600], rel=0.06)
    ends = [s.ts[-1] for s in streams]
    assert max(ends) - min(ends) < 2 * 3600


def test_failures(dq: ModuleType) -> None:
    fam = dq.FAMILY["gaussian"]
    at, n = 100, 400
    b = dq.sensor_base(fam, np.random.default_rng(4), n)
    clean = b.values()

    def fail(name: str) -> tuple[np.ndarray, np.ndarray]:
        return dq.apply_failure(b, name, at, np.random.default_rng(5), ramp=100)

    ts, x = fail("shift-2s")
    assert np.allclose(x[:at], clean[:at]) and np.allclose(x[at:] - clean[at:], 2 * b.sigma)
    _, x = fail("ramp")
    assert np.allclose(x[:at], clean[:at])
    assert np.allclose(x[at + 99 :] - clean[at + 99 :], 2 * b.sigma)
    _, x = fail("stuck")
    assert np.all(x[at - 1 :] == clean[at - 1])
    ts, x = fail("missing")
    assert len(ts) == len(x) == at
    _, x = fail("spikes")
    jumped = np.flatnonzero(np.abs(x - clean) > 5 * b.sigma)
    assert len(jumped) == 5 and jumped[0] == at and jumped[-1] < at + 20
    _, x = fail("variance-x2")
    assert np.allclose(x[at:] - b.level[at:], math.sqrt(2) * b.noise[at:])


def test_rate_doubles_in_one_group_only(dq: ModuleType) -> None:
    fam = dq.FAMILY["harmful-0.2"]
    (before,) = dq.inference_partition(fam, np.random.default_rng(6), 1, 40_000)
    (after,) = dq.inference_partition(fam, np.random.default_rng(6), 1, 40_000, (0, 1, 3000))
    g = before.cols["group"]
    same = np.array_equal(before.cols["harmful"][g != 1], after.cols["harmful"][g != 1])
    assert same
    late = np.flatnonzero(g == 1)[3000:]
    ratio = after.cols["harmful"][late].mean() / before.cols["harmful"][late].mean()
    assert 1.7 < ratio < 2.3


def test_findings_are_matched_to_the_failed_stream(dq: ModuleType) -> None:
    assert dq.on_target("s03", ["s01", "s03"]) == "s03"
    assert dq.on_target("s03|vibration", ["s01", "s03"]) == "s03"
    assert dq.on_target("m0|g1", ["m0|g1"]) == "m0|g1"
    assert dq.on_target("m0", ["m0|g1"]) is None  # the model's score is not the group's rate
    assert dq.on_target("s04", ["s01"]) is None


def test_arrival_order_and_data_time(dq: ModuleType) -> None:
    glitch = dq.sensor_partition(dq.FAMILY["future-glitch"], np.random.default_rng(7), 2, 50_000)
    ahead = np.concatenate([s.data_ts - s.ts for s in glitch])
    assert set(np.round(ahead).tolist()) == {0.0, 3600.0}
    assert 1 <= np.count_nonzero(ahead) <= 20  # about one in 20,000
    batched = dq.sensor_partition(dq.FAMILY["batched"], np.random.default_rng(8), 2, 1000)
    live, late = batched
    assert live.data_ts is None
    lag = late.ts - late.data_ts
    assert np.all(lag >= 0) and lag.max() <= dq.BATCH_S + 5 and len(np.unique(late.ts)) < 20
    events = [e for _, e in dq._sensor_events(batched)]
    assert len(events) == 2000 and {e["sensor_id"] for e in events} == {"s00", "s01"}


def test_count_failures_keep_counts(dq: ModuleType) -> None:
    b = dq.sensor_base(dq.FAMILY["poisson-1"], np.random.default_rng(9), 40_000)
    at = 1000
    for name, mean, var in (("shift-2s", 3.0, 3.0), ("variance-x2", 1.0, 2.0)):
        _, x = dq.apply_failure(b, name, at, np.random.default_rng(10), ramp=100)
        assert np.all(x == np.round(x)) and np.all(x >= 0)
        assert np.array_equal(x[:at], b.values()[:at])
        assert x[at:].mean() == pytest.approx(mean, rel=0.05)
        assert x[at:].var() == pytest.approx(var, rel=0.1)


def test_score_shift_moves_one_model_only(dq: ModuleType) -> None:
    fam = dq.FAMILY["harmful-0.05"]
    (before,) = dq.inference_partition(fam, np.random.default_rng(11), 1, 20_000)
    (after,) = dq.inference_partition(fam, np.random.default_rng(11), 1, 20_000, None, (0, 5000))
    b, a = before.cols["score"], after.cols["score"]
    assert np.array_equal(b[:5000], a[:5000]) and np.all(a[5000:] > b[5000:])
    logit = np.log(a / (1 - a)) - np.log(b / (1 - b))
    assert np.allclose(logit[5000:], 1.0)
