"""The processor's hot path in CPU instructions per event: an A/B that load cannot move.

This machine is shared, and its speed changes from day to day: the same processor read
35-56k events/s in ``bench/end_to_end.py`` on different days, and two runs of one
revision a few minutes apart read 1.17x apart (results/end_to_end-baseline-first-*).
Wall-clock and CPU-time A/Bs of a change worth 5% drown in that.  Instructions executed
do not: valgrind's callgrind counts them exactly, the same on a busy machine as on an
idle one (about 50x slower than native, so the run is kept small).

What is counted: the per-event work of ``Processor._process`` on the sensor topic, less
Kafka and Redis: ``EventDecoder.decode`` (size and key checks, orjson, schema), the
event's time (``parse_time``) and ``PartitionDetectors.observe`` with the monitors of
``bench/throughput.py`` (page-hinkley + adwin per sensor, warm-up 20), over
``--keys`` sensors x ``--per-key`` events, interleaved, in memory.  Each source is run
twice under callgrind, once with one pass over the events and once with two (on fresh
detectors, so the second pass sees the same states as the first): the difference is
one pass, free of start-up and imports.

    python bench/instructions.py                       # the working tree's src/
    python bench/instructions.py --baseline HEAD~1     # and another revision's, side by side

Two sources whose hot path is identical read up to ~1% apart (memory layout): read a
change under 1% as none.  Needs valgrind (``apt-get install valgrind``); ~4 minutes per
source at the defaults.
This is a relative measure for A/Bs of the hot path: the figure a user sees is
``bench/end_to_end.py``'s events/s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, baseline_src, git_state, progress

CHILD_ENV = "RISKSTREAM_BENCH_INSTRUCTIONS_CHILD"


def child(keys: int, per_key: int, passes: int) -> None:
    """Run ``passes`` passes of the hot path (inside callgrind)."""
    import gc
    import tempfile

    from riskstream.bootstrap import build_decoder
    from riskstream.config import load_config
    from riskstream.core.monitors import PartitionDetectors
    from riskstream.core.timeutil import parse_time
    from riskstream.ports import Record
    from throughput import MONITORS_YAML, EventMaker

    kinds = ("sensor", "inference", "label", "change", "incidents", "routing_changes")
    text = "version: 1\ntopics:\n" + "".join(f"  {k}: bench-{k}\n" for k in kinds)
    text += "  dead_letter: bench-dead-letter\n" + MONITORS_YAML
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    config = load_config(f.name)
    os.unlink(f.name)
    decoder = build_decoder(config)
    maker = EventMaker(keys, seed=1)
    records = []
    for step in range(per_key):
        for k in range(keys):
            key, value, _ = maker.event(k, step, step * keys + k)
            records.append(Record("bench-sensor", 0, len(records), key, value, None))
    gc.collect()
    gc.freeze()
    for _ in range(passes):
        detectors = PartitionDetectors(config.monitors, "sensor")
        decode, observe = decoder.decode, detectors.observe
        for record in records:
            event = decode(record)
            observe(event, parse_time(event["time"]))  # type: ignore[index]


def count(src: Path, keys: int, per_key: int, passes: int) -> int:
    """Instructions callgrind counted for one child run of ``passes`` passes."""
    env = {**os.environ, CHILD_ENV: f"{keys},{per_key},{passes}", "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT / "bench")])
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(Path(__file__).resolve()),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        sys.exit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def per_event(label: str, src: Path, keys: int, per_key: int) -> float:
    started = time.perf_counter()
    progress(f"{label}: callgrind, 1 pass then 2 passes of {keys * per_key:,} events")
    one = count(src, keys, per_key, 1)
    two = count(src, keys, per_key, 2)
    result = (two - one) / (keys * per_key)
    progress(f"{label}: {result:,.0f} instructions/event ({time.perf_counter() - started:.0f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--per-key", type=int, default=60, help="events per key (>= 21)")
    parser.add_argument("--baseline", metavar="REF", help="also count git revision REF's src/")
    args = parser.parse_args()
    if args.per_key <= 20:
        parser.error("--per-key must be over the monitors' warm-up of 20")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: `sudo apt-get install valgrind`, then run again")
    print("setup")
    print(f"  src                 {git_state()}")
    print(f"  python              {sys.version.split()[0]} ({sys.executable})")
    print("  counted             decode + parse_time + observe (page-hinkley + adwin per sensor)")
    n = args.keys * args.per_key
    print(f"  events              {args.keys:,} keys x {args.per_key} = {n:,}, in memory")
    print("  tool                valgrind --tool=callgrind (instructions, exact; not time)")
    rows = []
    if args.baseline:
        rows.append((f"baseline {args.baseline}", per_event(
            f"baseline {args.baseline}", baseline_src(args.baseline), args.keys, args.per_key
        )))  # fmt: skip
    rows.append(("current src/", per_event("current", ROOT / "src", args.keys, args.per_key)))
    print("results")
    for label, value in rows:
        print(f"  {label:<28} {value:>10,.0f} instructions/event")
    if len(rows) == 2:
        print(f"  change                       {rows[1][1] / rows[0][1] - 1:+.1%}")


if __name__ == "__main__":
    if CHILD_ENV in os.environ:
        keys, per_key, passes = map(int, os.environ[CHILD_ENV].split(","))
        child(keys, per_key, passes)
    else:
        main()
