"""Detector quality of a config's monitors, as a user sees them: false incidents and delays.

    .venv/bin/python bench/detector_quality.py                 # full run, ~10 min on 2 cores
    .venv/bin/python bench/detector_quality.py --quick         # smaller, ~1 min
    .venv/bin/python bench/detector_quality.py --only stationary --family ar1-0.9
    .venv/bin/python bench/detector_quality.py --config my-config.yaml

A measurement, not a test.  The monitors are driven the way the processor drives
them: one ``PartitionDetectors(specs, "sensor")`` (or ``"inference"``) per simulated
Kafka partition, built from the specs of the loaded config (``--config FILE``, or the
shipped default), fed event dicts shaped like ``schemas/sensor-event.schema.json`` and
``schemas/inference-event.schema.json``, many streams interleaved in time order.  So
every monitor of the config (drift, out-of-range, stuck, missing, and any kind added
later) is measured together.  Results are grouped by ``finding.monitor.name``; no
monitor name is assumed.  A finding with ``update=False`` opens an incident (counted as
an incident), one with ``update=True`` updates an open one (counted apart).

(a) stationary families: false incidents per 100,000 events per stream (all incidents
    on the family's streams / all its events), with the 95% Poisson upper bound.
(b) failures injected into one stream's data at its event ``--at`` (other streams on
    the partition keep going): the fraction caught within the horizon, the delay in
    the stream's own events from the change to the first new incident on that
    stream (1 = on the first changed event; for a stream that stopped sending, the
    events it would have sent by then), the onset error |alarm onset - first changed
    event|, and the monitor that caught it first.

Setup and tables go to stdout, progress to stderr.  Seeds are deterministic: the same
arguments give the same figures.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF
from typing import Any

import numpy as np

from riskstream.config import load_config
from riskstream.core.monitors import MonitorSpec, PartitionDetectors
from riskstream.progress import Progress

T0 = 1_795_651_200.0  # 2026-11-26T00:00:00Z
MIN = 60.0
HOUR = 3600.0
DAY = 86_400.0
WEEK = 7 * DAY
HALF_MS = 0.0005  # times compared to the millisecond the events carry
GOAL = 1.0  # false incidents per 100k events per stream
GOAL_DELAY = 60  # events, median, iid gaussian +1 sigma
GLITCH_EVERY = 20_000  # future-glitch: one reading in this many is dated an hour ahead
BATCH_S = 900.0  # batched: a gateway forwards half the sensors' readings this often
RATE_REL_SD = 0.2  # day-to-day spread of a harmful rate, relative to its base rate
SCORE_WANDER_SD = 0.5  # stationary sd of a model's mean logit score (noise sd 1)

# --------------------------------------------------------------------------- families


@dataclass(frozen=True, slots=True)
class Family:
    """A stationary family: how one partition of its streams is drawn."""

    name: str
    side: str  # "sensor" or "inference"
    what: str
    cadence: str
    dt: float = 1.0  # nominal seconds between one stream's events
    kind: str = "gauss"  # gauss | ar1 | cycle | t3 | poisson | zip | rounded | irregular ...
    param: float = 0.0
    base: bool = False  # used as a base for the failures by default
    stretch: int = 1  # stationary: this many times the events per stream, over fewer streams


FAMILIES: tuple[Family, ...] = (
    Family(
        "gaussian",
        "sensor",
        "iid N(mu, sigma); mu ~ U(-100, 100), sigma ~ logU(0.05, 20) per stream",
        "1 event/s per sensor",
        base=True,
    ),
    *(
        Family(
            f"ar1-{phi:g}",
            "sensor",
            f"AR(1), phi = {phi:g}, unit marginal sd, times sigma ~ logU(0.05, 20), "
            "plus mu ~ U(-100, 100)",
            "1 event/s per sensor",
            kind="ar1",
            param=phi,
            base=phi == 0.9,
        )
        for phi in (0.5, 0.9, 0.97)
    ),
    *(
        Family(
            f"cycle-{label}",
            "sensor",
            f"mu + A sin(2 pi t / {label} + phase) + N(0, sigma), A/sigma ~ U(0.5, 3)",
            f"1 event every {dt:g} s per sensor ({period / dt:,.0f} events per period)",
            dt=dt,
            kind="cycle",
            param=period,
            base=label == "1d",
            stretch=2 if label == "1w" else 1,
        )
        for label, period, dt in (
            ("10min", 10 * MIN, 2.0),
            ("1h", HOUR, 10.0),
            ("1d", DAY, 30.0),
            ("1w", WEEK, 60.0),
        )
    ),
    Family(
        "t3",
        "sensor",
        "mu + Student-t(3) noise scaled to marginal sd sigma ~ logU(0.05, 20)",
        "1 event/s per sensor",
        kind="t3",
        base=True,
    ),
    *(
        Family(
            f"poisson-{lam:g}",
            "sensor",
            f"Poisson({lam:g}) counts",
            "1 event every 10 s per sensor",
            dt=10.0,
            kind="poisson",
            param=lam,
            base=lam == 1,
        )
        for lam in (0.1, 1.0, 5.0)
    ),
    Family(
        "zero-inflated",
        "sensor",
        "0 most of the time; bursts (start p = 0.005 per event, mean length 5 events) "
        "of 1 + Poisson(4) counts",
        "1 event every 10 s per sensor",
        dt=10.0,
        kind="zip",
    ),
    Family(
        "rounded",
        "sensor",
        "iid N(mu, sigma) rounded to a resolution r, r/sigma ~ U(0.5, 2) per stream",
        "1 event/s per sensor",
        kind="rounded",
    ),
    Family(
        "irregular",
        "sensor",
        "iid N(mu, sigma), exponential gaps between readings",
        "exponential gaps, mean 30 s, per sensor",
        dt=30.0,
        kind="irregular",
    ),
    Family(
        "mixed-cadence",
        "sensor",
        "iid N(mu, sigma); on one partition, 1/6 of the sensors every 10 s, 1/3 every "
        "10 min, 1/2 every hour (jitter +-5%), over a span of 60 s x 'events per "
        "stream' (so the 10 s sensors send 6x that many)",
        "10 s, 10 min and 1 h on the same partition",
        dt=10.0,
        kind="mixed",
    ),
    Family(
        "future-glitch",
        "sensor",
        f"iid N(mu, sigma); one reading in {GLITCH_EVERY:,} (per sensor) carries a time 1 h "
        "ahead (a clock glitch), delivered in arrival order",
        "1 event/s per sensor",
        kind="glitch",
    ),
    Family(
        "batched",
        "sensor",
        f"iid N(mu, sigma); half the sensors' readings reach the partition in batches every "
        f"{BATCH_S / 60:g} min (a gateway's buffer; data time = reading time), the other "
        "half live, interleaved in arrival order",
        "1 event every 10 s per sensor",
        dt=10.0,
        kind="batched",
    ),
    Family(
        "line-shifts",
        "sensor",
        "a machine's sensor: running 06:00-22:00 at mu + N(0, sigma), idle at night and at "
        "weekends at mu - D + N(0, s), D/sigma ~ U(10, 40), s/sigma ~ U(0.2, 0.6); the "
        "first readings at midnight (idle)",
        "1 event/min per sensor",
        dt=60.0,
        kind="line",
    ),
    Family(
        "batch-runs",
        "sensor",
        "as line-shifts, but running and idle in turns of U(1 h, 12 h) each",
        "1 event/min per sensor",
        dt=60.0,
        kind="runs",
    ),
    *(
        Family(
            f"harmful-{p:g}",
            "inference",
            f"per (model, group): harmful 0/1 at base rate {p:g}, each UTC day's rate drawn "
            f"from a Beta around it (sd {RATE_REL_SD:g} x rate); groups share traffic "
            "0.5/0.3/0.2; score = sigmoid(N(m, 1)), m ~ U(-1, 1) per model",
            "per model, exponential gaps, mean 20 s",
            dt=20.0,
            kind="harmful",
            param=p,
            base=True,
        )
        for p in (0.01, 0.05, 0.2)
    ),
    Family(
        "score-wander",
        "inference",
        f"score = sigmoid(m(t) + N(0, 1)), m(t) an Ornstein-Uhlenbeck process around "
        f"m0 ~ U(-1, 1), time constant 1 day, sd {SCORE_WANDER_SD:g}; harmful at 0.05 "
        "(wandering as above)",
        "per model, exponential gaps, mean 20 s",
        dt=20.0,
        kind="score-wander",
        param=0.05,
        base=True,
    ),
)
FAMILY = {f.name: f for f in FAMILIES}
# families whose point is the partition's timing, not a stream's values: no failures on them
NOT_BASES = frozenset({"mixed", "glitch", "batched", "line", "runs"})
GROUP_SHARES = (0.5, 0.3, 0.2)
MIXED_CADENCES = (10.0, 600.0, 3600.0, 600.0, 3600.0, 3600.0)  # seconds, by sensor


def _seeded(*parts: object) -> np.random.Generator:
    """A generator seeded by names and numbers (stable when families are added)."""
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


@dataclass(slots=True)
class Base:
    """One sensor stream before any failure: value = level + noise (or counts)."""

    ts: np.ndarray
    level: np.ndarray
    noise: np.ndarray
    sigma: float  # the noise's marginal standard deviation (the unit of failures)
    lam: float | None = None  # Poisson rate, for count families
    resolution: float | None = None

    def values(self) -> np.ndarray:
        return self.level + self.noise


def _times(rng: np.random.Generator, n: int, dt: float, irregular: bool = False) -> np.ndarray:
    """Event times of one stream: ``n`` events every ``dt`` s with +-5% jitter that does
    not accumulate, or (irregular) exponential gaps of mean ``dt`` over the same span,
    so that the streams of a partition start and end together.  Whole milliseconds, as
    the events' RFC 3339 strings carry them."""
    start = T0 + rng.uniform(0.0, dt)
    if irregular:
        gaps = rng.exponential(dt, int(n * 1.2 + 10 * math.sqrt(n) + 10))
        ts = start + np.cumsum(gaps)
        ts = ts[ts < start + n * dt]
    else:
        ts = start + dt * (np.arange(n) + rng.uniform(-0.05, 0.05, n))
    return np.round(ts * 1000.0) / 1000.0


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.normal(0.0, math.sqrt(1.0 - phi * phi), n).tolist()
    out = [0.0] * n
    x = rng.normal()
    for i in range(n):
        x = phi * x + e[i]
        out[i] = x
    return np.asarray(out)


