"""The learned ``outlier`` kind alone, on families of tails: false alarms and spike power.

Each family is ``--streams`` independent streams of ``--events`` readings fed to one
``LearnedStream("outlier", ...)`` each (warm-up ``--warmup``, one false alarm per
``--every`` events asked for), the way ``bench/results/detector_quality-heavy-tail-shape.txt``
measured heavy tails: no Kafka, no other monitor, nothing but the kind's own tail.

- **false alarms**: every alarm of a family without spikes; on the spike families, every
  alarm but the one at the spike.  ``expected`` is streams x events / every.
- **expected false alarms**: on the families whose law is known in closed form (t,
  gaussian, Laplace, the two mixtures), the sum over events of the probability that the
  reading falls beyond the limit in force (each side of the stream's centre; the
  innovation is the reading less the level on these white-noise streams, exactly where
  the fitted phi is 0, as it nearly always is): the same thing as the count of false
  alarms, without its Poisson noise (a count of 10 is +-3), so that two versions can be
  told apart.
- **spike power**: on the ``gaussian`` and ``laplace`` families, a quarter of the streams
  each get one spike of 7, 8, 14 or 16 sd (random sign) at event ``--spike-at``; caught =
  an alarm at that reading.  The 1-in-1M two-sided quantile is 4.9 sd for a gaussian and
  9.8 sd for a Laplace, so 7 and 8 sd are beyond the limit on a gaussian only.

Run it with another riskstream's ``src`` first on ``PYTHONPATH`` for an A/B (``git archive
main src | tar -x -C /tmp/oldsrc``).  Figures go to stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats  # type: ignore[import-untyped]

import riskstream
from riskstream.core.learned import LearnedParams, LearnedStream

SPIKES = (7.0, 8.0, 14.0, 16.0)


def _draw(family: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` readings of unit sd (where it exists), around a level of 0."""
    if family.startswith("t"):  # t(2.2), t3, ...: Student-t of that many degrees
        nu = float(family[1:].strip("()"))
        scale = math.sqrt((nu - 2.0) / nu) if nu > 2 else 1.0
        return scale * rng.standard_t(nu, n)
    if family == "gaussian":
        return rng.normal(0.0, 1.0, n)
    if family == "laplace":
        return rng.laplace(0.0, 1.0 / math.sqrt(2.0), n)
    if family == "lognormal":  # skewed, every moment finite, sub-exponential tail
        return rng.lognormal(0.0, 0.5, n)
    if family == "lognormal-1":
        return rng.lognormal(0.0, 1.0, n)
    if family == "contaminated":  # 95% N(0, 1), 5% N(0, 5^2): a gaussian mixture
        wide = rng.random(n) < 0.05
        return np.where(wide, 5.0, 1.0) * rng.normal(0.0, 1.0, n)
    if family == "gauss+t3":  # 90% N(0, 1), 10% t3: a heavy tail behind a gaussian body
        heavy = rng.random(n) < 0.1
        return np.where(heavy, rng.standard_t(3.0, n), rng.normal(0.0, 1.0, n))
    if family == "ar1-t3":  # AR(1) 0.8 driven by t3 innovations
        e = rng.standard_t(3.0, n) / math.sqrt(3.0)
        x = np.empty(n)
        prev = 0.0
        for i in range(n):
            prev = 0.8 * prev + e[i]
            x[i] = prev
        return x
    raise SystemExit(f"unknown family {family!r}")


def _sf(family: str, a: float) -> float | None:
    """P(X > a) of the family's unit-sd law (None: not in closed form here)."""
    if family.startswith("t"):
        nu = float(family[1:].strip("()"))
        return float(stats.t.sf(a / math.sqrt((nu - 2.0) / nu), nu))
    if family == "gaussian":
        return float(stats.norm.sf(a))
    if family == "laplace":
        return (
            0.5 * math.exp(-a * math.sqrt(2.0))
            if a > 0
            else 1.0 - 0.5 * math.exp(a * math.sqrt(2.0))
        )
    if family == "contaminated":
        return float(0.95 * stats.norm.sf(a) + 0.05 * stats.norm.sf(a / 5.0))
    if family == "gauss+t3":
        return float(0.9 * stats.norm.sf(a) + 0.1 * stats.t.sf(a, 3.0))
    return None


