"""The per-stream pipeline: exact snapshots, one alarm per change, onset, quiet when stationary.

These are fast checks of behaviour; the false-alarm rates and delays that chose the
default config are measured by bench/detector_quality.py.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from riskstream.config import load_config
from riskstream.core.detectors import make_detector
from riskstream.core.monitors import MonitorSpec
from riskstream.core.streams import (
    SNAPSHOT_VERSION,
    Seasonality,
    StreamAlarm,
    StreamDetector,
    StreamSettings,
)
from riskstream.errors import ConfigError, SnapshotError

DAY = 86_400.0
T0 = 1_795_651_200.0  # a midnight, UTC
DAILY = Seasonality(period_s=DAY, bins=24, warmup=30)
VALUE_MONITORS = ("sensor-value-drift", "sensor-out-of-range", "prediction-score-drift")
Stream = list[tuple[float, float]]


CLASSIC = Path(__file__).resolve().parent.parent / "data" / "classic-monitors.yaml"


def _defaults() -> dict[str, MonitorSpec]:
    """The monitors of the previous default config: River and rule kinds in a StreamDetector
    (the learned kinds of today's default are tested in test_learned.py)."""
    return {m.name: m for m in load_config(str(CLASSIC)).monitors}


DEFAULTS = _defaults()


def _seasonal(spec: MonitorSpec) -> MonitorSpec:
    """The spec with a daily profile, whatever the shipped config says."""
    return dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, seasonality=DAILY))


def _plain(spec: MonitorSpec) -> MonitorSpec:
    """The spec without a seasonal profile."""
    return dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, seasonality=None))


def _specs() -> list[tuple[str, MonitorSpec]]:
    """The default monitors' specs, each value monitor with and without a daily profile."""
    out = [(f"{name}/plain", _plain(DEFAULTS[name])) for name in VALUE_MONITORS]
    out += [(f"{name}/daily", _seasonal(DEFAULTS[name])) for name in VALUE_MONITORS]
    out += [(name, DEFAULTS[name]) for name in ("sensor-stuck", "harmful-rate-by-group")]
    return out


def _gauss(
    seed: int,
    n: int,
    per_day: int = 1000,
    amp: float = 0.0,
    shift: Callable[[int], float] = lambda i: 0.0,
    mu: float = 20.0,
    sigma: float = 0.5,
) -> Stream:
    rng = random.Random(seed)
    dt = DAY / per_day
    phase = rng.uniform(0.0, 2 * math.pi)
    out = []
    for i in range(n):
        t = T0 + i * dt
        season = amp * sigma * math.sin(2 * math.pi * t / DAY + phase)
        out.append((rng.gauss(mu, sigma) + season + shift(i) * sigma, t))
    return out


def _bernoulli(seed: int, n: int, p: Callable[[int], float]) -> Stream:
    rng = random.Random(seed)
    return [(1.0 if rng.random() < p(i) else 0.0, T0 + i) for i in range(n)]


def _changing(name: str, seed: int) -> Stream:
    """A stream on which ``name``'s monitor alarms a few times."""
    if name.startswith("harmful-rate"):
        return _bernoulli(seed, 9000, lambda i: 0.05 if i < 4000 else 0.3)
    if name == "sensor-stuck":
        xs = _gauss(seed, 3000)
        frozen = [(round(x, 1), t) for x, t in xs[:1000]]
        frozen += [(frozen[-1][0], t) for _, t in xs[1000:1200]]
        return frozen + [(round(x, 1), t) for x, t in xs[1200:]]
    jump = 12.0 if "out-of-range" in name else 3.0
    return _gauss(
        seed, 8000, per_day=500, amp=2.0, shift=lambda i: jump if 4000 <= i < 6000 else 0.0
    )


def _run(spec: MonitorSpec, stream: Stream) -> list[StreamAlarm]:
    det = StreamDetector(spec.new_detector, spec.settings)
    return [a for x, t in stream if (a := det.update(x, t)) is not None]