def sensor_base(fam: Family, rng: np.random.Generator, n: int, dt: float | None = None) -> Base:
    """One stream of a sensor family, ``n`` events (``dt`` overrides the cadence)."""
    dt = fam.dt if dt is None else dt
    mu = rng.uniform(-100.0, 100.0)
    sigma = math.exp(rng.uniform(math.log(0.05), math.log(20.0)))
    ts = _times(rng, n, dt, irregular=fam.kind == "irregular")
    n = len(ts)
    kind = fam.kind
    if kind in ("gauss", "irregular", "mixed", "rounded", "glitch", "batched"):
        noise = rng.normal(0.0, sigma, n)
        b = Base(ts, np.full(n, mu), noise, sigma)
        if kind == "rounded":
            b.resolution = sigma * rng.uniform(0.5, 2.0)
        return b
    if kind == "ar1":
        return Base(ts, np.full(n, mu), sigma * _ar1(rng, n, fam.param), sigma)
    if kind == "cycle":
        amp = sigma * rng.uniform(0.5, 3.0)
        level = mu + amp * np.sin(2 * np.pi * ts / fam.param + rng.uniform(0, 2 * np.pi))
        return Base(ts, level, rng.normal(0.0, sigma, n), sigma)
    if kind == "t3":
        return Base(ts, np.full(n, mu), sigma / math.sqrt(3.0) * rng.standard_t(3, n), sigma)
    if kind == "poisson":
        lam = fam.param
        return Base(ts, np.zeros(n), rng.poisson(lam, n).astype(float), math.sqrt(lam), lam=lam)
    if kind in ("line", "runs"):
        running = _running(rng, ts, kind)
        idle_sd = sigma * rng.uniform(0.2, 0.6)
        drop = sigma * rng.uniform(10.0, 40.0)
        level = np.where(running, mu, mu - drop)
        noise = np.where(running, rng.normal(0.0, sigma, n), rng.normal(0.0, idle_sd, n))
        return Base(ts, level, noise, sigma)
    if kind == "zip":
        on = np.zeros(n, dtype=bool)
        state = False
        starts, stops = rng.random(n) < 0.005, rng.random(n) < 0.2
        for i in range(n):
            state = (not stops[i]) if state else bool(starts[i])
            on[i] = state
        x = np.where(on, 1 + rng.poisson(4.0, n), 0).astype(float)
        return Base(ts, np.zeros(n), x, float(np.std(x)) or 1.0, lam=float(np.mean(x)))
    raise ValueError(f"{fam.name} is not a sensor family")


