"""Every detector kind: exact resume from a JSON-round-tripped snapshot, detection of
an obvious change, and helpful refusals of bad settings and foreign snapshots."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from riskstream.core.detectors import (
    DETECTOR_KINDS,
    HDDMW,
    KSWIN,
    Alarm,
    Detector,
    OutOfRange,
    PageHinkley,
    Stuck,
    Threshold,
    WindowStats,
    make_detector,
    restore_detector,
)
from riskstream.core.detectors.base import BaseDetector
from riskstream.errors import ConfigError, SnapshotError

Stream = Callable[[random.Random], list[float]]


# --------------------------------------------------------------------------- streams


def _gauss(rng: random.Random, n: int, every: int, shift: float, sigma: float = 1.0) -> list[float]:
    """Gaussian noise whose mean steps between 0 and ``shift`` every ``every`` samples."""
    return [rng.gauss(shift * ((i // every) % 2), sigma) for i in range(n)]


def _bernoulli(rng: random.Random, n: int, every: int, p: float) -> list[float]:
    """0/1 errors whose rate doubles (p -> 2p) and halves again every ``every`` samples."""
    return [float(rng.random() < p * (1 + (i // every) % 2)) for i in range(n)]


def _unit(rng: random.Random, n: int, every: int, p: float) -> list[float]:
    """Values in [0, 1] with mean p, doubling to 2p every other segment."""
    return [rng.random() * 2 * p * (1 + (i // every) % 2) for i in range(n)]


def _excursions(rng: random.Random, n: int = 1500) -> list[float]:
    """Noise around 0 with short bursts far above and below."""
    xs = []
    for i in range(n):
        phase = i % 150
        level = 6.0 if 100 <= phase < 100 + rng.randint(0, 8) else 0.0
        level = -6.0 if 40 <= phase < 40 + rng.randint(0, 3) else level
        xs.append(rng.gauss(level, 1.0))
    return xs


def _stuck_runs(rng: random.Random, n: int = 1500, jitter: float = 0.0) -> list[float]:
    """Noise with runs where the value freezes (plus optional tiny jitter)."""
    xs: list[float] = []
    while len(xs) < n:
        xs.extend(rng.gauss(0.0, 1.0) for _ in range(rng.randint(20, 120)))
        frozen = round(rng.gauss(0.0, 1.0), 3)
        xs.extend(frozen + rng.uniform(-jitter, jitter) for _ in range(rng.randint(5, 90)))
    return xs[:n]


@dataclass(frozen=True)
class Case:
    kind: str
    params: Mapping[str, Any]
    stream: Stream
    label: str = ""
    seeds: tuple[int, ...] = (1, 2, 3)
    cuts: int = 5

    @property
    def id(self) -> str:
        return f"{self.kind}{'-' + self.label if self.label else ''}"


CASES = [
    Case("adwin", {}, lambda r: _gauss(r, 3000, 600, 1.0)),
    Case("page-hinkley", {"delta": 0.5, "threshold": 25}, lambda r: _gauss(r, 3000, 500, 1.5)),
    Case("page-hinkley", {}, lambda r: _gauss(r, 3000, 500, 1.0), "river-defaults"),
    Case(
        "page-hinkley",
        {"delta": 0.2, "threshold": 15, "mode": "up", "alpha": 0.999},
        lambda r: _gauss(r, 3000, 400, 1.0),
        "up",
    ),
    Case(
        "page-hinkley",
        {"delta": 0.2, "threshold": 15, "mode": "down", "min_instances": 5},
        lambda r: _gauss(r, 3000, 400, -1.0),
        "down",
    ),
    Case(
        "kswin",
        {"alpha": 0.001, "window_size": 60, "stat_size": 20},
        lambda r: _gauss(r, 700, 230, 2.0),
        seeds=(1, 2),
        cuts=3,
    ),
    Case("ddm", {}, lambda r: _bernoulli(r, 4000, 800, 0.1)),
    Case("eddm", {}, lambda r: _bernoulli(r, 4000, 800, 0.05)),
    Case("hddm-a", {}, lambda r: _unit(r, 4000, 800, 0.15)),
    Case(
        "hddm-a",
        {"two_sided_test": True},
        lambda r: _bernoulli(r, 4000, 800, 0.15),
        "two-sided",
    ),
    Case("hddm-w", {}, lambda r: _bernoulli(r, 4000, 800, 0.25)),
    Case(
        "hddm-w",
        {"two_sided_test": True, "lambda_val": 0.1},
        lambda r: _bernoulli(r, 4000, 800, 0.3),
        "two-sided",
    ),
    Case("threshold", {"upper": 3.0, "lower": -3.0, "consecutive": 2}, _excursions),
    Case("threshold", {"upper": 3.0}, _excursions, "upper-only"),
    Case("out-of-range", {"low": -3.5, "high": 3.5}, _excursions),
    Case("stuck", {"window": 10}, _stuck_runs),
    Case(
        "stuck",
        {"window": 8, "tolerance": 0.05},
        lambda r: _stuck_runs(r, jitter=0.02),
        "tolerance",
    ),
]


def _json(snap: Mapping[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(snap))


def _assert_plain(obj: object, where: str = "snapshot") -> None:
    """Only JSON types: no tuples, numpy scalars, deques or objects."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str, f"{where}: key {k!r}"
            _assert_plain(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert obj is None or type(obj) in (str, int, float, bool), f"{where}: {obj!r}"
        if type(obj) is float:
            assert math.isfinite(obj), f"{where}: non-finite float {obj!r} is not JSON"


# --------------------------------------------------------------------------- 1. exact resume


def test_every_kind_is_covered_by_the_resume_property() -> None:
    assert {c.kind for c in CASES} == set(DETECTOR_KINDS)


@pytest.mark.parametrize(
    ("case", "seed"),
    [pytest.param(c, s, id=f"{c.id}-{s}") for c in CASES for s in c.seeds],
)
def test_restored_detector_raises_the_same_alarms_as_one_that_never_stopped(
    case: Case, seed: int
) -> None:
    xs = case.stream(random.Random(seed))
    straight = make_detector(case.kind, case.params)
    expected = [straight.update(x) for x in xs]
    alarms = [a for a in expected if a is not None]
    assert alarms, "the stream must raise alarms, so the resets are exercised too"

    # Cut before anything (fresh state: River's infinities), at random points, and
    # right before and right after the first alarms (the reset boundary).
    rng = random.Random(seed * 7919)
    cuts = {0, len(xs) - 1, *rng.sample(range(len(xs)), case.cuts)}
    cuts |= {i for a in alarms[:2] for i in (a.index - 1, a.index)}

    resumed: Detector = make_detector(case.kind, case.params)
    got: list[Alarm | None] = []
    for i, x in enumerate(xs):
        if i in cuts:
            snap = resumed.snapshot()
            _assert_plain(snap)
            data = _json(snap)
            assert data == snap
            resumed = restore_detector(data)
            assert resumed.snapshot() == snap, "restore must be lossless"
        got.append(resumed.update(x))
    assert got == expected
    assert resumed.snapshot() == straight.snapshot()
    assert _json(straight.snapshot()) == straight.snapshot()


def test_snapshots_keep_non_finite_floats_as_strings_and_restore_them() -> None:
    ph = PageHinkley()
    snap = ph.snapshot()
    assert snap["river"]["min_increase"] == "inf"
    assert restore_detector(_json(snap)).snapshot() == snap

    det = Stuck(window=3)
    for x in [1.0, math.nan, math.inf, -math.inf]:
        det.update(x)
    snap = _json(det.snapshot())
    assert snap["values"] == ["nan", "inf", "-inf"]
    again = restore_detector(snap)
    assert again.snapshot() == snap
    more = [2.0, 2.0, 2.0, 2.0]
    # repr, since the evidence holds a NaN mean (NaN != NaN)
    assert repr([again.update(x) for x in more]) == repr([det.update(x) for x in more])


def test_hddm_w_rebuilds_rivers_rust_weighted_means_bit_for_bit() -> None:
    det = HDDMW(lambda_val=0.1, two_sided_test=True)
    rng = random.Random(5)
    for _ in range(777):
        det.update(rng.random() * 0.6)
    again = HDDMW.restore(_json(det.snapshot()))
    for name in ("_total", "_s1_incr", "_s2_incr", "_s1_decr", "_s2_decr"):
        a, b = getattr(det._det, name), getattr(again._det, name)
        assert a._ewma._ewmean.__getstate__() == b._ewma._ewmean.__getstate__(), name
        assert (a._is_init, a._ibc) == (b._is_init, b._ibc)


def test_kswin_restores_its_window_and_random_generator_exactly() -> None:
    det = KSWIN(seed=9)
    rng = random.Random(9)
    for _ in range(250):
        det.update(rng.gauss(0.0, 1.0))
    again = KSWIN.restore(_json(det.snapshot()))
    assert again._det._rng.getstate() == det._det._rng.getstate()
    assert list(again._det.window) == list(det._det.window)
    assert again._det.window.maxlen == det._det.window.maxlen


# River may grow new state in a future release; this makes the snapshot code fail
# loudly instead of silently dropping it.
RIVER_STATE = {
    "page-hinkley": {
        "_drift_detected", "min_instances", "delta", "threshold", "alpha", "mode",
        "_x_mean", "_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease",
        "_test_drift",
    },
    "kswin": {
        "_drift_detected", "alpha", "window_size", "stat_size", "seed", "p_value", "n",
        "window", "_rng",
    },
    "ddm": {
        "_drift_detected", "_warning_detected", "warm_start", "warning_threshold",
        "drift_threshold", "_p", "_p_min", "_s_min", "_ps_min",
    },
    "eddm": {
        "_drift_detected", "_warning_detected", "warm_start", "alpha", "beta",
        "_error_distances", "_n", "_last_error", "_n_errors", "_p2s_prime_max",
    },
    "hddm-a": {
        "_drift_detected", "_warning_detected", "drift_confidence", "warning_confidence",
        "two_sided_test", "_x_min", "_x_max", "_z",
    },
    "hddm-w": {
        "_drift_detected", "_warning_detected", "drift_confidence", "warning_confidence",
        "lambda_val", "two_sided_test", "_total", "_s1_decr", "_s1_incr", "_s2_decr",
        "_s2_incr", "_incr_cutpoint", "_decr_cutpoint",
    },
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(RIVER_STATE))
def test_river_state_attributes_are_the_ones_the_snapshot_covers(kind: str) -> None:
    det: Any = make_detector(kind, {})
    assert set(vars(det._det)) == RIVER_STATE[kind]


# --------------------------------------------------------------------------- 2. detection


def _first_alarm_from(det: Detector, xs: list[float], start: int) -> tuple[Alarm | None, int]:
    """The first alarm at index > start, and how many came before."""
    early = 0
    for x in xs:
        a = det.update(x)
        if a is not None:
            if a.index > start:
                return a, early
            early += 1
    return None, early


def test_page_hinkley_detects_a_shift_with_its_onset_close_to_the_change() -> None:
    change = 2000
    errors, delays = [], []
    for seed in range(30):
        rng = random.Random(seed)
        xs = [rng.gauss(1.0 if i >= change else 0.0, 1.0) for i in range(change + 400)]
        a, early = _first_alarm_from(PageHinkley(delta=0.5, threshold=25), xs, change)
        assert a is not None and early == 0, seed
        delay = a.index - change
        assert 0 < delay < 100, seed
        assert change - delay < a.onset <= a.index, "onset inside the delay window"
        assert a.before.mean < 0.3 < 0.7 < a.after.mean
        assert a.statistic is not None and a.threshold == 25.0 < a.statistic
        errors.append(abs(a.onset - (change + 1)))
        delays.append(delay)
    # The argmin of the cumulative sum is the classic estimate: typically a sample
    # or two off, well within a tenth of the detection delay.
    assert statistics.median(errors) <= 0.1 * statistics.median(delays)
    assert sum(e <= 0.25 * d for e, d in zip(errors, delays, strict=True)) >= 25


@pytest.mark.parametrize("mode", ["down", "both"])
def test_page_hinkley_sees_decreases_and_reports_them_as_such(mode: str) -> None:
    rng = random.Random(4)
    xs = [rng.gauss(-1.0 if i >= 1000 else 0.0, 1.0) for i in range(1400)]
    a, early = _first_alarm_from(PageHinkley(delta=0.5, threshold=25, mode=mode), xs, 1000)
    assert a is not None and early == 0
    assert abs(a.onset - 1001) <= 10 and a.after.mean < a.before.mean


def test_page_hinkley_up_mode_ignores_decreases() -> None:
    rng = random.Random(4)
    xs = [rng.gauss(-2.0 if i >= 1000 else 0.0, 1.0) for i in range(1400)]
    det = PageHinkley(delta=0.5, threshold=25, mode="up")
    assert [a for x in xs if (a := det.update(x))] == []


def test_kswin_detects_a_shift_and_dates_it_to_its_recent_block() -> None:
    for seed in range(3):
        rng = random.Random(seed)
        xs = [rng.gauss(3.0 if i >= 300 else 0.0, 1.0) for i in range(400)]
        det = KSWIN(alpha=0.0001, seed=seed)
        a, early = _first_alarm_from(det, xs, 300)
        assert a is not None and early <= 1  # KSWIN runs one test per sample: some false alarms
        assert 300 < a.index <= 330
        assert a.onset == a.index - det.stat_size + 1
        assert a.before.count == 70 and a.after.count == 30
        assert a.before.mean < a.after.mean
        assert a.statistic is not None and a.statistic <= 0.0001


BINARY = [
    # kind, rate before -> after, maximum detection delay
    ("ddm", 0.05, 0.4, 150),
    ("eddm", 0.01, 0.3, 100),
    ("hddm-a", 0.1, 0.3, 300),
    ("hddm-w", 0.1, 0.6, 100),
]


@pytest.mark.parametrize(("kind", "p0", "p1", "max_delay"), BINARY)
def test_binary_detectors_detect_a_jump_in_the_error_rate(
    kind: str, p0: float, p1: float, max_delay: int
) -> None:
    change = 2000
    onset_errors, delays = [], []
    for seed in range(10):
        rng = random.Random(seed)
        xs = [float(rng.random() < (p1 if i >= change else p0)) for i in range(change + 600)]
        a, _ = _first_alarm_from(make_detector(kind, {}), xs, change)
        assert a is not None, seed
        assert change < a.index <= change + max_delay, (seed, a)
        assert a.onset <= a.index
        assert a.before.count + a.after.count <= a.index
        assert a.before.mean < a.after.mean, (seed, a)
        onset_errors.append(abs(a.onset - (change + 1)))
        delays.append(a.index - change)
    # DDM's warning start and HDDM_A's cut point date the change clearly better than
    # the alarm itself; EDDM's and HDDM_W's estimates (short warning zones, the
    # newest error gap) only a little.
    factor = 0.75 if kind in ("ddm", "hddm-a") else 1.0
    assert statistics.median(onset_errors) <= factor * statistics.median(delays)


@pytest.mark.parametrize("kind", ["hddm-a", "hddm-w"])
def test_two_sided_hddm_reports_decreases(kind: str) -> None:
    rng = random.Random(3)
    xs = [float(rng.random() < (0.05 if i >= 1000 else 0.7)) for i in range(1300)]
    assert _first_alarm_from(make_detector(kind, {}), xs, 1000)[0] is None
    a, early = _first_alarm_from(make_detector(kind, {"two_sided_test": True}), xs, 1000)
    assert a is not None and early == 0
    assert a.after.mean < a.before.mean
    assert a.statistic is not None and a.threshold is not None
    assert a.statistic > a.threshold > 0


def test_ddm_reports_the_warning_zone_start_as_onset() -> None:
    xs = [float(i % 20 == 0) for i in range(1000)] + [float(i % 3 == 0) for i in range(300)]
    det = make_detector("ddm", {})
    alarms = [a for x in xs if (a := det.update(x))]
    assert len(alarms) == 1
    a = alarms[0]
    assert 1000 < a.onset < a.index < 1100
    assert a.before.mean == pytest.approx(0.05, abs=0.01)
    assert a.after.mean > 0.3


def test_threshold_alarms_once_per_excursion_after_consecutive_samples() -> None:
    det = Threshold(lower=-1.0, upper=1.0, consecutive=3)
    xs = [0.0, 0.5, 2.0, 2.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, -2.0, -3.0, -4.0, 0.2]
    alarms = [a for x in xs if (a := det.update(x))]
    assert [(a.index, a.onset) for a in alarms] == [(8, 6), (14, 12)]
    first, second = alarms
    assert first.after == WindowStats(3, 3.0)
    assert first.before == WindowStats(3, 0.5 / 3)  # in-bound samples so far
    assert (first.statistic, first.threshold) == (4.0, 1.0)
    assert second.before == WindowStats(1, 0.0)  # in-bound samples since the last alarm
    assert (second.statistic, second.threshold) == (-4.0, -1.0)


def test_threshold_treats_nan_as_beyond_and_accepts_one_sided_bounds() -> None:
    det = Threshold(upper=5.0)
    assert det.update(-1e9) is None
    a = det.update(math.nan)
    assert a is not None and a.index == 2 and a.threshold is None
    low = Threshold(lower=0.0)
    assert low.update(1e9) is None
    a = low.update(-0.5)
    assert a is not None and a.threshold == 0.0


def test_out_of_range_is_its_own_kind_with_a_closed_valid_range() -> None:
    det = OutOfRange(low=0.0, high=100.0, consecutive=1)
    assert det.kind == "out-of-range" and det.kind in DETECTOR_KINDS
    assert [det.update(x) for x in [0.0, 100.0, 50.0]] == [None, None, None]
    a = det.update(100.5)
    assert a is not None and (a.index, a.onset, a.threshold) == (4, 4, 100.0)
    assert a.before == WindowStats(3, 50.0)


def test_stuck_alarms_once_per_episode_with_the_exact_onset() -> None:
    det = Stuck(window=5)
    xs = [float(i) for i in range(10)] + [7.0] * 12 + [1.0, 2.0] + [3.0] * 5 + [3.0] * 5
    alarms = [a for x in xs if (a := det.update(x))]
    assert [(a.index, a.onset) for a in alarms] == [(15, 11), (29, 25)]
    first = alarms[0]
    assert first.after == WindowStats(5, 7.0)
    assert first.before == WindowStats(10, 4.5)
    assert first.statistic == 0.0 == first.threshold
    # The second episode's window starts right after the moving samples.
    assert alarms[1].after == WindowStats(5, 3.0)


def test_stuck_uses_its_tolerance_and_never_calls_nan_stuck() -> None:
    det = Stuck(window=4, tolerance=0.1)
    alarms = [a for x in [5.0, 5.05, 4.98, 5.02, 5.0] if (a := det.update(x))]
    assert [a.index for a in alarms] == [4]
    assert alarms[0].statistic == pytest.approx(0.07)
    det = Stuck(window=3)
    assert [det.update(x) for x in [math.nan] * 6] == [None] * 6
    assert [det.update(x) for x in [1.0, 1.0]] == [None, None]
    assert det.update(1.0) is not None


def test_stuck_memory_stays_within_the_window() -> None:
    det = Stuck(window=50, tolerance=10.0)
    for i in range(5000):
        det.update(float(i % 7) - i * 1e-3)
    assert len(det._values) == 50
    assert len(det._maxq) <= 50 and len(det._minq) <= 50
    assert len(det.snapshot()["values"]) == 50


# --------------------------------------------------------------------------- 3. refusals

BAD_PARAMS = [
    ("adwin", {"delta": 0}, "adwin: delta must be a finite number in \\(0, 1\\)"),
    ("page-hinkley", {"threshold": -1}, "page-hinkley: threshold must be a finite number > 0"),
    ("page-hinkley", {"mode": "sideways"}, "page-hinkley: mode must be one of"),
    ("page-hinkley", {"min_instances": 2.5}, "page-hinkley: min_instances must be an integer"),
    ("page-hinkley", {"alpha": "high"}, "page-hinkley: alpha must be a finite number in"),
    ("page-hinkley", {"delta": math.nan}, "page-hinkley: delta must be a finite number"),
    ("kswin", {"stat_size": 60}, "kswin: stat_size must be at most half of window_size"),
    ("kswin", {"seed": None}, "kswin: seed must be an integer"),
    ("kswin", {"seed": 2**64}, "kswin: seed must be below 2\\*\\*63"),
    ("kswin", {"window_size": 1}, "kswin: window_size must be an integer >= 2"),
    ("ddm", {"warm_start": 0}, "ddm: warm_start must be an integer >= 1"),
    ("ddm", {"drift_threshold": True}, "ddm: drift_threshold must be a finite number"),
    ("eddm", {"alpha": 0.8, "beta": 0.9}, "eddm: alpha .* must be >= beta"),
    ("hddm-a", {"drift_confidence": 1.5}, "hddm-a: drift_confidence must be a finite number"),
    ("hddm-a", {"two_sided_test": "yes"}, "hddm-a: two_sided_test must be true or false"),
    ("hddm-w", {"lambda_val": 0}, "hddm-w: lambda_val must be a finite number in \\(0, 1\\]"),
    ("threshold", {}, "threshold: give upper, lower or both"),
    ("threshold", {"lower": 2, "upper": 1}, "threshold: lower must be < upper"),
    ("threshold", {"upper": 1, "consecutive": 0}, "threshold: consecutive must be an integer >= 1"),
    ("threshold", {"upper": math.inf}, "threshold: upper must be a finite number"),
    ("out-of-range", {"low": 0.0}, "missing 1 required positional argument: 'high'"),
    ("out-of-range", {"low": 5, "high": 5}, "out-of-range: low must be < high"),
    ("stuck", {"window": 1}, "stuck: window must be an integer >= 2"),
    ("stuck", {"tolerance": -0.1}, "stuck: tolerance must be a finite number >= 0"),
]


@pytest.mark.parametrize(("kind", "params", "match"), BAD_PARAMS)
def test_bad_settings_are_refused_naming_kind_and_parameter(
    kind: str, params: dict[str, Any], match: str
) -> None:
    exc: type[Exception] = TypeError if "required positional" in match else ConfigError
    with pytest.raises(exc, match=match):
        make_detector(kind, params)


def test_make_detector_names_the_known_kinds_and_accepted_parameters() -> None:
    with pytest.raises(
        ConfigError, match="unknown detector kind 'cusum'; known: adwin, page-hinkley"
    ):
        make_detector("cusum", {})
    with pytest.raises(
        ConfigError,
        match="page-hinkley: unknown parameter\\(s\\) lambda, thresh; accepted: min_instances, "
        "delta, threshold, alpha, mode",
    ):
        make_detector("page-hinkley", {"thresh": 3, "lambda": 1})
    with pytest.raises(ConfigError, match="parameters must be a mapping"):
        make_detector("ddm", [("warm_start", 3)])  # type: ignore[arg-type]


def test_every_kind_can_be_made_from_the_registry() -> None:
    defaults: dict[str, dict[str, Any]] = {
        "threshold": {"upper": 1.0},
        "out-of-range": {"low": 0.0, "high": 1.0},
    }
    for kind, cls in DETECTOR_KINDS.items():
        det = make_detector(kind, defaults.get(kind, {}))
        assert type(det) is cls and det.kind == kind
        assert isinstance(det, BaseDetector), "every kind shares the base's snapshot plumbing"
        assert set(det.snapshot()) >= {"kind", "v"}


@pytest.mark.parametrize("kind", sorted(DETECTOR_KINDS))
def test_foreign_and_future_snapshots_are_refused(kind: str) -> None:
    cls = DETECTOR_KINDS[kind]
    other = "stuck" if kind != "stuck" else "adwin"
    with pytest.raises(SnapshotError, match=f"expected kind='{kind}' v=1"):
        cls.restore(make_detector(other, {}).snapshot())
    params = {"upper": 1.0} if kind == "threshold" else {}
    params = {"low": 0.0, "high": 1.0} if kind == "out-of-range" else params
    snap = make_detector(kind, params).snapshot()
    with pytest.raises(SnapshotError, match=f"{kind}: cannot restore snapshot kind='{kind}' v=2"):
        cls.restore({**snap, "v": 2})
    with pytest.raises(SnapshotError, match="of type list"):
        cls.restore([snap])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snap_edit", "match"),
    [
        (lambda s: s.pop("n"), "page-hinkley: snapshot has no field 'n'"),
        (lambda s: s["river"].pop("mean"), "page-hinkley: snapshot has no field 'river.mean'"),
        (
            lambda s: s["river"].update(sum_increase="lots"),
            "page-hinkley: snapshot field 'river.sum_increase' must be a number",
        ),
        (lambda s: s.update(n=-3), "page-hinkley: snapshot field 'n' must be an integer >= 0"),
        (lambda s: s.update(up=[1.5, 0.0]), "snapshot field 'up' must be a \\[start index"),
        (
            lambda s: s["params"].update(threshold=-1),
            "page-hinkley: threshold must be a finite number > 0",
        ),
        (
            lambda s: s["params"].update(colour="red"),
            "page-hinkley: unknown parameter\\(s\\) colour",
        ),
    ],
)
def test_malformed_snapshots_are_refused_naming_the_field(
    snap_edit: Callable[[dict[str, Any]], object], match: str
) -> None:
    det = PageHinkley()
    for x in range(100):
        det.update(float(x % 5))
    snap = _json(det.snapshot())
    snap_edit(snap)
    with pytest.raises(SnapshotError, match=match):
        restore_detector(snap)