@pytest.mark.parametrize(("name", "spec"), _specs(), ids=[n for n, _ in _specs()])
def test_snapshot_restore_through_json_at_random_points_changes_nothing(
    name: str, spec: MonitorSpec
) -> None:
    stream = _changing(name, seed=5)
    straight = StreamDetector(spec.new_detector, spec.settings)
    want = [a for x, t in stream if (a := straight.update(x, t)) is not None]
    assert want, "the stream must make the monitor alarm, or the test proves little"

    cuts = set(random.Random(name).sample(range(1, len(stream)), 12))
    det = StreamDetector(spec.new_detector, spec.settings)
    got = []
    for i, (x, t) in enumerate(stream):
        if i in cuts:
            snap = orjson.loads(orjson.dumps(det.snapshot()))
            det = StreamDetector.restore(snap, spec.new_detector, spec.settings)
        if (a := det.update(x, t)) is not None:
            got.append(a)
    assert got == want
    assert orjson.dumps(det.snapshot()) == orjson.dumps(straight.snapshot())


@pytest.mark.parametrize("name", ["sensor-value-drift", "prediction-score-drift"])
@pytest.mark.parametrize("daily", [False, True])
def test_one_sustained_shift_raises_one_alarm(name: str, daily: bool) -> None:
    spec = _seasonal(DEFAULTS[name]) if daily else _plain(DEFAULTS[name])
    stream = _gauss(7, 14_000, amp=1.5 if daily else 0.0, shift=lambda i: 2.0 * (i >= 6000))
    alarms = _run(spec, stream)
    assert [a.index > 6000 for a in alarms] == [True], [a.index for a in alarms]


def test_a_frozen_sensor_raises_one_alarm_not_one_per_window() -> None:
    stream = _changing("sensor-stuck", seed=3)
    stuck = [(x, t) for x, t in stream[:1200]] + [(stream[1199][0], t) for _, t in stream[1200:]]
    alarms = _run(DEFAULTS["sensor-stuck"], stuck)
    assert len(alarms) == 1
    assert alarms[0].onset == 1000  # the last live reading opens the stuck window


def test_an_out_of_range_excursion_raises_one_alarm_at_its_first_reading() -> None:
    stream = _gauss(2, 5000, shift=lambda i: 20.0 * (i >= 3000))
    alarms = _run(DEFAULTS["sensor-out-of-range"], stream)
    assert [(a.index, a.onset) for a in alarms] == [(3001, 3001)]
    assert alarms[0].after.mean == pytest.approx(20.0 + 20 * 0.5, abs=0.5)


@pytest.mark.parametrize("daily", [False, True])
def test_onset_of_a_one_sigma_shift_is_within_40_events(daily: bool) -> None:
    spec = DEFAULTS["sensor-value-drift"]
    spec = _seasonal(spec) if daily else _plain(spec)
    for seed in range(12):
        stream = _gauss(seed, 9000, amp=1.0 if daily else 0.0, shift=lambda i: 1.0 * (i >= 6000))
        alarms = _run(spec, stream)
        assert alarms, f"seed {seed}: the shift was missed"
        first = alarms[0]
        assert 6000 < first.index <= 6000 + 200, f"seed {seed}: detected at {first.index}"
        assert abs(first.onset - 6001) <= 40, f"seed {seed}: onset {first.onset}"
        # the time index keeps one time per 16 samples: onset times are that coarse
        assert first.onset_at == pytest.approx(stream[first.onset - 1][1], abs=16 * 86.4)
        assert first.reference.mean == pytest.approx(20.0, abs=0.25)
        # the mean since the CUSUM's reset point: biased up (the excursion is selected)
        assert 20.2 < first.after.mean < 21.0