def _running(rng: np.random.Generator, ts: np.ndarray, kind: str) -> np.ndarray:
    """line: 06:00-22:00 on weekdays (days from T0's midnight, day 5 and 6 idle);
    runs: running and idle in turns of U(1 h, 12 h), idle first."""
    since = ts - (T0 - T0 % DAY)
    if kind == "line":
        hour, day = (since % DAY) / HOUR, since // DAY
        return (hour >= 6.0) & (hour < 22.0) & (day % 7 < 5)
    out = np.zeros(len(ts), dtype=bool)
    state, until = False, ts[0] + rng.uniform(HOUR, 12 * HOUR)
    for i, t in enumerate(ts):
        while t >= until:
            state, until = not state, until + rng.uniform(HOUR, 12 * HOUR)
        out[i] = state
    return out


def _finish(b: Base, x: np.ndarray) -> np.ndarray:
    if b.resolution is not None:
        return np.round(x / b.resolution) * b.resolution
    return x


@dataclass(slots=True)
class Stream:
    """One stream of a partition: its key, event times and per-event columns."""

    key: str
    ts: np.ndarray  # arrival: the order the partition delivers them in
    cols: dict[str, np.ndarray]
    data_ts: np.ndarray | None = None  # the time the event carries, when not ``ts``


def sensor_partition(fam: Family, rng: np.random.Generator, streams: int, n: int) -> list[Stream]:
    out = []
    for s in range(streams):
        dt, count = fam.dt, n
        if fam.kind == "mixed":
            span = n * 60.0
            dt = MIXED_CADENCES[s % len(MIXED_CADENCES)]
            count = max(int(span / dt), 2)
        b = sensor_base(fam, rng, count, dt)
        arrival, data = b.ts, None
        if fam.kind == "glitch":
            data = b.ts.copy()
            data[rng.random(len(data)) < 1.0 / GLITCH_EVERY] += HOUR
        elif fam.kind == "batched" and s % 2:
            data = b.ts
            windows = np.floor((b.ts - T0) / BATCH_S) + 1.0
            arrival = T0 + windows * BATCH_S + rng.uniform(0.0, 5.0)
        out.append(Stream(f"s{s:02d}", arrival, {"value": _finish(b, b.values())}, data))
    return out


def _day_rates(
    rng: np.random.Generator, p: float, days: np.ndarray, rel_sd: float = RATE_REL_SD
) -> np.ndarray:
    """Each UTC day's rate, Beta with mean p and sd rel_sd * p, indexed by ``days``."""
    k = max((1.0 - p) / (p * rel_sd * rel_sd) - 1.0, 1.0)
    lo, hi = int(days.min()), int(days.max())
    per_day = rng.beta(k * p, k * (1.0 - p), hi - lo + 1)
    return per_day[days - lo]


