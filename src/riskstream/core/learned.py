"""Streams judged against their own learned normal, with one knob: false alarms per stream.

Real signals are autocorrelated, heavy-tailed, sometimes counts that sit at zero,
sometimes rounded, sometimes cyclic with a period nobody declared.  A detector
tuned on independent gaussian noise raises alarm after alarm on them.  So each
stream of a *learned* monitor first learns, from its own warm-up and online (a few
dozen numbers per stream, no buffer), what normal is for it:

- **phase A** (first half of the warm-up): its level and its lag-1 autocorrelation
  ``phi`` (an AR(1) fit).  A slow cycle or a wandering physical quantity shows up
  here as a high ``phi``;
- **phase B** (second half): the *innovations* ``e = (x - level) - phi (x' - level)``
  — what the AR(1) could not predict — in units of their provisional spread: a
  histogram of their size on a fixed grid (so quantiles, the median absolute value
  and tail probabilities come from counts, whatever the distribution), the moments
  of the excess over 2 (a generalised Pareto tail), and their own lag-1
  correlation (what the AR(1) left over).  A series that repeats values (counts,
  rounded readings, plateaus) shows it in how often consecutive readings are equal.

Every test is then a CUSUM of log-likelihood ratios, or a single tail probability,
and its threshold comes from one number: ``false_alarm_every`` (N), "at most one
false alarm per N events of a stream".  For a log-likelihood-ratio CUSUM the false
alarm run length is at least about ``exp(h)`` (Wald, Lorden), so ``h = ln(N k)``
for a monitor that runs ``k`` CUSUMs; a tail test alarms at probability ``1/N``.

Kinds:

``shift``
    A level change.  A two-sided CUSUM (for a change of one noise sd) on the
    standardized innovations, clipped at ``CLIP`` robust spreads and again at
    ``STEP_CLIP`` standard deviations.  On an autocorrelated stream a level change
    moves the innovations by only ``(1 - phi) / (1 + theta)`` of it once the model
    has followed it.  Where a change of one sd of the stream moves them by less than
    half a spread (``LEVEL_PAIR_BELOW``; phi above about 0.6), which the first pair
    never adds up, a second two-sided pair sized for that change watches too, and
    the four share the false-alarm budget.
    Clipping bounds what one wild reading can add (heavy tails); the innovations'
    residual autocorrelation scales the input (long-run variance); how far the
    level wanders from one block of readings to the next (a cycle far longer than
    the warm-up, a wandering score) widens the reference, so that wander the
    stream showed from its warm-up on is not a change.  After an alarm the stream
    re-centres on the new level within a tenth of a warm-up, and clipping is
    centred there, so a change back (a valve that reopens) is seen as clearly as
    the first change.  The model is refitted on a longer stretch after 2, 4, 8 and
    64 warm-ups (slow cycles show themselves), each refit waiting until no CUSUM is
    a third of the way up, and the stretch starting again at an alarm: one that
    spanned two levels would be fitted as a slow component.
``noise``
    The stream gets noisier or throws bursts of spikes: Bernoulli CUSUMs on how
    often innovations leave their usual central band (p about 0.2) and their tail
    (p about 0.03), whatever the distribution.  Leavings that come in runs (a
    series at 0 between bursts) count for less: the steps are divided by the
    long-run variance factor of the hits, from how often a hit follows a hit.
    The fit an alarm replaces is kept (see *Regimes*).
``outlier``
    One reading whose innovation lies beyond the learned tail's ``1/N`` quantile.
    The tail's shape comes from the excess's mean and variance or, where that is
    heavy (0.15 and more; from 1/4 on the variance's own variance is infinite), from
    its moments of order 1/2 and 1.  On such a tail the limit is the predictive
    quantile, averaged over the shape's standard error: over the many decades of the
    extrapolation a plug-in quantile lands too near often enough to false-alarm
    several times as often as asked.  An alarm that the next readings confirm as a
    new level (a tenth of a warm-up, all outside the old range) starts a new regime.
``frozen``
    The same value repeated far longer than this stream ever repeats: the run
    length whose probability, at the learned rate of equal consecutive readings,
    is ``1/N``.
``rate``
    A 0/1 indicator (a harmful answer, a misdiagnosis) becomes ``ratio`` times as
    frequent.  A Bernoulli CUSUM whose log-likelihood ratios are divided by the
    learned overdispersion (the variance of batch rates over the binomial one, one
    standard error above its estimate), so
    a base rate that wanders from day to day does not read as a change.

*Regimes* (``outlier``, ``noise``): plants run in regimes, a line that idles at
night and at weekends, a setpoint that moves.  Judged by the idle regime's fit,
every start is out of range and noisier.  So a stream keeps the fits of up to
``MAX_REGIMES`` regimes it held before, and a reading outside its regime's range
(level +- ``RANGE_SDS`` sds) that lies in a kept regime's range (the narrowest, if
several) moves it back to that fit, with no alarm: a line that stops every night
alarms at its first start only.

After warm-up the stream keeps learning slowly (``LEARN_EVERY`` times the warm-up
as its memory) while none of its statistics is more than a third of the way to its
threshold: never from data inside an excursion.  An alarm of a CUSUM kind makes the
stream learn afresh, so one change raises one alarm.

At an alarm the onset is the CUSUM's restart point (the maximum-likelihood change
point for the alarmed size), with an approximate 95% interval of
``ONSET_SPREAD / d**2`` samples either side, ``d`` the change in noise units.

>>> import random
>>> rng = random.Random(5)
>>> s = LearnedStream("shift", LearnedParams(), warmup=300)
>>> hits = [a for i in range(6000) if (a := s.update(rng.gauss(0, 1) + (1 if i >= 4000 else 0), i))]
>>> len(hits), 4000 <= hits[0].index <= 4100, abs(hits[0].onset - 4000) <= 30
(1, True, True)
"""

from __future__ import annotations

import itertools
import math
import numbers
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from operator import sub
from typing import Any

from riskstream.core.detectors import Alarm, WindowStats
from riskstream.core.streams import Cusum, Seasonality, StreamAlarm, _Profile, _TimeIndex
from riskstream.errors import ConfigError, SnapshotError

__all__ = [
    "DEFAULT_FALSE_ALARM_EVERY",
    "LEARNED_KINDS",
    "LEARNED_PACKED",
    "LearnedParams",
    "LearnedStream",
    "learned_params",
    "unpacked_as_data",
]

LEARNED_KINDS = ("shift", "noise", "outlier", "frozen", "rate")
DEFAULT_FALSE_ALARM_EVERY = 1_000_000.0
SNAPSHOT_VERSION = "learned/2"
"""Written; "learned/1" (before the shift kind's level pair) is read too.  An older
riskstream refuses a "learned/2" stream, which then starts afresh there, instead of
failing every event of it (its shift kind unpacks two CUSUMs, not four)."""
READABLE_VERSIONS = ("learned/1", SNAPSHOT_VERSION)

GRID = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 11.0, 16.0)
"""Where the innovations' size histogram is cut, in provisional spreads."""
TAIL_FROM = 2.0  # the generalised Pareto tail is fitted to the excess over this
CLIP = 3.0  # a shift CUSUM's input is clipped here (in robust spreads): heavy tails
STEP_CLIP = 2.0  # ...and again here once standardized: one reading adds at most 1.5
CENTRAL_P, TAIL_P = 0.2, 0.03  # noise: the bands whose leaving rate is watched
CENTRAL_RATIO, TAIL_RATIO = 2.5, 8.0  # ...and how much more often counts as a change
MAX_PHI = 0.995
MAX_THETA = 0.97
SPREAD_PRIOR = 30.0  # shift: readings' worth of unit spread mixed into a settled spread
LEVEL_PAIR_BELOW = 0.5  # shift: a level CUSUM pair too, where a 1-sd level change is this small
LN2 = math.log(2.0)
MAX_LAG = 0.9  # shift: what the model left of lag-1 correlation, at most (a 19x variance)
LEARN_EVERY = 5  # memory of the slow learning after warm-up, in warm-ups
WANDER_BLOCKS = 2  # shift: blocks per warm-up, to learn how far the level wanders
WANDER_QUIET = 0.5  # ...from blocks while every CUSUM stays under this share of its threshold
ONSET_SPREAD = 4.0
MIN_RUN = 20  # frozen: never fewer equal readings in a row than this
REGIME_AFTER = 10  # outlier: an alarm followed by 1/this of a warm-up of readings all
# outside the regime's range is a new regime (a machine started, a setpoint moved), learned
MAX_REGIMES = 4  # outlier, noise: the regimes a stream remembers besides the one it is in
RANGE_SDS = 6.0  # ...and a regime's range: its level +- this many of its readings' sds
REFIT_MODEL_AFTER = (2, 4, 8, 64)  # shift: refit the model after this many warm-ups
MODEL_SAME = 0.05  # ...keeping it where neither coefficient moved this much
NOISE_BATCH = 50  # noise: readings per batch when learning how its exceedances cluster
BURST_PRIOR = (0.5, 10.0)  # noise: P(hit after a hit) before data, worth this many hits
DISPERSION_BATCHES = 50  # rate: the dispersion's memory, in batches of warmup / 10
MAX_DISPERSION = 10.0
REFIT_TAIL = 256  # outlier: refit the tail every this many events
TAIL_PRIOR = (0.3, 1.0)  # the tail's shape and scale before data: heavy, so cautious
TAIL_PRIOR_WEIGHT = 30.0  # ...worth this many exceedances
HEAVY_FROM = 0.15  # outlier: from this shape on, fitted by moments of order 1/2 and 1
# (below, by mean and variance: at 0 they vary less; from about 0.15 on, the moments of
# order 1/2 and 1 are both less biased and no more variable, see _heavy_shape)
_DENSITY = [math.exp(-0.5 * z * z) for z in range(-3, 7)]
SHAPE_NODES = tuple((z, d / sum(_DENSITY)) for z, d in zip(range(-3, 7), _DENSITY, strict=True))
"""outlier: standard normal nodes, step 1 from -3 to +6 (the trapezoid rule: near exact
for a smooth function times a gaussian), over which the limit averages the tail's
shape (:func:`_predictive`); up to +6, since the heavier shapes dominate the average."""
SHAPE_CAP = 0.75  # ...those shapes stop here (the estimate itself stops at 0.5, but
# a tail read at 0.45 may well be heavier than 0.5)
MAX_NEWTON = 12  # ...and the Newton steps to find that limit, at most (3-4 are taken)
MAX_EXCESS = 1e6  # one reading's excess over TAIL_FROM counts as at most this (spreads):
# far beyond any tail (GRID stops at 16), and its square stays finite after a near-zero
# spread and a huge jump (``**`` raised OverflowError and crashed the event)