@pytest.mark.parametrize(("name", "spec"), _specs(), ids=[n for n, _ in _specs()])
def test_no_alarm_on_a_short_stationary_stream(name: str, spec: MonitorSpec) -> None:
    if name.startswith("harmful-rate"):
        streams = [_bernoulli(1, 20_000, lambda i: 0.01), _bernoulli(2, 20_000, lambda i: 0.2)]
    else:
        streams = [
            [(round(x, 1), t) for x, t in _gauss(1, 20_000, per_day=86_400)],
            _gauss(2, 20_000, per_day=200, amp=0.0 if spec.settings.seasonality is None else 2.0),
        ]
    for stream in streams:
        assert _run(spec, stream) == []


def test_a_daily_cycle_is_learned_and_taken_out() -> None:
    spec = DEFAULTS["sensor-value-drift"]
    stream = _gauss(4, 30_000, per_day=1000, amp=2.0)
    assert len(_run(_plain(spec), stream)) > 3
    assert _run(_seasonal(spec), stream) == []


def test_a_wild_reading_does_not_bend_the_profile() -> None:
    spec = _seasonal(DEFAULTS["sensor-value-drift"])
    stream = _gauss(6, 12_000, per_day=1000, amp=1.0)
    stream[5000] = (1e9, stream[5000][1])
    alarms = _run(spec, stream)
    assert [a.index for a in alarms][:1] == [5001]
    assert len(alarms) <= 2  # the spike, and at most its echo while re-learning
    quiet = [a for a in alarms if a.index > 7000]
    assert quiet == []


def test_seasonality_config_is_checked() -> None:
    assert Seasonality.from_config({"period_s": 3600, "bins": 12}) == Seasonality(3600, 12, 30)
    for raw, problem in [
        ({"bins": 24}, "needs period_s"),
        ({"period_s": 0}, "period_s must be a number > 0"),
        ({"period_s": 86400, "bins": 0}, "bins must be an integer >= 1"),
        ({"period_s": 86400, "warmup": 2.5}, "warmup must be an integer >= 1"),
        ({"period_s": 86400, "every": 3}, "unknown key(s) every"),
        ("daily", "must be a mapping"),
    ]:
        with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            Seasonality.from_config(raw)


def test_a_snapshot_of_another_version_or_shape_is_refused() -> None:
    spec = _seasonal(DEFAULTS["sensor-value-drift"])
    det = StreamDetector(spec.new_detector, spec.settings)
    for x, t in _gauss(1, 100):
        det.update(x, t)
    snap = det.snapshot()
    with pytest.raises(SnapshotError, match=f"version 1 is not {SNAPSHOT_VERSION}"):
        StreamDetector.restore({**snap, "v": 1}, spec.new_detector, spec.settings)
    with pytest.raises(SnapshotError, match="has no seasonal profile but the monitor has"):
        StreamDetector.restore({**snap, "season": None}, spec.new_detector, spec.settings)
    plain = dataclasses.replace(spec.settings, seasonality=None)
    with pytest.raises(SnapshotError, match="has a seasonal profile but the monitor no longer"):
        StreamDetector.restore(snap, spec.new_detector, plain)
    for other, problem in [
        (Seasonality(DAY, 48), "24 bins over 86400 s but the monitor has 48 bins over 86400 s"),
        (Seasonality(7 * DAY), "24 bins over 86400 s but the monitor has 24 bins over 604800 s"),
    ]:
        settings = dataclasses.replace(spec.settings, seasonality=other)
        with pytest.raises(SnapshotError, match=problem):
            StreamDetector.restore(snap, spec.new_detector, settings)


def test_page_hinkley_with_river_defaults_alarms_where_the_default_monitor_is_quiet() -> None:
    """Why the pipeline exists: River's defaults on raw values alarm on plain noise."""
    stream = _gauss(9, 20_000, sigma=1.0)
    raw = StreamDetector(
        lambda: make_detector("page-hinkley"), StreamSettings(warmup=0, scale=False)
    )
    assert sum(1 for x, t in stream if raw.update(x, t)) > 5
    assert _run(DEFAULTS["sensor-value-drift"], stream) == []
