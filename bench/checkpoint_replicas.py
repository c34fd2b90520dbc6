"""What ``processor.checkpoint_replicas`` costs: a checkpoint with and without ``WAIT``.

Not a test: it prints its setup and its figures, and asserts nothing.  One run::

    .venv/bin/python bench/checkpoint_replicas.py [--saves 300] [--streams 10 200 1000]

It starts a Redis Cluster of 3 primaries with a replica each on loopback
(``deploy/local/services.py``; ``--redis-url redis+cluster://...`` names one you run),
claims 8 partitions with :class:`~riskstream.adapters.redis.state.RedisStateStore`
and saves them in turn, each save changing ``--streams`` snapshots of 300 bytes (a
steady-state ADWIN + Page-Hinkley stream is about that), first with
``replicas=0`` (no ``WAIT``), then ``replicas=1``.  Reported per save: wall time
(median and 99th percentile) and this process's CPU (user + sys), with the load
average, since other work on the machine moves the wall figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
import services as local_services
from riskstream.adapters.redis.state import RedisStateStore

PARTITIONS = 8


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(url: str, replicas: int, streams: int, saves: int) -> tuple[float, float, float]:
    """(median ms, p99 ms, CPU ms) per save."""
    store = RedisStateStore.from_url(url, replicas=replicas, replica_timeout_ms=1000)
    scope = f"bench-wait-{replicas}-{streams}-{time.monotonic_ns()}"
    try:
        epochs = {p: store.claim(scope, ("bench", p)).epoch for p in range(PARTITIONS)}
        walls: list[float] = []
        cpu = _cpu()
        for i in range(saves):
            p = i % PARTITIONS
            changed = {f"s-{k}": bytes([i % 256]) * 300 for k in range(streams)}
            started = time.perf_counter()
            store.save(scope, ("bench", p), epochs[p], i + 1, {"applied": i + 1}, changed)
            walls.append((time.perf_counter() - started) * 1000)
        cpu_ms = (_cpu() - cpu) * 1000 / saves
        assert store.unreplicated == 0 or replicas == 0, "a WAIT timed out: not a fair figure"
    finally:
        store.close()
    walls.sort()
    return statistics.median(walls), walls[int(0.99 * (len(walls) - 1))], cpu_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--streams", type=int, nargs="+", default=[10, 200, 1000])
    parser.add_argument("--redis-url", help="a redis+cluster:// URL (default: start one)")
    args = parser.parse_args()
    cluster = None
    url = args.redis_url
    if url is None:
        cluster = local_services.start_redis_cluster(
            Path(tempfile.mkdtemp(prefix="riskstream-bench-"))
        )
        url = cluster.url
    try:
        print(f"setup: {sys.version.split()[0]}, {harness.cpu_model()}, {os.cpu_count()} CPUs")
        print(f"       {harness.versions()}")
        print(f"       Redis Cluster 3 primaries x 1 replica on loopback ({url})")
        print(f"       {PARTITIONS} partitions saved in turn, {args.saves} saves per figure")
        print(f"{'streams/save':>12} {'replicas':>8} {'median ms':>10} {'p99 ms':>8} "
              f"{'CPU ms':>7} {'load':>5}")  # fmt: skip
        for streams in args.streams:
            for replicas in (0, 1):
                median, p99, cpu = _measure(url, replicas, streams, args.saves)
                print(f"{streams:>12} {replicas:>8} {median:>10.3f} {p99:>8.3f} {cpu:>7.3f} "
                      f"{os.getloadavg()[0]:>5.2f}")  # fmt: skip
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
