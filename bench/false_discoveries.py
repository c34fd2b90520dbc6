"""False-discovery control on many streams: how many incidents are false, with and without.

Setup: N sensor streams of unit gaussian noise, one event per stream per second;
every tenth stream shifts by +1 sigma halfway through.  The monitor is a
deliberately sensitive Page-Hinkley (so that false alarms are frequent enough to
count in a short run, as they would be on thousands of streams over weeks).  The
same events go through the monitor without ``fdr`` and with
``fdr: {q, confirm, window}``.  Pure core code, no servers.

    .venv/bin/python bench/false_discoveries.py [--streams 1000] [--steps 1500] [--seeds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace

from riskstream.core.discoveries import FdrSettings
from riskstream.core.monitors import MonitorSpec, PartitionDetectors, ValueSpec
from riskstream.core.streams import StreamSettings
from riskstream.core.timeutil import format_time

T0 = 1.8e9


def monitor(threshold: float) -> MonitorSpec:
    return MonitorSpec(
        name="temp", reads="sensor", value=ValueSpec("value"), key=("sensor_id",),
        subject="sensor_id", detector="page-hinkley",
        params={"threshold": threshold, "delta": 0.1, "min_instances": 1, "alpha": 1.0,
                "mode": "both"},
        settings=StreamSettings(warmup=300, scale=True), episode_s=0,
    )  # fmt: skip


def run(spec: MonitorSpec, streams: int, steps: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    detectors = PartitionDetectors([spec], "sensor")
    shifted = {f"s{i}" for i in range(0, streams, 10)}
    change = steps // 2
    first: dict[str, float] = {}
    false = 0
    started = time.perf_counter()
    for step in range(steps):
        when = format_time(T0 + step)
        for i in range(streams):
            sid = f"s{i}"
            x = rng.gauss(0.0, 1.0) + (1.0 if step >= change and sid in shifted else 0.0)
            for f in detectors.observe({"time": when, "sensor_id": sid, "value": x}):
                at = f.alarm.detected_at - T0
                if sid in shifted and f.alarm.onset_at - T0 >= change - 20:
                    first.setdefault(sid, at - change)
                else:
                    false += 1
    found = len(first) + false
    return {
        "incidents": found,
        "false": false,
        "fdp": false / found if found else 0.0,
        "power": len(first) / len(shifted),
        "delay": statistics.median(first.values()) if first else float("nan"),
        "seconds": time.perf_counter() - started,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=20.0)
    ap.add_argument("--q", type=float, default=0.05)
    ap.add_argument("--confirm", type=int, default=30)
    ap.add_argument("--window", type=float, default=60.0)
    args = ap.parse_args()
    raw = monitor(args.threshold)
    fdr = replace(raw, fdr=FdrSettings(args.q, args.confirm, args.window))
    print(f"setup: {args.streams} streams x {args.steps} events (1/s), every 10th shifts "
          f"+1 sigma at {args.steps // 2}; page-hinkley threshold {args.threshold}; "
          f"fdr q={args.q} confirm={args.confirm} window={args.window:.0f}s; "
          f"{args.seeds} seeds")  # fmt: skip
    print(f"{'seed':>4} {'mode':>4} {'incidents':>9} {'false':>6} {'FDP':>6} {'power':>6} "
          f"{'delay s':>7} {'run s':>6}")  # fmt: skip
    for seed in range(1, args.seeds + 1):
        for name, spec in (("raw", raw), ("fdr", fdr)):
            r = run(spec, args.streams, args.steps, seed)
            print(f"{seed:>4} {name:>4} {r['incidents']:>9.0f} {r['false']:>6.0f} "
                  f"{r['fdp']:>6.1%} {r['power']:>6.0%} {r['delay']:>7.0f} "
                  f"{r['seconds']:>6.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