@dataclass(frozen=True, slots=True)
class LearnedParams:
    """A learned monitor's parameters (``detector:`` in the config)."""

    false_alarm_every: float = DEFAULT_FALSE_ALARM_EVERY
    direction: str = "both"  # shift and rate: both, up or down (rate: up or down)
    ratio: float = 2.0  # rate: how many times the learned rate counts as a change
    min_run: int = MIN_RUN  # frozen


def learned_params(kind: str, raw: Mapping[str, Any]) -> LearnedParams:
    """Validate a learned kind's parameters; a ConfigError names what is wrong."""
    accepted = {"false_alarm_every"}
    if kind in ("shift", "rate"):
        accepted.add("direction")
    if kind == "rate":
        accepted.add("ratio")
    if kind == "frozen":
        accepted.add("min_run")
    unknown = sorted(set(raw) - accepted)
    if unknown:
        raise ConfigError(
            f"{kind}: unknown parameter(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(sorted(accepted))}"
        )
    n = raw.get("false_alarm_every", DEFAULT_FALSE_ALARM_EVERY)
    if isinstance(n, bool) or not isinstance(n, int | float) or not (100 <= n < math.inf):
        raise ConfigError(
            f"{kind}: false_alarm_every must be a number of events >= 100 "
            f"(one false alarm per that many events of a stream), got {n!r}"
        )
    direction = raw.get("direction", "up" if kind == "rate" else "both")
    if direction not in (("up", "down") if kind == "rate" else ("both", "up", "down")):
        raise ConfigError(f"{kind}: direction must be both, up or down, got {direction!r}")
    ratio = raw.get("ratio", 2.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 1 < ratio < 100:
        raise ConfigError(f"{kind}: ratio must be a number in (1, 100), got {ratio!r}")
    min_run = raw.get("min_run", MIN_RUN)
    if isinstance(min_run, bool) or not isinstance(min_run, numbers.Integral) or min_run < 2:
        raise ConfigError(f"{kind}: min_run must be an integer >= 2, got {min_run!r}")
    return LearnedParams(float(n), str(direction), float(ratio), int(min_run))


class LearnedStream:
    """One stream of a learned monitor: its warm-up fit, its tests and its times."""

    __slots__ = (
        "_acc",
        "_base",
        "_cusums",
        "_e",
        "_h",
        "_kind",
        "_long",
        "_packed_times",
        "_params",
        "_prev",
        "_regimes",
        "_run",
        "_season",
        "_times",
        "_u",
        "_warmup",
        "armed",
        "away",
        "n",
        "start",
    )

    def __init__(
        self,
        kind: str,
        params: LearnedParams,
        warmup: int,
        seasonality: Seasonality | None = None,
    ) -> None:
        if kind not in LEARNED_KINDS:
            raise ConfigError(f"unknown learned kind {kind!r}; known: {', '.join(LEARNED_KINDS)}")
        if warmup < 20:
            raise ConfigError(f"{kind}: warmup must be at least 20 events to learn from")
        self._kind = kind
        self._params = params
        self._warmup = warmup
        self._season = None if seasonality is None else _Profile(seasonality)
        self._times = _TimeIndex()
        self._packed_times: tuple[Any, ...] | None = None  # (see pack)
        self.n = 0
        self._cusums: list[Cusum] = [Cusum() for _ in range(self._cusum_count())]
        # Bonferroni over the CUSUMs that watch: the shift kind's level pair, when it
        # watches, adds ln 2 (see _shift)
        watching = 2 if kind == "shift" else max(len(self._cusums), 1)
        self._h = math.log(params.false_alarm_every * watching)
        self._run = [math.nan, 0, 0]  # frozen: the value repeated, its run, the run before
        self.armed = True  # outlier: re-armed by a reading back inside the tail
        # outlier: the fits of regimes the stream held before (see _outlier), and the
        # readings since an alarm that all stayed outside its regime (-1: not watching)
        self._regimes: list[list[float]] = []
        self.away = -1
        # shift: the model's moments over a longer stretch, to refit it after
        # REFIT_MODEL_AFTER warm-ups, as slow components (a daily cycle) show themselves
        self._long: list[Any] | None = _new_moments() if kind == "shift" else None
        self._new_fit()

    # ------------------------------------------------------------------ learning

    def _cusum_count(self) -> int:
        kind = self._kind
        if kind == "shift":
            return 4  # up, down, and the level pair (idle where direction says so)
        return {"noise": 2, "rate": 1}.get(kind, 0)

    def _new_fit(self) -> None:
        """Start learning afresh (at start and after a CUSUM kind's alarm)."""
        # Accumulators, by index: phase A 0-6 (count, first value, then sums shifted by
        # it: values, squares, lag-1 products, previous, and the last value); phase B
        # 7-15 (count, sums of u, u^2, (unused), previous u, the tail's count, excess
        # and squared excess, grid exceedance counts); phase A's fit 16-19 (level, phi,
        # provisional spread, sd); 20-22 unused; 23-24 phase A's lag-2 sums; 25 theta.
        acc = _new_moments()
        acc[7:] = [0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, [0] * len(GRID)]
        acc += [math.nan] * 4 + [0, 0, 0, 0.0, 0.0, 0.0]
        self._acc: list[Any] | None = acc
        self._e = 0.0
        self._u = 0.0  # the previous innovation in provisional units (noise)
        self._base: list[float] | None = None
        self._prev = math.nan
        self.start = self.n  # samples before this belong to an earlier fit
        for c in self._cusums:
            c.stat, c.count, c.total = 0.0, 0, 0.0

    def _learn(self, x: float) -> None:
        acc = self._acc
        assert acc is not None
        if acc[16] != acc[16]:  # phase A: no fit yet
            _moments(acc, x)
            if acc[0] >= self._warmup // 2:
                self._fit_a()
        else:  # phase B, in the provisional units fitted in phase A
            level, phi, s0 = acc[16], acc[17], acc[18]
            e = (x - level) - phi * (self._prev - level) - acc[25] * self._e
            self._e = e
            u = e / s0
            acc[7] += 1
            acc[8] += u
            acc[9] += u * u
            # noise judges spread by successive differences, which a level shift
            # leaves alone; the other kinds judge the innovation itself
            a = abs(u - acc[11]) if self._kind == "noise" else abs(u)
            acc[11] = u
            if a > TAIL_FROM:
                y = min(a - TAIL_FROM, MAX_EXCESS)
                acc[12] += 1
                acc[13] += y
                acc[14] += y * y
            grid = acc[15]
            for i, g in enumerate(GRID):
                if a <= g:
                    break
                grid[i] += 1
            if acc[0] + acc[7] >= self._warmup:
                self._fit_b()

    def _fit_a(self) -> None:
        acc = self._acc
        assert acc is not None
        n = acc[0]
        mean = acc[2] / n
        g0 = acc[3] / n - mean * mean
        if not g0 > 0 or not math.isfinite(g0):
            # No variation yet: nothing to judge against.  Keep learning phase A.
            acc[0:7] = [0, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0]
            acc[23:25] = [0.0, 0.0]
            return
        level, phi, theta, s0, sd = _model(acc)
        acc[16:20] = [level, phi, s0, sd]
        acc[25] = theta

    def _fit_b(self) -> None:
        acc = self._acc
        assert acc is not None
        nb = acc[7]
        level, phi, s0, sd = acc[16], acc[17], acc[18], acc[19]
        grid = acc[15]
        warmup = self._warmup
        # Tail function at the grid points, P(|u| > g), and the median of |u|.
        tail = [c / nb for c in grid]
        med = _crossing(tail, 0.5)
        mean_u = acc[8] / nb
        var_u = max(acc[9] / nb - mean_u * mean_u, 0.0)
        rho = (med * 1.4826 if med > 0 else math.sqrt(var_u)) or 1.0  # robust / provisional
        limit = _tail_limit(nb, acc[12], acc[13], acc[14], self._params.false_alarm_every)
        # Bands whose leaving rate the noise kind watches (grid points, so counts are exact).
        g_c, p_c = _band(tail, CENTRAL_P, nb)
        g_t, p_t = _band(tail, TAIL_P, nb)
        # By index: 0 level, 1 phi, 2 provisional spread, 3 sd, 4 robust spread (in provisional
        # ones), 5 the innovations' centre (robust units; the shift kind re-learns it when it
        # settles), 6 the shift input's long-run spread (set when it settles), 7 the outlier limit,
        # 8-11 the noise bands and their rates, 12 events learned from, 13-16 the tail's data
        # (events, count, sums) that the outlier kind keeps learning from, 17 theta; shift: 20 the
        # variance, 22 its memory factor, 23 the third moment), 24-25 the up and down tilts (0: not
        # watched), 26 settled (1) or not, 28-29 the last deviation and lag-1 covariance, 30 a model
        # refit is due (1) or not, 31 the level clipping is centred on (0 until an alarm re-centres
        # the stream), 34-39 the settling sums, 40-41 the open block's sum and count, 42 the last
        # block's mean, 43 half the mean squared difference of consecutive blocks, 44 blocks
        # learned, 45 the wander margin, 46 the level pair's size (0: idle) and 47-48 its up and
        # down tilts, 54 the readings behind the centre, 55 the length of the
        # settling under way, 56 the weight it keeps through a refit that told the same model;
        # noise: 30-33 the bands' CUSUM steps (0: to be refreshed), 34-36 the open batch (readings,
        # hits of each band), 37-38 each band's dispersion, 39 batches, 46-48 and 50-52 each band's
        # hits, hits right after a hit, and whether the last was one; outlier: 18-20 the
        # excesses over TAIL_FROM since the warm-up (count, sum, sum of square roots).
        self._base = [
            level, phi, s0, sd, rho, mean_u / rho, 1.0, limit,
            g_c, p_c, g_t, p_t, float(acc[0] + nb), float(nb), acc[12], acc[13], acc[14],
            acc[25], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, math.nan, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, warmup // 2, 0.0,
        ]  # fmt: skip
        self._base = [float(v) for v in self._base]
        self._acc = None

    # ------------------------------------------------------------------- the hot path

    def update(self, x: float, t: float) -> StreamAlarm | None:
        n = self.n = self.n + 1
        times = self._times
        if not (n - 1) % times.STRIDE:
            times.add(n, t)
        season = self._season
        if season is not None:
            base = season.update(x, t, math.inf)
            if base is None:
                return None
            x -= base
        kind = self._kind
        if kind == "frozen":
            return self._frozen(x, t)
        if kind == "rate":
            return self._rate(x, t)
        b = self._base
        if b is None:
            self._learn(x)
            self._prev = x
            return None
        e = (x - b[0]) - b[1] * (self._prev - b[0]) - b[17] * self._e
        self._e = e
        u = e / b[2]
        self._prev = x
        if kind == "shift":
            long = self._long
            if long is not None:
                _moments(long, x)
                if long[0] % self._warmup == 0 and long[0] // self._warmup in REFIT_MODEL_AFTER:
                    b[30] = 1.0  # a refit is due, once no CUSUM is a third of the way up
                if b[30] and self._shift_under(b, 1.0 / 3.0):
                    b[30] = 0.0
                    self._refit_model(b, long)
            return self._shift(u, x, t, b)
        if kind == "noise":
            return self._noise(u, x, t, b)
        return self._outlier(u, x, t, b)

    def _shift(self, u: float, x: float, t: float, b: list[float]) -> StreamAlarm | None:
        z = u / b[4]
        if b[34] < b[55]:  # phase C: the clipped input's mean, spread, memory
            self._settle(z, b)
            return None
        # Clipped around the level the stream last settled on after an alarm (b[31],
        # 0 until then), so a stream re-centred on a new level sees a change back as
        # clearly as the first one.
        r = z - b[31]
        zc = b[31] + (CLIP if r > CLIP else -CLIP if r < -CLIP else r)
        dev = zc - b[5]
        # The centre is an estimate from the b[54] readings behind it, and it trails a
        # level that wanders by about one block's step (b[45], see _block): judge
        # against it less two standard errors of both (the margin, in long-run
        # spreads), so a young stream is cautious and a wandering one is judged by
        # what its wander cannot explain.
        margin = 2.0 * math.sqrt(1.0 / b[54] + b[45] * b[45])
        # Clipping bounds what one reading can do, around that margin: the raw
        # clip moves out with it, and once standardized a reading adds at most
        # STEP_CLIP - 1/2 to a CUSUM (however sparse and bursty the stream: a series
        # at 0 between bursts has a tiny spread).  A shift far beyond the margin
        # still adds that much per reading, however wide the margin.
        wide = CLIP + margin * b[6]
        zs = (b[31] + (wide if r > wide else -wide if r < -wide else r) - b[5]) / b[6]
        z_up, z_down = zs - margin, -zs - margin
        z_up = STEP_CLIP if z_up > STEP_CLIP else -STEP_CLIP if z_up < -STEP_CLIP else z_up
        z_down = STEP_CLIP if z_down > STEP_CLIP else -STEP_CLIP if z_down < -STEP_CLIP else z_down
        n = self.n
        up, down, level_up, level_down = self._cusums
        d = b[46]  # the level pair's size (0: idle), see _tilts
        h = self._h + LN2 if d else self._h  # four CUSUMs share the false alarms, not two
        s_up = up.add(z_up - 0.5, x, n) if b[24] else 0.0
        s_down = down.add(z_down - 0.5, x, n) if b[25] else 0.0
        h_up, h_down = h / (b[24] or 1.0), h / (b[25] or 1.0)
        alarmed = s_up > h_up or s_down > h_down
        quiet = s_up < h_up / 3 and s_down < h_down / 3
        calm = s_up < h_up * WANDER_QUIET and s_down < h_down * WANDER_QUIET
        if d:
            s_lup = level_up.add(d * (z_up - d / 2), x, n) if b[47] else 0.0
            s_ldown = level_down.add(d * (z_down - d / 2), x, n) if b[48] else 0.0
            h_lup, h_ldown = h / (b[47] or 1.0), h / (b[48] or 1.0)
            alarmed = alarmed or s_lup > h_lup or s_ldown > h_ldown
            quiet = quiet and s_lup < h_lup / 3 and s_ldown < h_ldown / 3
            calm = calm and s_lup < h_lup * WANDER_QUIET and s_ldown < h_ldown * WANDER_QUIET
        if alarmed:
            over = [(s_up - h_up, up, h_up, 1.0), (s_down - h_down, down, h_down, 1.0)]
            if d:
                over += [
                    (s_lup - h_lup, level_up, h_lup, d),
                    (s_ldown - h_ldown, level_down, h_ldown, d),
                ]
            _, fired, h_fired, size = max(over, key=lambda o: o[0])  # the first, on a tie
            alarm = self._alarm(fired, t, h_fired, size, refit=False)
            # Re-centre on the new level from a few readings, cautiously (the centre's
            # standard error widens the reference), so a change that follows soon
            # after is caught too.
            self._resettle(b, max(self._warmup // 10, 20))
            if self._long is not None:
                # The model's longer stretch would now mix two levels, which a refit
                # reads as a slow component (a high phi) and so stops seeing changes:
                # it starts again from the new level.
                self._long = _new_moments()
                b[30] = 0.0
            return alarm
        # Keep learning, as means until the memory is full: the input's spread and skew
        # always (an excursion's own values are part of how this stream swings), over
        # LEARN_EVERY warm-ups; its centre only while quiet (a drift under way is not
        # learned as normal), over one warm-up, so that slow cycles and wandering levels
        # that the model cannot follow are followed here.
        seen = b[12] - b[13] - self._warmup // 2  # readings since the warm-up's first half
        b[12] += 1
        eta = 1.0 / min(seen + 1.0, LEARN_EVERY * self._warmup)
        b[20] += (dev * dev - b[20]) * eta
        b[23] += (dev * dev * dev - b[23]) * eta
        b[29] += (dev * b[28] - b[29]) * eta
        b[28] = dev
        b[6] = math.sqrt(b[20] * b[22])
        if not int(seen) % REFIT_TAIL:
            self._tilts(b)
        if quiet:
            b[54] += 1
            b[5] += dev / min(b[54], self._warmup)
        if calm:
            b[40] += zc
            b[41] += 1
            if b[41] >= self._warmup // WANDER_BLOCKS:
                self._block(b)
        else:
            b[40] = b[41] = 0.0
            b[42] = math.nan
        return None

    def _shift_under(self, b: list[float], share: float) -> bool:
        """Whether every watched CUSUM of the shift kind is under ``share`` of its
        threshold (the level pair's included while it is watched)."""
        d = b[46]
        h = (self._h + (LN2 if d else 0.0)) * share
        up, down, level_up, level_down = self._cusums
        if up.stat >= h / (b[24] or 1.0) or down.stat >= h / (b[25] or 1.0):
            return False
        if not d:
            return True
        return level_up.stat < h / (b[47] or 1.0) and level_down.stat < h / (b[48] or 1.0)

    def _block(self, b: list[float]) -> None:
        """A block of readings ends: learn how far the level wanders between
        consecutive blocks beyond what noise explains.

        The centre follows the level with a memory of a warm-up, so it trails a level
        that wanders (a slow cycle not yet learned, an Ornstein-Uhlenbeck score) by
        about the wander's typical step from one block to the next.  That is normal
        for such a stream, not a change: it widens the CUSUM's reference by two such
        steps (see _shift) where it is significant (the mean squared difference exceeds the noise's
        ``1/M`` by two standard errors), and by nothing on a stream whose level stays
        put.  Blocks in which a CUSUM went past half its threshold are not learned
        from, so the first part of a ramp is not taken for wander."""
        m = b[41]
        mean = b[40] / m
        b[40] = b[41] = 0.0
        prev, b[42] = b[42], mean
        if prev != prev or b[6] <= 0:
            return
        self._wander(b, (mean - prev) / b[6], m)

    def _wander(self, b: list[float], d: float, m: float) -> None:
        """Count half the squared difference ``d`` of two blocks' centres (in long-run
        spreads) into the wander, whose memory is LEARN_EVERY warm-ups.  ``d`` counts
        as at most MAX_EXCESS: a near-zero spread then a jump would square past a
        float's range, and a wander of inf would leave the stream blind for good."""
        d = min(abs(d), MAX_EXCESS)
        half_sq = d * d / 2.0
        nb = b[44] = b[44] + 1
        b[43] += (half_sq - b[43]) / min(nb, 2 * LEARN_EVERY)
        noise = (1.0 + 2.0 * math.sqrt(2.0 / min(nb, 2 * LEARN_EVERY))) / m
        b[45] = math.sqrt(b[43] - noise) if b[43] > noise else 0.0  # one block's step

    def _refit_model(self, b: list[float], long: list[Any]) -> None:
        """Refit the ARMA(1,1) on the longer stretch, then settle the input afresh.

        Where the longer stretch tells the same model (both coefficients within
        MODEL_SAME), the centre is still re-learned but the stream does not become
        cautious again: what it learned of its centre's precision still holds.  A
        refit waits until the stream is quiet (see update), so an excursion under way
        is not fitted as a slow component."""
        level, phi, theta, s0, sd = _model(long)
        same = abs(phi - b[1]) < MODEL_SAME and abs(theta - b[17]) < MODEL_SAME
        if s0 > 0:
            scale = s0 / b[2]
            b[0], b[1], b[17], b[2], b[3] = level, phi, theta, s0, sd
            b[4] /= scale  # the robust spread stays the same in the value's units
            b[26] = 0.0  # settle the spread, memory and skew afresh too
            b[31] = 0.0  # the new model's innovations are centred on 0
            weight = b[54]
            self._resettle(b, self._warmup // 2)
            b[56] = weight if same else 0.0  # the centre's weight to keep after settling
        if long[0] >= REFIT_MODEL_AFTER[-1] * self._warmup:
            self._long = None

    def _resettle(self, b: list[float], readings: int) -> None:
        """Learn the input's centre, spread and skew again over ``readings`` (after an
        alarm: the new level; after a refit: the new model), keeping what the stream
        knows of its structure."""
        b[55] = float(readings)
        b[56] = 0.0
        b[34:42] = [0.0] * 8
        b[42] = math.nan
        for c in self._cusums:
            c.stat, c.count, c.total = 0.0, 0, 0.0
        self.start = self.n

    def _settle(self, z: float, b: list[float]) -> None:
        """Phase C: the clipped input's centre, and on a stream's first settling (or
        after its model was refitted) its spread, memory and skew.

        Each reading is clipped around the level clipping is centred on; after an
        alarm, around the mean so far (that level before the first), so the estimate
        walks to a new level however far it lies (up to CLIP times the harmonic sum of
        the readings) while one wild reading still moves it by at most CLIP / n; and
        the new level becomes the one clipping is centred on."""
        m = b[35] / b[34] if b[34] and b[26] else b[31]
        r = z - m
        z = m + (CLIP if r > CLIP else -CLIP if r < -CLIP else r)
        b[34] += 1
        b[35] += z
        b[36] += z * z
        b[39] += z * z * z
        if b[34] > 1:
            b[37] += z * b[38]
        b[38] = z
        n = b[34]
        if n < b[55]:
            return
        mean = b[35] / n
        before, b[5], b[42] = b[5], mean, mean
        b[12] += n
        b[54] = max(n, b[56])
        if b[26]:  # the stream knows its spread and memory: after an alarm, only re-centre
            b[31] = mean
            return
        var = max(b[36] / n - mean * mean, 0.0)
        lag = (b[37] / (n - 1) - mean * mean) / var if var > 0 else 0.0
        # A stream that showed (almost) no spread yet, one at 0 between rare bursts, is
        # not trusted to have none: a unit spread in robust units, worth SPREAD_PRIOR
        # readings, is mixed in.
        var = (n * var + SPREAD_PRIOR) / (n + SPREAD_PRIOR)
        b[20] = var
        b[23] = b[39] / n - 3 * mean * var - mean**3  # the third central moment
        b[29] = min(max(lag, 0.0), MAX_LAG) * var  # the lag-1 covariance, learned on
        b[26] = 1.0
        self._tilts(b)
        if not b[44] and b[6] > 0:
            # The warm-up's own blocks: its second half's centre (the first half's is 0
            # by construction) and this settling's.  A level already wandering is
            # known to wander from the start.
            for d in (before, mean - before):
                self._wander(b, d / b[6], n)

    def _tilts(self, b: list[float]) -> None:
        """The input's long-run spread (its variance inflated by what is left of its
        lag-1 correlation), and the thresholds' tilts.

        A CUSUM of d (z - d/2) is a log-likelihood ratio only for gaussian z; for a
        skewed input (counts, bursts) its false-alarm run length is about exp(theta h),
        theta the positive root of its cumulant generating function (to third order):
        so each CUSUM's threshold is h / theta."""
        lag = min(max(b[29] / b[20], 0.0), MAX_LAG) if b[20] > 0 else 0.0
        b[22] = (1.0 + lag) / (1.0 - lag)  # what is left of memory inflates the variance
        b[6] = math.sqrt(b[20] * b[22])  # the long-run spread
        skew = b[23] / b[20] ** 1.5 if b[20] > 0 else 0.0
        up, down = self._params.direction != "down", self._params.direction != "up"
        b[24] = _tilt(1.0, skew) if up else 0.0  # 0: that side is not watched
        b[25] = _tilt(1.0, -skew) if down else 0.0
        if self._kind == "shift":
            # The level pair's size: a change of the level by one sd of the stream, in
            # the input's units, once the model has followed it.  The model predicts
            # each reading from the last, so after a change of delta its innovations
            # settle at delta (1 - phi) / (1 + theta): on an AR(1) with phi 0.9, half of
            # their spread for a change of two sd, which the first pair (sized for one
            # spread) never adds up.  Whether the pair watches is the model's to say
            # (``kept``: 1 on independent noise), not the input's learned spreads, which
            # an excursion under way inflates.
            kept = b[3] * (1.0 - b[1]) / (b[2] * (1.0 + b[17])) if b[2] > 0 else 1.0
            scale = b[4] * b[6]
            d = kept / scale if scale > 0 else kept
            b[46] = d if kept < LEVEL_PAIR_BELOW else 0.0
            b[47] = _tilt(d, skew) if up and b[46] else 0.0
            b[48] = _tilt(d, -skew) if down and b[46] else 0.0

    def _noise(self, u: float, x: float, t: float, b: list[float]) -> StreamAlarm | None:
        """Bernoulli CUSUMs on how often innovations leave their bands.

        A noisier regime (a machine running, not idle) alarms once and is learned
        afresh; the fit it replaced is kept, and a reading outside the regime's range
        that lies in a kept one's moves the stream back to that fit (see _outlier):
        so a line that runs by day and idles at night or at weekends alarms once,
        not at every start."""
        if self._regimes and abs(x - b[0]) > RANGE_SDS * b[3] and self._back_to_regime(x):
            return None
        a = abs(u - self._u)
        self._u = u
        if b[30] == 0.0:  # the log-likelihood ratios, refreshed as the bands' rates move
            self._noise_steps(b)
        h, n = self._h, self.n
        central, tail = self._cusums
        hit_c, hit_t = a > b[8], a > b[10]
        s_c = central.add(b[30] if hit_c else b[31], x, n)
        s_t = tail.add(b[32] if hit_t else b[33], x, n)
        if s_c > h or s_t > h:
            self._remember(b)
            return self._alarm(central if s_c > h else tail, t, h, None, refit=True)
        # The bands' rates are learned from every reading: bursts that are part of a
        # stream's normal life raise them; a lasting change is caught long before.
        b[12] += 1
        eta = 1.0 / min(b[12], LEARN_EVERY * self._warmup)
        b[9] += (hit_c - b[9]) * eta
        b[11] += (hit_t - b[11]) * eta
        if not int(b[12]) % REFIT_TAIL:
            b[30] = 0.0
        # Exceedances that come in clusters (bursts that are part of normal life) are
        # overdispersed: learn by how much, batch by batch, as the rate kind does, but
        # not from inside an excursion (a change would raise it and hide itself).
        if s_c > h / 3 or s_t > h / 3:
            b[48] = b[52] = 0.0  # what follows is not paired with the excursion
            return None
        # Hits, and hits that follow a hit: how much more likely a hit is right after
        # one (bursts) than at random.
        b[46] += hit_c
        b[47] += hit_c and b[48]
        b[48] = hit_c
        b[50] += hit_t
        b[51] += hit_t and b[52]
        b[52] = hit_t
        b[34] += 1
        b[35] += hit_c
        b[36] += hit_t
        if b[34] >= NOISE_BATCH:
            b[39] += 1
            w = 1.0 / min(b[39], DISPERSION_BATCHES)
            for hits, rate, at in ((b[35], b[9], 37), (b[36], b[11], 38)):
                if 0.0 < rate < 1.0:
                    binomial = rate * (1.0 - rate) / b[34]
                    b[at] += ((hits / b[34] - rate) ** 2 / binomial - b[at]) * w
            b[34] = b[35] = b[36] = 0.0
        return None

    def _noise_steps(self, b: list[float]) -> None:
        """Each band's CUSUM steps (log-likelihood ratios of a hit and a miss), judged
        against its rate's upper confidence bound (two standard errors) so that a
        young stream is cautious; a band that could not be placed never moves."""
        learned = min(b[12], LEARN_EVERY * self._warmup)
        c0, weight = BURST_PRIOR
        for at, rate, ratio, disp, hits, pairs in (
            (30, b[9], CENTRAL_RATIO, b[37], b[46], b[47]),
            (32, b[11], TAIL_RATIO, b[38], b[50], b[51]),
        ):
            if rate <= 0.0:
                b[at], b[at + 1] = -1.0, -1.0
                continue
            # Hits that come in bursts inflate the variance of their count by the
            # long-run factor (1 + rho) / (1 - rho), rho the hits' lag-1 correlation
            # (from how often a hit follows a hit, shrunk towards a cautious prior
            # while few hits were seen); or by the batches' dispersion if larger.
            after_hit = (pairs + c0 * weight) / (hits + weight)
            rho = min(max((after_hit - rate) / (1.0 - rate), 0.0), MAX_LAG)
            disp = min(max(disp, (1.0 + rho) / (1.0 - rho), 1.0), MAX_DISPERSION)
            p0 = min(rate + 2.0 * math.sqrt(rate * (1.0 - rate) / learned), 0.9)
            p1 = min(0.95, ratio * p0)
            b[at] = math.log(p1 / p0) / disp if p1 > p0 else -1.0
            b[at + 1] = math.log((1.0 - p1) / (1.0 - p0)) / disp

    def _outlier(self, u: float, x: float, t: float, b: list[float]) -> StreamAlarm | None:
        """A reading beyond the tail's limit alarms, once, until one comes back inside.

        Plants run in regimes: a line stops at night, a setpoint moves.  A reading
        after the change is far from what the regime's model predicts, every time.
        So an alarm that the next readings confirm as a new level (REGIME_AFTER of a
        warm-up, all outside the old regime's range) makes the stream learn the new
        regime afresh, and keep the old one's fit; a reading beyond the limit that
        lies in the range of a regime the stream held before (its level +- RANGE_SDS
        of its readings' sd) moves the stream back to that regime's fit, with no alarm.
        A line that stops every night alarms at its first start only; one whose
        setpoint moved judges the new level, where it stayed disarmed before.
        """
        a = abs(u - b[5] * b[4])
        away = self.away
        if away >= 0:  # since an alarm: a new regime, or back in this one?
            if abs(x - b[0]) > RANGE_SDS * b[3]:
                self.away = away = away + 1
                if away >= max(self._warmup // REGIME_AFTER, 2):
                    self._new_regime(b, x)
                    return None
            else:
                self.away = -1
        if a <= b[7]:  # inside the tail's limit: learn the tail, slowly refit the limit
            b[13] += 1
            if a > TAIL_FROM:
                y = min(a - TAIL_FROM, MAX_EXCESS)
                b[14] += 1
                b[15] += y
                b[16] += y * y
                b[18] += 1  # the same since the warm-up, with square roots: _heavy_shape
                b[19] += y
                b[20] += math.sqrt(y)
            else:
                self.armed = True
            if not int(b[13]) % REFIT_TAIL:
                b[7] = _tail_limit(
                    b[13], b[14], b[15], b[16], self._params.false_alarm_every,
                    _heavy_shape(b[18], b[19], b[20]),
                )  # fmt: skip
            return None
        if self._regimes and self._back_to_regime(x):
            return None
        if not self.armed:
            return None
        self.armed = False
        self.away = 0
        n = self.n
        stat = WindowStats(1, x)
        inner = Alarm(n, n, WindowStats(int(b[12]), b[0]), stat, "outlier", a, b[7])
        return self._stream_alarm(inner, n, (n, n), stat, t)

    def _remember(self, b: list[float]) -> None:
        """Keep a regime's fit (``b``), most recent first, MAX_REGIMES at most."""
        self._regimes.insert(0, b)
        del self._regimes[MAX_REGIMES:]

    def _new_regime(self, b: list[float], x: float) -> None:
        """Keep the regime's fit, and learn the one the stream moved to from ``x`` on."""
        self._remember(b)
        self._new_fit()
        self._learn(x)
        self._prev = x
        self.armed = True
        self.away = -1

    def _back_to_regime(self, x: float) -> bool:
        """Whether ``x`` lies in a regime the stream held before; if so, that regime's
        fit is the stream's again and this one's is kept.  Of several, the narrowest:
        a fit learned across a change (a warm-up that saw the line stop) spans both
        levels, and would otherwise take readings its narrower neighbours describe."""
        regimes = self._regimes
        best = -1
        for i, r in enumerate(regimes):
            if abs(x - r[0]) <= RANGE_SDS * r[3] and (best < 0 or r[3] < regimes[best][3]):
                best = i
        if best < 0:
            return False
        current = self._base
        assert current is not None
        self._base = regimes.pop(best)
        regimes.insert(0, current)
        self._prev, self._e, self._u = x, 0.0, 0.0
        self.armed, self.away = True, -1
        for c in self._cusums:  # what they summed was the other regime's
            c.stat, c.count, c.total = 0.0, 0, 0.0
        return True

    def _frozen(self, x: float, t: float) -> StreamAlarm | None:
        run = self._run  # value, run length, the previous run's length
        if x == run[0]:
            run[1] += 1
        else:
            run[2] = run[1]
            run[0], run[1] = x, 1
            self.armed = True
        b = self._base
        if b is None:  # learning how long this stream's runs of one value last
            b = self._base = [0.0] * 16 + [0.0, 0.0, 0.0]  # 16-18: equal pairs, ends, longest
        if run[1] < b[0] or b[12] < self._warmup:
            # Equal pairs, and ends of runs that did repeat (a value seen once ends no
            # run), so the continuation rate is that of the runs this stream has: a series
            # at 0 between bursts repeats its 0s, not its bursts.
            b[12] += 1
            if run[1] > 1:
                b[16] += 1
                b[18] = max(b[18], run[1])
            elif run[2] > 1:
                b[17] += 1
                run[2] = 0
            if (b[12] >= self._warmup and not int(b[12]) % REFIT_TAIL) or b[12] == self._warmup:
                p = (b[16] + 1.0) / (b[16] + b[17] + 2.0)
                need = 1.0 + math.log(self._params.false_alarm_every) / -math.log(p)
                b[0] = max(float(self._params.min_run), need, 2.0 * b[18] + 1.0)
                b[1] = p
            return None
        if not self.armed:
            return None
        self.armed = False
        n = self.n
        length = int(run[1])
        onset = n - length + 1
        after = WindowStats(length, x)
        inner = Alarm(n, onset, WindowStats(0, x), after, "frozen", float(length), b[0])
        return self._stream_alarm(inner, onset, (onset, onset), after, t)

    def _rate(self, x: float, t: float) -> StreamAlarm | None:
        b = self._base
        if b is None:
            self._learn_rate(x)
            return None
        p0, disp = b[0], b[1]
        c = self._cusums[0]
        up = self._params.direction == "up"
        r = self._params.ratio if up else 1.0 / self._params.ratio
        p1 = min(max(p0 * r, 1e-9), 0.999)
        llr = x * math.log(p1 / p0) + (1.0 - x) * math.log((1.0 - p1) / (1.0 - p0))
        s = c.add(llr / disp, x, self.n)
        if s > self._h:
            return self._alarm(c, t, self._h, None, refit=True)
        if s > self._h / 3:  # well into an excursion: learn nothing from it
            return None
        b[0] = min(max(p0 + (x - p0) / (LEARN_EVERY * self._warmup), 1e-6), 0.99)
        # Overdispersion keeps being learned, batch by batch: a base rate that wanders
        # from one day to the next shows only over days, long after the warm-up.
        b[3] += x
        b[4] += 1
        if b[4] >= max(self._warmup // 10, 20):
            q = b[3] / b[4]
            b[5] += 1
            w = 1.0 / min(b[5], DISPERSION_BATCHES)
            binomial = p0 * (1.0 - p0) / b[4]
            b[6] += ((q - p0) ** 2 / binomial - b[6]) * w
            b[1] = _rate_dispersion(b[6], b[7], b[5])
            b[3] = b[4] = 0.0
        return None

    def _learn_rate(self, x: float) -> None:
        acc = self._acc
        assert acc is not None
        # reuse: [0] count, [2] sum, [3] batch sum, [4] batches, [5] sum of batch
        # rates, [6] sum of squared batch rates
        batch = max(self._warmup // 10, 20)
        acc[0] += 1
        acc[2] += x
        acc[3] += x
        if acc[0] % batch == 0:
            q = acc[3] / batch
            acc[4] += 1
            acc[5] += q
            acc[6] += q * q
            acc[3] = 0.0
        if acc[0] < self._warmup:
            return
        n = acc[0]
        p0 = min(max((acc[2] + 0.5) / (n + 1.0), 1e-6), 0.99)
        disp = 1.0
        if acc[4] >= 3:
            m = acc[5] / acc[4]
            var = (acc[6] - acc[4] * m * m) / (acc[4] - 1)
            disp = min(max(var / (p0 * (1 - p0) / batch), 1.0), MAX_DISPERSION)
        # 0 p0, 1 dispersion in use, 2 events learned, 3-4 the open batch's sum and
        # count, 5 batches since, 6 their dispersion, 7 the warm-up's (a floor)
        self._base = [p0, disp, float(n), 0.0, 0.0, float(acc[4]), disp, disp]
        self._base[1] = _rate_dispersion(disp, disp, acc[4])
        self._acc = None

    # ------------------------------------------------------------------ alarms

    def _alarm(self, c: Cusum, t: float, h: float, size: float | None, refit: bool) -> StreamAlarm:
        n = self.n
        onset = max(c.start, self.start + 1)
        count = max(c.count, 1)
        after = WindowStats(count, c.total / count)
        b = self._base
        assert b is not None
        # The change in noise units, estimated from the CUSUM: its statistic is the
        # log-likelihood ratio for `size`, so the mean input since onset follows.
        if size is not None:
            d = c.stat / (size * count) + size / 2
        else:
            d = math.sqrt(2.0 * c.stat / count)
        half = math.ceil(ONSET_SPREAD / max(d * d, 1e-6))
        interval = (max(onset - half, self.start + 1), min(onset + half, n))
        if self._kind == "rate":
            before = WindowStats(int(b[2]), b[0])
            std = math.sqrt(b[0] * (1 - b[0]))
        elif self._kind == "shift":
            # The level the stream was judged against: the model's, moved by the
            # centre (which, after an earlier alarm, sits on the level it changed to).
            level = b[0] + b[5] * b[4] * b[2] * (1.0 + b[17]) / max(1.0 - b[1], 1.0 - MAX_PHI)
            before = WindowStats(int(b[12]), level)
            std = b[3]
        else:
            before = WindowStats(int(b[12]), b[0])
            std = b[3]
        inner = Alarm(n, onset, before, after, self._kind, c.stat, h)
        result = self._stream_alarm(inner, onset, interval, after, t, std)
        if refit:
            self._new_fit()
        return result

    def _stream_alarm(
        self,
        inner: Alarm,
        onset: int,
        interval: tuple[int, int],
        after: WindowStats,
        t: float,
        std: float | None = None,
    ) -> StreamAlarm:
        b = self._base
        assert b is not None
        times = self._times

        def time_of(i: int) -> float:  # never after the reading that raised the alarm
            return min(times.time_of(i), t)

        return StreamAlarm(
            alarm=inner,
            index=self.n,
            onset=onset,
            detected_at=t,
            onset_at=time_of(onset),
            reference=inner.before,
            reference_std=b[3] if std is None else std,
            after=after,
            onset_range=(time_of(interval[0]), time_of(interval[1])),
        )

    # ---------------------------------------------------------------- snapshots

    def snapshot(self) -> dict[str, Any]:
        snap = {
            "v": SNAPSHOT_VERSION,
            "kind": self._kind,
            "n": self.n,
            "start": self.start,
            "prev": _f(self._prev),
            "e": self._e,
            "u": self._u,
            "run": [_f(self._run[0]), self._run[1], self._run[2]],
            "armed": self.armed,
            "acc": None
            if self._acc is None
            else [_f(v) if isinstance(v, float) else v for v in self._acc],
            "base": None if self._base is None else _fs(self._base),
            "cusums": [c.dump() for c in self._cusums],
            "times": self._times.dump(),
            "season": None if self._season is None else self._season.dump(),
            "long": None if self._long is None else _fs(self._long),
        }
        if self._regimes or self.away >= 0:  # (left out, the snapshot reads as before)
            snap["regimes"] = [_fs(r) for r in self._regimes]
            snap["away"] = self.away
        return snap

    @classmethod
    def restore(
        cls,
        snap: Mapping[str, Any],
        kind: str,
        params: LearnedParams,
        warmup: int,
        seasonality: Seasonality | None = None,
    ) -> LearnedStream:
        if snap.get("v") not in READABLE_VERSIONS or snap.get("kind") != kind:
            raise SnapshotError(
                f"stream snapshot ({snap.get('v')!r}, kind {snap.get('kind')!r}) was not "
                f"written by a {kind!r} monitor of this riskstream version: the monitor "
                "changed; reset its state to continue"
            )
        s = cls(kind, params, warmup, seasonality)
        s.n, s.start = int(snap["n"]), int(snap["start"])
        s._prev = _unf(snap["prev"])
        s._e = float(snap["e"])
        s._u = float(snap["u"])
        s._run = [_unf(snap["run"][0]), int(snap["run"][1]), int(snap["run"][2])]
        s.armed = bool(snap["armed"])
        s._regimes = [[_unf(v) for v in r] for r in snap.get("regimes", ())]
        s.away = int(snap.get("away", -1))
        acc = snap["acc"]
        s._acc = None if acc is None else [_unf(v) if isinstance(v, str) else v for v in acc]
        s._base = None if snap["base"] is None else [_unf(v) for v in snap["base"]]
        if s._base is not None and len(s._base) == 40:  # written before the wander slots
            s._base += [0.0, 0.0, math.nan, 0.0, 0.0, 0.0]
            s._base += [0.0] * 8
            s._base += [float(warmup), float(warmup // 2), 0.0]
        s._cusums = [Cusum.load(c) for c in snap["cusums"]]
        if kind == "shift" and len(s._cusums) == 2:  # written before the level pair: it
            s._cusums += [Cusum(), Cusum()]  # starts idle, and is sized at the next refresh
        s._times = _TimeIndex.load(snap["times"])
        long = snap["long"]
        s._long = None if long is None else [_unf(v) if isinstance(v, str) else v for v in long]
        if s._season is not None:
            if snap.get("season") is None:
                raise SnapshotError("stream snapshot has no seasonal profile; reset its state")
            s._season.load(snap["season"])
        return s

    def pack(self, seen: float) -> tuple[bytes, None] | None:
        """The packed snapshot, with ``seen`` (the monitor's data time of the stream's
        newest reading); None where the stream has no packed form (a seasonal profile,
        or state of a type the format does not hold): then :meth:`snapshot` it is.

        A checkpoint writes one per changed stream, and the JSON snapshot cost ~11-15
        µs of Python per stream (non-finite floats spelled as strings, the time index
        as deltas, the check that it decodes back); this is a few struct calls.  It
        needs no such check: doubles hold every float (NaN and infinities too), and
        what would not fit (an int beyond int64, an unexpected type) refuses to pack.
        Nor does it pack a non-finite number where the JSON snapshot has no spelling
        for one (e, u, a CUSUM's, seen): that snapshot's check then holds the stream,
        whose arithmetic has broken, as it always did.
        The second item is the cold part, which a learned stream does not have.
        """
        if self._season is not None:
            return None
        isfinite = math.isfinite
        if not (isfinite(self._e) and isfinite(self._u) and isfinite(seen)):
            return None
        for c in self._cusums:
            if not (isfinite(c.stat) and isfinite(c.total)):
                return None
        base, acc, long, regimes = self._base, self._acc, self._long, self._regimes
        run, times, cusums = self._run, self._times, self._cusums
        ms = times.ms
        try:
            # The time index moves once in STRIDE readings, and its steps cost the most
            # to pack: they are kept, for this index at this first sample and length,
            # and where it moved, the steps it kept are reused (see _packed_index).
            cached = self._packed_times
            if cached and cached[0] is times and cached[1] == times.first and cached[2] == len(ms):
                index, stepped = cached[3], cached[4]
            else:
                index, stepped = _packed_index(times, cached)
                last = ms[-1] if ms else None
                self._packed_times = (times, times.first, len(ms), index, stepped, last)
            head = _PACKED.pack(
                LEARNED_PACKED, _KIND_CODES[self._kind], self.n, self.start, run[1], run[2],
                self.away, times.first, self._prev, self._e, self._u, run[0], seen,
                self.armed, len(cusums), len(regimes), -1 if base is None else len(base),
                len(ms), stepped,
            )  # fmt: skip
            parts = [
                head,
                struct.pack(f"<{len(base)}d", *base) if base is not None else b"",
                _pack_cusums(cusums),
                index,
                _typed(long),
            ]
            if acc is None:
                parts.append(_NO_LIST)
            elif len(acc) > _ACC_GRID and type(acc[_ACC_GRID]) is list:
                parts.append(_typed([*acc[:_ACC_GRID], *acc[_ACC_GRID + 1 :]]))
                parts.append(_typed(acc[_ACC_GRID]))
            else:
                return None
            for r in regimes:
                parts.append(struct.pack(f"<H{len(r)}d", len(r), *r))
        except (struct.error, KeyError, TypeError, OverflowError):
            return None
        return b"".join(parts), None

    @classmethod
    def unpack(
        cls,
        raw: bytes,
        kind: str,
        params: LearnedParams,
        warmup: int,
        seasonality: Seasonality | None = None,
    ) -> tuple[LearnedStream, float]:
        """A stream from :meth:`pack`'s bytes, and the ``seen`` packed with it: as
        :meth:`restore` gives it from the same state's JSON snapshot."""
        try:
            (head, code, n, start, run1, run2, away, first, prev, e, u, run0, seen, armed,
             n_cusums, n_regimes, n_base, n_ms, stepped) = _PACKED.unpack_from(raw)  # fmt: skip
        except struct.error as exc:
            raise SnapshotError(f"packed learned stream snapshot is cut short: {exc}") from None
        if head != LEARNED_PACKED or code >= len(LEARNED_KINDS):
            raise SnapshotError(
                f"packed learned stream snapshot {head}/{code} was not written by this "
                "riskstream version: reset its state to continue"
            )
        if LEARNED_KINDS[code] != kind:
            raise SnapshotError(
                f"stream snapshot (packed, kind {LEARNED_KINDS[code]!r}) was not written by a "
                f"{kind!r} monitor of this riskstream version: the monitor changed; reset "
                "its state to continue"
            )
        if seasonality is not None:
            raise SnapshotError("stream snapshot has no seasonal profile; reset its state")
        s = cls(kind, params, warmup, seasonality)
        try:
            at = _PACKED.size
            base: list[float] | None = None
            if n_base >= 0:
                base = list(struct.unpack_from(f"<{n_base}d", raw, at))
                at += 8 * n_base
            cusums = []
            for _ in range(n_cusums):
                cusums.append(Cusum(*_CUSUM.unpack_from(raw, at)))
                at += _CUSUM.size
            if stepped and n_ms:
                index = f"<q{n_ms - 1}i"
                ms = list(itertools.accumulate(struct.unpack_from(index, raw, at)))
            else:
                index = f"<{n_ms}q"
                ms = list(struct.unpack_from(index, raw, at))
            at += struct.calcsize(index)
            long, at = _untyped(raw, at)
            acc, at = _untyped(raw, at)
            if acc is not None:
                grid, at = _untyped(raw, at)
                acc.insert(_ACC_GRID, grid)
            regimes = []
            for _ in range(n_regimes):
                (size,) = struct.unpack_from("<H", raw, at)
                regimes.append(list(struct.unpack_from(f"<{size}d", raw, at + 2)))
                at += 2 + 8 * size
        except struct.error as exc:
            raise SnapshotError(f"packed learned stream snapshot is cut short: {exc}") from None
        if at != len(raw):
            raise SnapshotError(
                f"packed learned stream snapshot has {len(raw) - at} bytes beyond its end"
            )
        s.n, s.start = n, start
        s._prev, s._e, s._u = prev, e, u
        s._run = [run0, run1, run2]
        s.armed = armed
        s._regimes = regimes
        s.away = away
        s._acc = acc
        s._base = base
        s._cusums = cusums
        s._times = _TimeIndex(first, ms)
        s._long = long
        return s, seen


# The packed snapshot (LearnedStream.pack): this header -- its first byte, the kind's
# index in LEARNED_KINDS, n, start, the frozen run's two counts, away, the time index's
# first sample; prev, e, u, the frozen run's value, seen; armed; how many CUSUMs and
# regimes, the base's length (-1: none), the number of times kept and whether they are
# written as int32 steps -- then the base (doubles), the CUSUMs (stat, start, count,
# total), the times (the first in int64 ms, then int32 steps, else int64 each), the
# long-stretch moments and the accumulator (typed lists, see _typed; the accumulator
# without its grid counts, then those), and each regime (its length, its doubles).
LEARNED_PACKED = 5
"""A packed learned snapshot's first byte: a JSON snapshot's is "{", a packed
StreamDetector's 4.  An older riskstream cannot read it, and starts the stream afresh."""
_PACKED = struct.Struct("<BBqqqqqqddddd?BBhH?")
_CUSUM = struct.Struct("<dqqd")
_FIRST = struct.Struct("<q")
_KIND_CODES = {kind: i for i, kind in enumerate(LEARNED_KINDS)}
_ACC_GRID = 15  # the accumulator's slot that holds the grid counts (a list)
_NO_LIST = b"\xff\xff"  # a typed list's length when there is none
_TYPE_CODES = {float: "d", int: "q", bool: "?"}
_TYPED: dict[tuple[type, ...], tuple[bytes, struct.Struct]] = {}
_UNTYPED: dict[bytes, struct.Struct] = {}


def _typed(xs: list[Any] | None) -> bytes:
    """A list of floats, ints and bools, each read back as the type it was (JSON keeps
    0 and 0.0 apart too): its length, a struct code per item, the items.  The codes of
    a layout are made once (a stream's accumulator has few)."""
    if xs is None:
        return _NO_LIST
    types = tuple(map(type, xs))
    got = _TYPED.get(types)
    if got is None:
        codes = "".join(_TYPE_CODES[t] for t in types).encode()  # KeyError: no packed form
        got = (struct.pack("<H", len(codes)) + codes, struct.Struct("<" + codes.decode()))
        if len(_TYPED) < 256:
            _TYPED[types] = got
    return got[0] + got[1].pack(*xs)


def _untyped(raw: bytes, at: int) -> tuple[list[Any] | None, int]:
    """A list :func:`_typed` wrote at ``at``, and where it ends."""
    (size,) = struct.unpack_from("<H", raw, at)
    at += 2
    if size == 0xFFFF:
        return None, at
    codes = raw[at : at + size]
    if len(codes) != size or codes.translate(None, b"dq?"):
        raise struct.error(f"bad type codes {codes!r}")
    layout = _UNTYPED.get(codes)
    if layout is None:
        layout = struct.Struct("<" + codes.decode())
        if len(_UNTYPED) < 256:
            _UNTYPED[codes] = layout
    return list(layout.unpack_from(raw, at + size)), at + size + layout.size


def _pack_cusums(cusums: list[Cusum]) -> bytes:
    pack = _CUSUM.pack
    return b"".join([pack(c.stat, c.start, c.count, c.total) for c in cusums])


def _packed_index(times: _TimeIndex, cached: tuple[Any, ...] | None) -> tuple[bytes, bool]:
    """A time index's times as packed (and whether as int32 steps), from those packed
    for it before (``cached``: the index, its first sample and length then, the bytes,
    stepped, its newest time) where it only moved on since: a time index changes only
    by ``_TimeIndex.add``, which appends a time and drops the oldest (``first`` moving
    on by a stride).  So the steps it kept are the old bytes' tail; the new ones are
    packed alone.  Packing all 64 steps (big ints subtracted) was ~4 µs a stream."""
    ms, first = times.ms, times.first
    if cached is not None and cached[0] is times and cached[4] and ms:
        dropped, rest = divmod(first - cached[1], _TimeIndex.STRIDE)
        kept = cached[2] - dropped
        if not rest and dropped >= 0 and 0 < kept <= len(ms) and ms[kept - 1] == cached[5]:
            new = ms[kept - 1 :]
            try:
                steps = struct.pack(f"<{len(new) - 1}i", *map(sub, new[1:], new))
            except struct.error:
                pass
            else:
                return b"".join((_FIRST.pack(ms[0]), cached[3][8 + 4 * dropped :], steps)), True
    whole = _packed_steps(ms)
    if whole is not None:
        return whole, True
    return struct.pack(f"<{len(ms)}q", *ms), False


def _packed_steps(ms: list[int]) -> bytes | None:
    """A time index's times as the first (int64 ms) and int32 steps; None where a step
    does not fit (24 days apart), which are then written in int64 each."""
    if not ms:
        return b""
    try:
        return struct.pack(f"<q{len(ms) - 1}i", ms[0], *map(sub, ms[1:], ms))
    except struct.error:
        return None


def unpacked_as_data(raw: bytes) -> dict[str, Any]:
    """A packed learned stream snapshot as the plain data :meth:`LearnedStream.snapshot`
    gives, with its ``seen``: for tools and tests that read saved state."""
    code = raw[1] if len(raw) > 1 else -1
    if not 0 <= code < len(LEARNED_KINDS):
        raise SnapshotError(f"packed learned stream snapshot names no kind ({code})")
    kind = LEARNED_KINDS[code]
    stream, seen = LearnedStream.unpack(raw, kind, learned_params(kind, {}), 20)
    return {**stream.snapshot(), "seen": seen}


def _fs(xs: list[float]) -> list[float | str]:
    """:func:`_f` of each; the usual all-finite list is copied at C speed."""
    if all(map(math.isfinite, xs)):
        return list(xs)
    return [_f(x) for x in xs]


def _f(x: float) -> float | str:
    """A float as JSON data: non-finite ones as the strings "nan", "inf" and "-inf"
    (orjson would write them as null, which no restore can read back)."""
    if math.isfinite(x):
        return x
    return "nan" if x != x else ("inf" if x > 0 else "-inf")


def _unf(x: Any) -> float:
    return float(x)  # a number, or one of those strings


def _new_moments() -> list[Any]:
    return [0, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0] + [0.0] * 16 + [0.0, 0.0]


def _moments(acc: list[Any], x: float) -> None:
    """Count ``x`` into a model's moments (indices 0-6, 23, 24 of an accumulator):
    sums of values, squares, lag-1 and lag-2 products, shifted by the first value."""
    if acc[0] == 0:
        acc[1] = x
    y = x - acc[1]
    acc[0] += 1
    acc[2] += y
    acc[3] += y * y
    if acc[0] > 1:
        acc[4] += y * acc[5]
    if acc[0] > 2:
        acc[23] += y * acc[24]
    acc[24] = acc[5]
    acc[5] = y
    acc[6] = x


def _model(acc: list[Any]) -> tuple[float, float, float, float, float]:
    """(level, phi, theta, innovation sd, sd) of an ARMA(1,1) from such moments."""
    n = acc[0]
    mean = acc[2] / n
    g0 = max(acc[3] / n - mean * mean, 1e-300)
    rho1 = (acc[4] / (n - 1) - mean * mean) / g0
    rho2 = (acc[23] / (n - 2) - mean * mean) / g0
    phi, theta = _arma11(rho1, rho2, n)
    # The innovations' variance: gamma0 (1 - phi^2) / (1 + 2 phi theta + theta^2).
    s0 = math.sqrt(g0 * (1.0 - phi * phi) / (1.0 + 2.0 * phi * theta + theta * theta))
    return acc[1] + mean, phi, theta, s0, math.sqrt(g0)


def _arma11(rho1: float, rho2: float, n: int) -> tuple[float, float]:
    """An ARMA(1,1)'s (phi, theta) from the lag-1 and lag-2 autocorrelations (method
    of moments).  A slow component under white noise (a cycle, a wandering level)
    shows as rho2 / rho1 near 1 with rho1 well below it; that is an ARMA(1,1), whose
    one-step prediction is an exponentially weighted mean.  Correlations within
    noise of zero give (0, 0); where no invertible solution exists, an AR(1)."""
    noise = 2.0 / math.sqrt(n)
    if rho1 <= noise:
        return 0.0, 0.0
    phi = rho2 / rho1 if rho2 > noise else 0.0
    phi = min(max(phi, 0.0), MAX_PHI)
    a = rho1 - phi
    if abs(a) < 1e-9:
        return phi, 0.0
    b = 2.0 * rho1 * phi - 1.0 - phi * phi
    disc = b * b - 4.0 * a * a
    if disc < 0:
        return min(rho1, MAX_PHI), 0.0
    root = math.sqrt(disc)
    theta = min(((-b + root) / (2 * a), (-b - root) / (2 * a)), key=abs)
    if abs(theta) >= MAX_THETA:
        return min(rho1, MAX_PHI), 0.0
    return phi, theta


def _rate_dispersion(batch_disp: float, floor: float, batches: float) -> float:
    """A rate's overdispersion (the variance of batch rates over the binomial one) at
    its upper confidence bound.

    The CUSUM's false-alarm rate is ``exp(-h D / D_true)``: a ``D`` estimated too
    low by a third raises it from 1 in a million to 1 in ten thousand.  So ``D`` is
    taken one standard error above its estimate (``sqrt(2 / batches)``, a variance
    from that many batches): cautious while few batches were seen.  (Extrapolating
    a day-to-day wander from the batches' scale to the CUSUM's longer window was
    tried: it amplified the estimate's noise, and cost a quarter of the doublings
    caught at a 1% base rate for no fewer false alarms.)"""
    se = math.sqrt(2.0 / max(min(batches, DISPERSION_BATCHES), 1.0))
    return min(max(batch_disp, floor, 1.0) * (1.0 + se), MAX_DISPERSION)


def _tilt(d: float, skew: float) -> float:
    """The root theta > 0 of -d^2/2 t + d^2/2 t^2 + d^3 skew / 6 t^3 = 0, in [0.2, 1]."""
    c = d * skew / 3.0
    if abs(c) < 1e-9:
        return 1.0
    disc = 1.0 + 4.0 * c
    if disc <= 0:
        return 1.0
    return min(max((-1.0 + math.sqrt(disc)) / (2.0 * c), 0.2), 1.0)


def _tail_limit(
    n: float, k: float, s1: float, s2: float, every: float, heavy: float = 0.0
) -> float:
    """The |innovation| exceeded with probability ``1 / every``: a generalised Pareto
    tail beyond TAIL_FROM, fitted by moments to ``k`` of ``n`` events (excess sum
    ``s1``, squared ``s2``), its shape kept in [0, 0.5] (never lighter than
    exponential) and shrunk towards a heavy prior while exceedances are few.

    ``heavy`` is the shape :func:`_heavy_shape` found (0: none yet); from HEAVY_FROM
    on it replaces the moments' one.  From 1/4 on the excess's variance has an
    infinite variance of its own, so the largest few excesses decide the moments'
    shape and it comes out low: a tail too light, extrapolated to 1/N, false-alarms
    too often; from about 0.15 on the moments' shape is already lower and no steadier.
    Below, the moments' shape is kept: near 0 it varies less.

    The shape is an estimate, with a standard error of about ``(1 + shape) /
    sqrt(k)`` (the maximum-likelihood bound, Smith 1987, which both estimators
    nearly reach), and the quantile is extrapolated over many decades, where that
    error counts most: a shape read 0.05 low puts a t3 stream's limit 40% short, and
    the stream alarms 4-5x as often as asked.  So the limit is the *predictive*
    quantile: the level that the tail exceeds with probability ``1 / every`` on
    average over the shape's uncertainty (SHAPE_NODES, the scale following the
    shape so the mean excess stays what was seen), not the plug-in quantile of the
    estimate.  That is done where the tail reads heavy (``heavy`` from HEAVY_FROM
    on), and the limit is the larger of the two quantiles.  Below, the plug-in one
    stands: the floor at exponential already errs on the side of caution there (a
    Laplace stream's limit is exceeded about a fifth as often as asked), and averaging
    over shapes around 0 would move a Laplace stream's limit out by a spread or more,
    past spikes of 14 sd it catches now."""
    ratio = max(k, 1.0) / n * every
    if ratio <= 1:
        return TAIL_FROM
    xi, beta = TAIL_PRIOR
    if k < 2:
        return _quantile(ratio, xi, beta)
    ybar = s1 / k
    v = max(s2 / k - ybar * ybar, 1e-12)
    raw = 0.5 * (1.0 - ybar * ybar / v)
    if heavy >= HEAVY_FROM:
        raw = heavy
    w = k / (k + TAIL_PRIOR_WEIGHT)  # few exceedances: lean on the heavy prior
    fit = min(max(raw, 0.0), 0.5)
    beta = w * max(ybar * (1.0 - fit), 0.05) + (1 - w) * beta
    plug_in = _quantile(ratio, w * fit + (1 - w) * xi, beta)
    if heavy < HEAVY_FROM:  # not a heavy tail: the floor at exponential is caution enough
        return plug_in
    return max(plug_in, _predictive(ratio, raw, k, ybar, w, plug_in - TAIL_FROM))


def _predictive(ratio: float, raw: float, k: float, ybar: float, w: float, t: float) -> float:
    """The level beyond TAIL_FROM whose exceedance probability, averaged over the
    shape's uncertainty (normal around ``raw``, standard error ``(1 + raw) /
    sqrt(k)``, at most SHAPE_CAP; shrunk by ``w`` towards TAIL_PRIOR as the fit is),
    is ``1 / ratio``, each shape with the scale that keeps the excess's mean at
    ``ybar``.  Found by Newton's method on ``log t`` from ``t`` beyond TAIL_FROM (the
    plug-in quantile)."""
    se = (1.0 + min(max(raw, 0.0), 0.5)) / math.sqrt(k)
    prior_xi, prior_beta = TAIL_PRIOR
    nodes: list[tuple[float, float, float]] = []  # (weight, shape, scale)
    for z, weight in SHAPE_NODES:
        fit = min(raw + se * z, SHAPE_CAP)
        xi = w * fit + (1 - w) * prior_xi
        beta = w * max(ybar * (1.0 - fit), 0.05) + (1 - w) * prior_beta
        if nodes and nodes[-1][1] == xi:  # clamped at SHAPE_CAP: one node of their weights
            nodes[-1] = (nodes[-1][0] + weight, xi, beta)
        else:
            nodes.append((weight, xi, beta))
    # sum(weight * P(excess > t)) = 1 / ratio; log P is nearly linear in log t
    target = -math.log(ratio)
    for i in range(MAX_NEWTON):
        p = dp = 0.0
        for weight, xi, beta in nodes:
            if xi > 1e-6 or (xi < -1e-6 and xi * t > -beta):  # (not beyond a light tail's end)
                q = weight * math.exp(-math.log1p(xi * t / beta) / xi)
            elif xi < -1e-6:
                continue
            else:
                q = weight * math.exp(-t / beta)
            p += q
            dp += q * t / (beta + xi * t)  # -d(weight * P) / d log t
        if not i and (p <= 0.0 or math.log(p) <= target):
            break  # the plug-in quantile is exceeded no more often: it stands
        if p <= 0.0:  # overshot every tail's end
            t *= 0.5
            continue
        step = (math.log(p) - target) * p / dp
        t *= math.exp(max(min(step, 5.0), -5.0))
        if abs(step) < 1e-5:  # the limit to 1e-5 of itself
            break
    return TAIL_FROM + t


def _quantile(ratio: float, xi: float, beta: float) -> float:
    """The level beyond TAIL_FROM that a generalised Pareto excess of shape ``xi`` and
    scale ``beta`` exceeds with probability ``1 / ratio``."""
    if xi > 1e-6:
        return TAIL_FROM + beta / xi * (float(ratio**xi) - 1.0)
    return TAIL_FROM + beta * math.log(ratio)


def _heavy_shape(k: float, s1: float, s_half: float) -> float:
    """A generalised Pareto shape in [0, 0.5] from the moments of order 1/2 and 1 of
    ``k`` excesses (sums ``s_half`` and ``s1``); 0 while they are fewer than the prior
    is worth.

    Their sample means have finite variances for shapes up to 1 (order 1/2) and 1/2
    (order 1); the method of moments' sample variance only up to 1/4.  So this stays
    steadier on heavy tails.
    For a shape ``xi`` the ratio ``E[y^1/2]^2 / E[y]`` is ``(1 - xi) xi^-3 (Gamma(3/2)
    Gamma(1/xi - 1/2) / Gamma(1/xi + 1))^2`` whatever the scale, falling from pi/4 at 0
    to 0.617 at 1/2: solved by bisection.

    >>> round(_heavy_shape(100, 100.0, 100 * math.sqrt(math.pi) / 2), 6)  # an exponential
    0.0
    >>> xi = 0.3  # and a shape-0.3 tail's
    >>> round(_heavy_shape(100, 100.0, 100 * math.sqrt(_half_ratio(xi))), 6)
    0.3
    """
    if k < TAIL_PRIOR_WEIGHT or s1 <= 0.0:
        return 0.0
    r = (s_half / k) ** 2 / (s1 / k)
    if r >= _HALF_RATIO[0]:
        return 0.0
    if r <= _HALF_RATIO[1]:
        return 0.5
    lo, hi = 0.0, 0.5
    for _ in range(30):  # to 5e-10
        mid = 0.5 * (lo + hi)
        if _half_ratio(mid) > r:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _half_ratio(xi: float) -> float:
    """``E[y^1/2]^2 / E[y]`` of a generalised Pareto excess of shape ``xi`` in (0, 1)."""
    g = math.lgamma
    log_half = 1.5 * math.log(1.0 / xi) + g(1.5) + g(1.0 / xi - 0.5) - g(1.0 / xi + 1.0)
    return math.exp(2.0 * log_half) * (1.0 - xi)


_HALF_RATIO = (math.pi / 4.0, _half_ratio(0.5))  # at shape 0 (exponential) and 1/2


def _crossing(tail: list[float], p: float) -> float:
    """Where the tail function P(|u| > g) falls through ``p``, interpolated on GRID."""
    prev_g, prev_p = 0.0, 1.0
    for g, q in zip(GRID, tail, strict=True):
        if q <= p:
            if prev_p == q:
                return g
            return prev_g + (g - prev_g) * (prev_p - p) / (prev_p - q)
        prev_g, prev_p = g, q
    return GRID[-1]


def _band(tail: list[float], p: float, nb: int) -> tuple[float, float]:
    """The grid point whose exceedance rate is nearest ``p`` (within a factor of 3),
    and that rate with a one-count prior; (inf, 0) where no grid point qualifies."""
    best = None
    for g, q in zip(GRID, tail, strict=True):
        if p / 3 <= q <= min(3 * p, 0.5) and (best is None or abs(math.log(q / p)) < best[2]):
            best = (g, q, abs(math.log(q / p)))
    if best is None:
        return math.inf, 0.0
    return best[0], (best[1] * nb + 1.0) / (nb + 2.0)
