"""Detection delay and false incidents of the three situations over many seeds.

Not a test: prints a table.  ``python bench/situations.py [--seeds 10]``.  Each
seed simulates the situation anew and runs it through the embedded pipeline (the
same processor and containment as on Kafka) with its config in
``riskstream/scenarios/``.  Delay is data time from the recorded failure start to
the first incident that names the failing subject and segment; a false incident
is any other (before the start, or on something healthy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from riskstream.demo import run_situation
from riskstream.simulate import SCENARIOS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print(f"setup: seeds 1..{args.seeds}, scale 1.0, embedded pipeline, scenario configs")
    print(f"{'situation':<14} {'detected':>9} {'delay median':>13} {'min':>9} {'max':>9} "
          f"{'false incidents':>16}")  # fmt: skip
    for scenario in SCENARIOS:
        delays, false, missed = [], 0, 0
        started = time.monotonic()
        for seed in range(1, args.seeds + 1):
            result, _ = run_situation(scenario, seed)
            false += len(result.false_incidents)
            if result.detection_delay_s is None:
                missed += 1
            else:
                delays.append(result.detection_delay_s / 60)
            print(f"  {scenario} seed {seed}: done", file=sys.stderr)
        unit = "min"
        med = statistics.median(delays) if delays else float("nan")
        print(f"{scenario:<14} {len(delays):>4}/{args.seeds:<4} {med:>9.0f} {unit} "
              f"{min(delays, default=float('nan')):>5.0f} {unit} "
              f"{max(delays, default=float('nan')):>5.0f} {unit} {false:>16}"
              f"   ({time.monotonic() - started:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