def _run(
    job: tuple[str, int, int, int, int, float, int],
) -> tuple[str, int, int, list[int], float]:
    """One stream: (family, false alarms, spike caught 0/1, their events, expected false
    alarms or nan)."""
    family, seed, events, warmup, spike_at, every, spike = job
    rng = np.random.default_rng([seed, sum(map(ord, family))])
    x = _draw(family, rng, events)
    if spike >= 0:
        sd = 1.0
        x[spike_at] += (1.0 if rng.random() < 0.5 else -1.0) * SPIKES[spike] * sd
    s = LearnedStream("outlier", LearnedParams(false_alarm_every=every), warmup=warmup)
    false, caught, at = 0, 0, []
    update = s.update
    known = _sf(family, 0.0) is not None
    expected, seen, p = 0.0, None, 0.0
    for i, v in enumerate(x.tolist()):
        if update(v, float(i)):
            if spike >= 0 and i == spike_at:
                caught = 1
            else:
                false += 1
                at.append(i)
        b = s._base  # the limit in force, for the expected count
        if known and b is not None:
            if (b[7], b[0]) != seen:
                seen = (b[7], b[0])
                limit, centre = b[7] * b[2], b[0] + b[5] * b[4] * b[2]
                p = (_sf(family, limit + centre) or 0.0) + (_sf(family, limit - centre) or 0.0)
            expected += p
    return family, false, caught, at, expected if known else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=96)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--every", type=float, default=1e6)
    ap.add_argument("--spike-at", type=int, default=15_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--family",
        action="append",
        help="families (repeatable; default: all): t2.2 t3 t4 t6 t10 gaussian laplace "
        "lognormal lognormal-1 contaminated gauss+t3 ar1-t3",
    )
    args = ap.parse_args()
    families = args.family or [
        "t2.2", "t3", "t4", "t6", "t10", "gaussian", "laplace",
        "lognormal", "lognormal-1", "contaminated", "gauss+t3", "ar1-t3",
    ]  # fmt: skip
    spiked = {"gaussian", "laplace"}
    jobs = []
    for fam in families:
        for k in range(args.streams):
            spike = k * len(SPIKES) // args.streams if fam in spiked else -1
            jobs.append((fam, args.seed * 100_003 + k, args.events, args.warmup, args.spike_at,
                         args.every, spike))  # fmt: skip
    print(
        f"outlier kind alone; riskstream from {os.path.dirname(riskstream.__file__)}; "
        f"{args.streams} streams x {args.events:,} events per family, warm-up {args.warmup}, "
        f"1 false alarm per {args.every:,.0f} asked ({args.streams * args.events / args.every:.2f}"
        f" expected per family); seed {args.seed}; python {sys.version.split()[0]}"
    )
    t0 = time.process_time()
    wall = time.perf_counter()
    false: dict[str, int] = {f: 0 for f in families}
    hit_streams: dict[str, int] = {f: 0 for f in families}
    when: dict[str, list[int]] = {f: [] for f in families}
    caught: dict[str, list[int]] = {f: [0] * len(SPIKES) for f in families}
    expected: dict[str, float] = {f: 0.0 for f in families}
    with ProcessPoolExecutor(args.jobs) as pool:
        for job, (fam, f, c, at, e) in zip(jobs, pool.map(_run, jobs, chunksize=4), strict=True):
            false[fam] += f
            expected[fam] += e
            hit_streams[fam] += f > 0
            when[fam] += at
            if job[-1] >= 0:
                caught[fam][job[-1]] += c
    per = args.streams // len(SPIKES)
    print(
        f"  {'family':14} {'false':>6} {'expected':>9} {'streams':>8}  "
        "first-alarm events (median, quartiles)"
    )
    for fam in families:
        at = sorted(when[fam])
        q = f"{at[len(at) // 4]}/{at[len(at) // 2]}/{at[3 * len(at) // 4]}" if at else "-"
        exp = "-" if math.isnan(expected[fam]) else f"{expected[fam]:.2f}"
        line = f"  {fam:14} {false[fam]:6d} {exp:>9} {hit_streams[fam]:5d}/{args.streams:<3d} {q}"
        if fam in spiked:
            sizes = "/".join(f"{s:g}" for s in SPIKES)
            line += f"   spikes {sizes} sd caught {'/'.join(map(str, caught[fam]))} of {per}"
        print(line)
    print(
        f"total {time.perf_counter() - wall:.0f} s wall, {time.process_time() - t0:.0f} s CPU "
        "(this process)"
    )


if __name__ == "__main__":
    main()