def test_malformed_rust_and_rng_state_is_a_snapshot_error_not_a_panic() -> None:
    snap = make_detector("adwin", {}).snapshot()
    with pytest.raises(SnapshotError, match="adwin: snapshot field 'window'"):
        restore_detector({**snap, "window": "AAAA"})
    with pytest.raises(SnapshotError, match="adwin: snapshot field 'window' must be base64"):
        restore_detector({**snap, "window": "not base64!"})
    snap = _json(KSWIN().snapshot())
    snap["river"]["rng"]["mt"] = "AAAA"
    with pytest.raises(SnapshotError, match=r"kswin: snapshot field 'river\.rng\.mt'"):
        restore_detector(snap)
    snap = _json(Stuck(window=3).snapshot())
    snap["values"] = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(SnapshotError, match="stuck: snapshot field 'values'"):
        restore_detector(snap)


def test_restore_detector_dispatches_on_kind_and_refuses_unknown_ones() -> None:
    det = make_detector("hddm-w", {"two_sided_test": True})
    assert type(restore_detector(det.snapshot())) is HDDMW
    with pytest.raises(SnapshotError, match="unknown detector kind 'pickle'; known: adwin"):
        restore_detector({"kind": "pickle", "v": 1})
    with pytest.raises(SnapshotError, match="unknown detector kind None"):
        restore_detector({"v": 1})
    with pytest.raises(SnapshotError, match="must be a mapping, got bytes"):
        restore_detector(b"\x80\x04")  # type: ignore[arg-type]


def test_alarm_keeps_working_without_the_new_fields() -> None:
    a = Alarm(index=3, onset=2, before=WindowStats(1, 0.0), after=WindowStats(2, 1.0), detector="x")
    assert a.statistic is None and a.threshold is None