def inference_partition(
    fam: Family,
    rng: np.random.Generator,
    models: int,
    n: int,
    change: tuple[int, int, int] | None = None,
    score_shift: tuple[int, int] | None = None,
) -> list[Stream]:
    """``models`` model streams of ``n`` events; ``change`` = (model, group, at): that
    group's harmful rate doubles from its ``at``-th event on; ``score_shift`` = (model,
    at): that model's mean logit score rises by 1 from its ``at``-th event on."""
    out = []
    p = fam.param
    for m in range(models):
        ts = _times(rng, n, fam.dt, irregular=True)
        k = len(ts)
        groups = rng.choice(len(GROUP_SHARES), k, p=GROUP_SHARES)
        days = ((ts - T0) // DAY).astype(int)
        rate = np.empty(k)
        for g in range(len(GROUP_SHARES)):
            mine = groups == g
            rate[mine] = _day_rates(rng, p, days)[mine]
        if change is not None and change[0] == m:
            _, g, at = change
            where = np.flatnonzero(groups == g)
            if len(where) > at:
                rate[where[at:]] = np.minimum(2 * rate[where[at:]], 1.0)
        harmful = (rng.random(k) < rate).astype(int)
        m0 = rng.uniform(-1.0, 1.0)
        logit = m0 + rng.normal(0.0, 1.0, k)
        if fam.kind == "score-wander":
            logit += _ou(rng, ts, DAY, SCORE_WANDER_SD)
        if score_shift is not None and score_shift[0] == m:
            logit[score_shift[1] :] += 1.0
        out.append(
            Stream(
                f"m{m}",
                ts,
                {"group": groups, "score": 1.0 / (1.0 + np.exp(-logit)), "harmful": harmful},
            )
        )
    return out


def _ou(rng: np.random.Generator, ts: np.ndarray, tau: float, sd: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck path at times ``ts`` (stationary sd ``sd``)."""
    decay = np.exp(-np.diff(ts, prepend=ts[0]) / tau).tolist()
    e = rng.normal(0.0, 1.0, len(ts)).tolist()
    out = [0.0] * len(ts)
    x = rng.normal(0.0, sd)
    for i, a in enumerate(decay):
        x = a * x + sd * math.sqrt(1.0 - a * a) * e[i]
        out[i] = x
    return np.asarray(out)


# --------------------------------------------------------------------------- failures


@dataclass(frozen=True, slots=True)
class Failure:
    name: str
    what: str


EXCURSION = 300  # events an excursion lasts before the level comes back
FAILURES = (
    Failure("shift-1s", "level + 1 sigma from the change on (counts: + Poisson(sigma))"),
    Failure("shift-2s", "level + 2 sigma"),
    Failure("ramp", "level rises linearly by 2 sigma over --ramp events, then holds"),
    Failure("variance-x2", "noise variance doubles (counts: negative binomial, the same mean)"),
    Failure("stuck", "the value freezes at the last reading before the change"),
    Failure("missing", "the sensor stops sending; the others go on"),
    Failure("spikes", "5 spikes of 6-12 sigma (random sign; counts: upwards) in 20 events"),
    Failure(
        "excursion",
        f"level + 6 sigma for {EXCURSION} events, then + 2 sigma (a valve that closes, then partly "
        "reopens); "
        "'back' = streams with a finding after the step back, and its median delay",
    ),
)
RATE_FAILURE = Failure("rate-x2", "one group's harmful rate doubles (the others unchanged)")
SCORE_FAILURE = Failure(
    "score-shift", "a model's mean logit score + 1 (its noise sd), in all groups"
)
MODEL_FAILURES = (RATE_FAILURE, SCORE_FAILURE)
FAILURE = {f.name: f for f in (*FAILURES, *MODEL_FAILURES)}


def apply_failure(
    b: Base, failure: str, at: int, rng: np.random.Generator, ramp: int
) -> tuple[np.ndarray, np.ndarray]:
    """Event times and values of ``b`` with ``failure`` from event index ``at`` (0-based)."""
    n = len(b.ts)
    i = np.arange(n)
    after = i >= at
    counts = b.lam is not None
    x = b.values().copy()
    if failure in ("shift-1s", "shift-2s", "ramp", "excursion"):
        k = {"shift-1s": 1.0, "shift-2s": 2.0}.get(failure)
        add = np.where(after, k, 0.0) if k is not None else 2.0 * np.clip((i - at + 1) / ramp, 0, 1)
        if failure == "excursion":
            add = np.where(after, np.where(i < at + EXCURSION, 6.0, 2.0), 0.0)
        if counts:  # extra Poisson counts: Poisson(lam) becomes Poisson(lam + k sigma)
            x[at:] += rng.poisson(add[at:] * b.sigma)
        else:
            x += add * b.sigma
    elif failure == "variance-x2":
        if counts:  # negative binomial, the same mean and twice the variance
            assert b.lam is not None
            p = b.lam / (2.0 * b.sigma**2)
            x[at:] = rng.negative_binomial(b.lam * p / (1.0 - p), p, n - at)
        else:
            x[at:] = b.level[at:] + math.sqrt(2.0) * b.noise[at:]
    elif failure == "stuck":
        x = _finish(b, x)
        x[at:] = x[at - 1]
        return b.ts, x
    elif failure == "missing":
        return b.ts[:at], _finish(b, x)[:at]
    elif failure == "spikes":
        idx = at + np.concatenate(([0], np.sort(rng.choice(np.arange(1, 20), 4, replace=False))))
        size = rng.uniform(6.0, 12.0, 5) * b.sigma
        if counts:
            x[idx] += np.round(size)
        else:
            x[idx] += size * rng.choice((-1.0, 1.0), 5)
    else:
        raise ValueError(failure)
    return b.ts, _finish(b, x)


# --------------------------------------------------------------------------- the partition


@dataclass(frozen=True, slots=True)
class Seen:
    """One finding, reduced to what the bench counts."""

    stream_key: str
    monitor: str
    update: bool
    index: int
    onset: int
    detected_at: float


def _time_strings(ts: np.ndarray) -> list[str]:
    ms = np.round(ts * 1000.0).astype("int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]


def _sensor_events(streams: Sequence[Stream]) -> Iterable[tuple[float, dict[str, Any]]]:
    ts = np.concatenate([s.ts for s in streams])
    data = np.concatenate([s.ts if s.data_ts is None else s.data_ts for s in streams])
    which = np.concatenate([np.full(len(s.ts), k) for k, s in enumerate(streams)])
    pos = np.concatenate([np.arange(len(s.ts)) for s in streams])
    order = np.argsort(ts, kind="stable")
    ts, which, pos = ts[order], which[order].tolist(), pos[order].tolist()
    times = _time_strings(data[order])
    values = [s.cols["value"].tolist() for s in streams]
    keys = [s.key for s in streams]
    for t, tstr, k, i in zip(ts.tolist(), times, which, pos, strict=True):
        key = keys[k]
        yield (
            t,
            {
                "event_id": f"{key}-{i}",
                "time": tstr,
                "line_id": "line-1",
                "asset_id": f"asset-{k // 4}",
                "sensor_id": key,
                "value": values[k][i],
                "unit": "u",
                "quality": "good",
            },
        )


def _inference_events(streams: Sequence[Stream]) -> Iterable[tuple[float, dict[str, Any]]]:
    ts = np.concatenate([s.ts for s in streams])
    which = np.concatenate([np.full(len(s.ts), k) for k, s in enumerate(streams)])
    pos = np.concatenate([np.arange(len(s.ts)) for s in streams])
    order = np.argsort(ts, kind="stable")
    ts, which, pos = ts[order], which[order].tolist(), pos[order].tolist()
    times = _time_strings(ts)
    cols = [
        (s.cols["group"].tolist(), s.cols["score"].tolist(), s.cols["harmful"].tolist())
        for s in streams
    ]
    keys = [s.key for s in streams]
    for t, tstr, k, i in zip(ts.tolist(), times, which, pos, strict=True):
        key = keys[k]
        groups, scores, harmful = cols[k]
        yield (
            t,
            {
                "event_id": f"{key}-{i}",
                "time": tstr,
                "model_id": key,
                "model_version": "1",
                "prediction_id": f"{key}-p{i}",
                "prediction": {"score": scores[i]},
                "features": {},
                "segment": {"group": f"g{groups[i]}"},
                "safety": {"harmful": harmful[i]},
                "latency_ms": 20.0,
            },
        )


def run_partition(
    specs: Sequence[MonitorSpec],
    side: str,
    streams: Sequence[Stream],
    until: float = math.inf,
    done: Callable[[Seen], bool] | None = None,
) -> tuple[list[Seen], int]:
    """Feed one partition's events in time order; its findings and the events fed.

    Stops after the event at data time ``until``, or when ``done`` says so.
    """
    detectors = PartitionDetectors(specs, side)
    events = _sensor_events(streams) if side == "sensor" else _inference_events(streams)
    observe = detectors.observe
    seen: list[Seen] = []
    fed = 0
    for t, event in events:
        if t > until:
            break
        fed += 1
        findings = observe(event)
        if not findings:
            continue
        stop = False
        for f in findings:
            a = f.alarm
            s = Seen(f.stream_key, f.monitor.name, f.update, a.index, a.onset, a.detected_at)
            seen.append(s)
            if done is not None and done(s):
                stop = True
        if stop:
            break
    return seen, fed


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class Sizes:
    streams: int  # sensors per partition (stationary)
    events: int  # events per sensor stream (stationary)
    partitions: int  # partitions per stationary family
    models: int  # models per inference partition
    model_events: int  # events per model stream (stationary)
    change_streams: int  # sensors per failure partition (all but 2 fail)
    change_seeds: int  # partitions per (base, failure)
    horizon: int  # events after the change a sensor failure may take
    rate_horizon: int  # group events after the change a rate failure may take


FULL = Sizes(12, 20_000, 2, 4, 60_000, 8, 5, 3000, 20_000)
QUICK = Sizes(8, 6_000, 1, 4, 12_000, 8, 2, 1500, 8_000)


@dataclass(frozen=True, slots=True)
class StationaryJob:
    family: str
    partition: int
    seed: int
    sizes: Sizes


@dataclass(slots=True)
class StationaryResult:
    family: str
    events: int
    streams: int
    new: Counter[str] = field(default_factory=Counter)
    updates: Counter[str] = field(default_factory=Counter)
    hit: dict[str, int] = field(default_factory=dict)  # stream -> index of its 1st incident


def run_stationary(job: StationaryJob) -> StationaryResult:
    fam = FAMILY[job.family]
    rng = _seeded("stationary", job.seed, fam.name, job.partition)
    sz = job.sizes
    if fam.side == "sensor":
        streams = sensor_partition(
            fam, rng, max(sz.streams // fam.stretch, 1), sz.events * fam.stretch
        )
    else:
        streams = inference_partition(fam, rng, sz.models, sz.model_events)
    seen, fed = run_partition(_specs(), fam.side, streams)
    keys = len(streams) if fam.side == "sensor" else len(streams) * (1 + len(GROUP_SHARES))
    out = StationaryResult(fam.name, fed, keys)
    for s in seen:
        (out.updates if s.update else out.new)[s.monitor] += 1
        if not s.update:
            out.hit.setdefault(f"{job.partition}/{s.stream_key}", s.index)
    return out


@dataclass(frozen=True, slots=True)
class ChangeJob:
    base: str
    failure: str
    seed: int
    partition: int
    sizes: Sizes
    at: int
    ramp: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """One failed stream: caught or not, delay, onset error, first monitor, early."""

    base: str
    failure: str
    caught: bool
    delay: int | None
    onset_error: int | None
    monitor: str | None
    early: bool  # a new incident on this stream before the change
    any_delay: int | None  # delay to the first finding of any kind (an update too)
    back_delay: int | None = None  # excursion: from the return to the first finding after it


def run_change(job: ChangeJob) -> list[Outcome]:
    fam = FAMILY[job.base]
    rng = _seeded("change", job.seed, job.base, job.failure, job.partition)
    sz, at = job.sizes, job.at
    targets: dict[str, np.ndarray] = {}  # key -> the stream's full schedule of times
    if fam.side == "sensor":
        n = at + sz.horizon
        streams = []
        for s in range(sz.change_streams):
            b = sensor_base(fam, rng, n)
            key = f"s{s:02d}"
            if s < sz.change_streams - 2:
                ts, x = apply_failure(b, job.failure, at, rng, job.ramp)
                targets[key] = b.ts
            else:
                ts, x = b.ts, _finish(b, b.values())
            streams.append(Stream(key, ts, {"value": x}))
        horizon = sz.horizon
    elif job.failure == SCORE_FAILURE.name:
        streams = []
        horizon = sz.horizon
        at = score_at(at, fam)
        for m in range(sz.models):
            shift = (0, at) if m < sz.models - 1 else None
            one = inference_partition(fam, rng, 1, at + horizon + 100, score_shift=shift)[0]
            streams.append(Stream(f"m{m}", one.ts, one.cols))
            if shift is not None:
                targets[f"m{m}"] = one.ts
    else:
        streams = []
        horizon = sz.rate_horizon
        # the changed group's stream must reach at + horizon events: size models for it
        n = int((at + horizon) / min(GROUP_SHARES[:2]) * 1.1)
        for m in range(sz.models):
            change = (0, m % 2, at) if m < sz.models - 1 else None
            one = inference_partition(fam, rng, 1, n, change)[0]
            one = Stream(f"m{m}", one.ts, one.cols)
            streams.append(one)
            if change is not None:
                targets[f"m{m}|g{m % 2}"] = one.ts[one.cols["group"] == m % 2]
    t_change = {k: float(ts[at]) for k, ts in targets.items()}
    t_end = {k: float(ts[min(at + horizon, len(ts)) - 1]) for k, ts in targets.items()}
    first: dict[str, Seen] = {}
    first_any: dict[str, Seen] = {}
    early: set[str] = set()
    excursion = job.failure == "excursion"
    t_back = {k: float(ts[at + EXCURSION]) for k, ts in targets.items()} if excursion else {}
    back: dict[str, Seen] = {}

    owner: dict[str, str | None] = {}  # a finding's stream key -> the target it is on

    def done(s: Seen) -> bool:
        k = owner.get(s.stream_key, "")
        if k == "":
            k = owner[s.stream_key] = on_target(s.stream_key, targets)
        if k is None:
            return False
        if s.detected_at < t_change[k] - HALF_MS:
            if not s.update:
                early.add(k)
        elif s.detected_at <= t_end[k] + HALF_MS:
            first_any.setdefault(k, s)
            if not s.update:
                first.setdefault(k, s)
            if excursion and s.detected_at >= t_back[k] - HALF_MS:
                back.setdefault(k, s)
        return len(first) == len(targets) and (not excursion or len(back) == len(targets))

    def delay(s: Seen | None, ts: np.ndarray, start: int = at) -> int | None:
        if s is None:
            return None
        return int(np.searchsorted(ts, s.detected_at + HALF_MS, side="right")) - start

    run_partition(_specs(), fam.side, streams, until=max(t_end.values()), done=done)
    out = []
    for k, ts in targets.items():
        s = first.get(k)
        any_delay = delay(first_any.get(k), ts)
        back_delay = delay(back.get(k), ts, at + EXCURSION) if excursion else None
        if s is None:
            out.append(
                Outcome(
                    job.base,
                    job.failure,
                    False,
                    None,
                    None,
                    None,
                    k in early,
                    any_delay,
                    back_delay,
                )
            )
            continue
        out.append(
            Outcome(
                job.base,
                job.failure,
                True,
                delay(s, ts),
                abs(s.onset - (at + 1)),
                s.monitor,
                k in early,
                any_delay,
                back_delay,
            )
        )
    return out


def score_at(at: int, fam: Family) -> int:
    """Where a score shift starts: event ``at``, but not within the model's first 36 h
    (a monitor that learns a daily cycle is blind to a change inside its first day)."""
    return max(at, int(1.5 * DAY / fam.dt))


def on_target(stream_key: str, targets: Iterable[str]) -> str | None:
    """The target stream a finding's stream key is on: the same key, or a key that
    holds all of the target's parts (a monitor keyed finer than the failed stream).

    >>> on_target("s01|x", ["s00", "s01"]), on_target("m0", ["m0|g1"])
    ('s01', None)
    """
    parts = set(stream_key.split("|"))
    for target in targets:
        if stream_key == target or parts.issuperset(target.split("|")):
            return target
    return None


# --------------------------------------------------------------------------- plumbing

_SPECS: list[MonitorSpec] = []
_CONFIG: str | None = None


def _init(config: str | None) -> None:
    global _CONFIG
    _CONFIG = config
    _SPECS.clear()


def _specs() -> list[MonitorSpec]:
    if not _SPECS:
        _SPECS.extend(load_config(_CONFIG).monitors)
    return _SPECS


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a Poisson mean after observing k.

    >>> round(poisson_upper(0), 3)
    2.996
    >>> round(poisson_upper(3), 3)
    7.754
    """
    lo, hi = float(k), float(k) + 10.0 + 10.0 * math.sqrt(k + 1)
    target = 1.0 - confidence
    for _ in range(100):
        mid = (lo + hi) / 2
        term = total = math.exp(-mid)
        for i in range(1, k + 1):
            term *= mid / i
            total += term
        lo, hi = (mid, hi) if total > target else (lo, mid)
    return hi


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile; nan when empty.

    >>> percentile([1, 2, 3, 4], 0.5)
    2.5
    """
    s = sorted(values)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(s) - 1)
    return s[low] + (s[high] - s[low]) * (pos - low)


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


def _describe(spec: MonitorSpec) -> str:
    params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
    s = spec.settings
    season = ""
    if s.seasonality is not None:
        z = s.seasonality
        season = f", seasonality {z.period_s:g} s/{z.bins} bins/{z.warmup} per bin"
    key = "+".join(spec.key)
    return (
        f"{spec.reads}, key {key}: {spec.detector}({params}); warmup {s.warmup}, "
        f"cooldown {s.cooldown}{season}; episode {spec.episode_s:g} s"
    )


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _by_monitor(new: Counter[str], updates: Counter[str]) -> str:
    names = sorted(set(new) | set(updates), key=lambda m: (-new[m], -updates[m], m))
    return ", ".join(f"{m} {new[m]}/{updates[m]}" for m in names) or "-"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--config", help="a config file (default: the shipped default config)")
    ap.add_argument("--quick", action="store_true", help="a smaller run (~1 min)")
    ap.add_argument("--only", choices=("stationary", "changes"), help="run one part")
    ap.add_argument(
        "--family",
        action="append",
        help="only this family (repeatable); for the failures, use it as the base",
    )
    ap.add_argument("--failure", action="append", help="only this failure (repeatable)")
    ap.add_argument(
        "--all-bases",
        action="store_true",
        help="failures on every family but mixed-cadence, future-glitch, batched (default: "
        + ", ".join(f.name for f in FAMILIES if f.base)
        + ")",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--events", type=int, help="events per sensor stream (stationary)")
    ap.add_argument("--at", type=int, default=3000, help="stream event where failures start")
    ap.add_argument("--ramp", type=int, default=1000, help="events a ramp takes to +2 sigma")
    ap.add_argument("--seeds", type=int, help="partitions per (base, failure)")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.events:
        sizes = Sizes(**{**_asdict(sizes), "events": args.events})
    if args.seeds:
        sizes = Sizes(**{**_asdict(sizes), "change_seeds": args.seeds})
    for name in args.family or ():
        if name not in FAMILY:
            ap.error(f"unknown family {name!r}; known: {', '.join(FAMILY)}")
    for name in args.failure or ():
        if name not in FAILURE:
            ap.error(f"unknown failure {name!r}; known: {', '.join(FAILURE)}")

    started = time.perf_counter()
    _init(args.config)
    specs = _specs()
    load = os.getloadavg()
    print(
        "riskstream detector quality — config: "
        f"{args.config or '<shipped default config>'}; riskstream at {_git_head()}"
    )
    print(
        f"{'quick' if args.quick else 'full'} run; seed {args.seed}; {args.jobs} worker "
        f"processes on {os.cpu_count()} CPUs; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at start; python {sys.version.split()[0]}; numpy {np.__version__}"
    )
    print("monitors (as PartitionDetectors builds them from the config):")
    for spec in specs:
        print(f"  {spec.name:26} {_describe(spec)}")

    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(args.config,)) as pool:
        if args.only != "changes":
            _stationary(pool, args, sizes)
        if args.only != "stationary":
            _changes(pool, args, sizes)
    load = os.getloadavg()
    cpu = sum(resource.getrusage(who).ru_utime for who in (RUSAGE_SELF, RUSAGE_CHILDREN))
    print(
        f"\ntotal runtime {time.perf_counter() - started:.0f} s wall, {cpu:.0f} s CPU (all "
        f"processes); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end"
    )
    return 0


def _asdict(s: Sizes) -> dict[str, int]:
    return {k: getattr(s, k) for k in Sizes.__dataclass_fields__}


def _stationary(pool: ProcessPoolExecutor, args: argparse.Namespace, sz: Sizes) -> None:
    fams = [f for f in FAMILIES if not args.family or f.name in args.family]
    if not fams:
        return
    print(
        f"\n(a) stationary families: sensors {sz.partitions} partitions x {sz.streams} "
        f"sensors x {sz.events:,} events; inference {sz.partitions} partitions x "
        f"{sz.models} models x {sz.model_events:,} events (each model: "
        f"{len(GROUP_SHARES)} group streams for the group monitors)"
    )
    for f in fams:
        more = ""
        if f.stretch > 1:
            more = f"; {f.stretch}x the events per stream on 1/{f.stretch} of the streams"
        print(f"  {f.name:14} {f.what}; {f.cadence}{more}")
    jobs = [StationaryJob(f.name, p, args.seed, sz) for f in fams for p in range(sz.partitions)]
    results: dict[str, list[StationaryResult]] = {}
    bar = Progress("  stationary", len(jobs), unit="partitions")
    for i, r in enumerate(pool.map(run_stationary, jobs, chunksize=1), 1):
        results.setdefault(r.family, []).append(r)
        bar.update(i)
    bar.close(len(jobs))
    print(
        f"\n  incidents = new incidents (update=False); updates = later findings of an open "
        f"incident; per 100k = incidents per 100k events per stream (goal <= {GOAL:g}); "
        "95% up = Poisson upper bound; hit = streams with an incident; 1st at = median "
        "event (of its stream) of a stream's first incident; by monitor = "
        "incidents/updates; events include each stream's warm-up"
    )
    head = (
        f"  {'family':15}{'events':>10}{'incidents':>10}{'updates':>9}{'per 100k':>10}"
        f"{'95% up':>9}{'hit':>8}{'1st at':>8}  {'verdict':8}by monitor"
    )
    print(head)
    worst: tuple[float, str] = (0.0, "-")
    for f in fams:
        rs = results[f.name]
        events = sum(r.events for r in rs)
        new: Counter[str] = sum((r.new for r in rs), Counter())
        upd: Counter[str] = sum((r.updates for r in rs), Counter())
        k = sum(new.values())
        rate = k / events * 1e5
        worst = max(worst, (rate, f.name))
        hit = f"{sum(len(r.hit) for r in rs)}/{sum(r.streams for r in rs)}"
        first_at = percentile([i for r in rs for i in r.hit.values()], 0.5)
        print(
            f"  {f.name:15}{events:>10,}{k:>10}{sum(upd.values()):>9}{rate:>10.2f}"
            f"{poisson_upper(k) / events * 1e5:>9.2f}{hit:>8}{_fmt(first_at):>8}  "
            f"{'ok' if rate <= GOAL else 'MISSES':8}{_by_monitor(new, upd)}"
        )
    verdict = "meets" if worst[0] <= GOAL else "MISSES"
    print(
        f"  goal: worst family {worst[1]} at {worst[0]:.2f} per 100k: {verdict} "
        f"<= {GOAL:g} per 100k events per stream"
    )


def _changes(pool: ProcessPoolExecutor, args: argparse.Namespace, sz: Sizes) -> None:
    if args.family:
        bases = [FAMILY[n] for n in args.family if FAMILY[n].kind not in NOT_BASES]
    elif args.all_bases:
        bases = [f for f in FAMILIES if f.kind not in NOT_BASES]
    else:
        bases = [f for f in FAMILIES if f.base]
    pairs = []
    for b in bases:
        fails = MODEL_FAILURES if b.side == "inference" else FAILURES
        pairs += [(b, f) for f in fails if not args.failure or f.name in args.failure]
    if not pairs:
        return
    print(
        f"\n(b) failures from stream event {args.at:,}: sensors {sz.change_seeds} partitions "
        f"x {sz.change_streams} sensors ({sz.change_streams - 2} fail, 2 do not), horizon "
        f"{sz.horizon:,} events; models {sz.change_seeds} partitions x {sz.models} models "
        f"({sz.models - 1} change, 1 does not), horizon {sz.rate_horizon:,} group events "
        f"(rate-x2) or {sz.horizon:,} model events (score-shift, from model event "
        f"{score_at(args.at, FAMILY['score-wander']):,}, after 36 h); sigma = the base "
        "noise's marginal sd (counts: sqrt(rate))"
    )
    for f in (*FAILURES, *MODEL_FAILURES):
        if any(f is g for _, g in pairs):
            what = f.what.replace("--ramp events", f"{args.ramp:,} events")
            print(f"  {f.name:12} {what}")
    jobs = [
        ChangeJob(b.name, f.name, args.seed, p, sz, args.at, args.ramp)
        for b, f in pairs
        for p in range(sz.change_seeds)
    ]
    # the slow ones first, so two workers finish together
    jobs.sort(key=lambda j: j.failure != RATE_FAILURE.name)
    results: dict[tuple[str, str], list[Outcome]] = {}
    bar = Progress("  failures", len(jobs), unit="partitions")
    for i, outs in enumerate(pool.map(run_change, jobs, chunksize=1), 1):
        for o in outs:
            results.setdefault((o.base, o.failure), []).append(o)
        bar.update(i)
    bar.close(len(jobs))
    print(
        "\n  delay = the stream's events from the change to its first new incident (1 = on "
        "the first changed event); onset err = |alarm onset - first changed event|; early = "
        "failed streams with a (false) incident before the change; any finding = streams "
        "with a finding after the change counting updates of an incident opened before it, "
        "and its median delay (differs from caught when a false incident was still open); "
        "first = monitor of the first new incident (share of catches)"
    )
    print(
        f"  {'base':15}{'failure':13}{'caught':>9}{'delay p50':>10}{'p90':>7}"
        f"{'onset err p50':>14}{'p90':>7}{'early':>7}{'any finding':>14}{'back':>12}  first"
    )
    goal_delay = math.nan
    for b, f in pairs:
        outs = results.get((b.name, f.name), [])
        caught = [o for o in outs if o.caught]
        delays = [o.delay for o in caught if o.delay is not None]
        errs = [o.onset_error for o in caught if o.onset_error is not None]
        anys = [o.any_delay for o in outs if o.any_delay is not None]
        backs = [o.back_delay for o in outs if o.back_delay is not None]
        back = (
            f"{len(backs)}/{len(outs)} {_fmt(percentile(backs, 0.5))}"
            if f.name == "excursion"
            else "-"
        )
        mons = Counter(o.monitor for o in caught)
        first = ", ".join(f"{m} {c}/{len(caught)}" for m, c in mons.most_common(2)) or "-"
        print(
            f"  {b.name:15}{f.name:13}{len(caught):>4}/{len(outs):<4}"
            f"{_fmt(percentile(delays, 0.5)):>10}{_fmt(percentile(delays, 0.9)):>7}"
            f"{_fmt(percentile(errs, 0.5)):>14}{_fmt(percentile(errs, 0.9)):>7}"
            f"{sum(o.early for o in outs):>7}{len(anys):>5}/{len(outs):<3}"
            f"{_fmt(percentile(anys, 0.5)):>6}{back:>12}  {first}"
        )
        if b.name == "gaussian" and f.name == "shift-1s":
            goal_delay = percentile(delays, 0.5)
    if not math.isnan(goal_delay):
        verdict = "meets" if goal_delay <= GOAL_DELAY else "MISSES"
        print(
            f"  goal: gaussian shift-1s median delay {goal_delay:.0f} events: {verdict} "
            f"<= {GOAL_DELAY}"
        )


if __name__ == "__main__":
    sys.exit(main())
